"""The term report as an analyst sees it: rendered by headless Chromium, Thai glyphs and all.

Chromium and the Thai fonts come from Debian's packages (``chromium``,
``fonts-thai-tlwg``), installed on demand by the session fixture below; no
browser is ever downloaded any other way. RISK_CHROMIUM names another browser
binary instead (and nothing is installed then). Screenshots are kept under
``tests/artifacts/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import require
from PIL import Image  # Pillow comes with matplotlib, a pinned dependency

from risk.data.geography import PROVINCES

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).parent / "artifacts"
APT_PACKAGES = ("chromium", "fonts-thai-tlwg")
APT_TIMEOUT_S = 1800
RENDER_TIMEOUT_S = 180


def thai_fonts() -> list[str]:
    """Font files fontconfig knows that cover Thai (empty when fc-list is missing)."""
    if shutil.which("fc-list") is None:
        return []
    out = subprocess.run(["fc-list", ":lang=th", "file"], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if line.strip()]


def apt_install(packages: tuple[str, ...]) -> str | None:
    """Install Debian packages; return why not, or None when it worked."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available on this machine"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return "installing Debian packages needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *packages]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=APT_TIMEOUT_S)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return f"`{' '.join(cmd)}` failed: {' | '.join(tail)}"
    return None


HOW_TO_ENABLE = (f"run the tests as root with apt-get reachable (they install {' and '.join(APT_PACKAGES)}), "
                 "or `apt-get install chromium fonts-thai-tlwg` first, or set RISK_CHROMIUM to a browser binary")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of the browser: RISK_CHROMIUM when set, else Debian's chromium, installed (with the Thai fonts) when missing."""
    named = os.environ.get("RISK_CHROMIUM")
    if named:
        require(os.access(named, os.X_OK), f"RISK_CHROMIUM={named} is not an executable file", HOW_TO_ENABLE)
        return named
    if shutil.which("chromium") is None or not thai_fonts():
        why = apt_install(APT_PACKAGES)
        require(why is None, f"cannot install {' and '.join(APT_PACKAGES)}: {why}", HOW_TO_ENABLE)
    found = shutil.which("chromium")
    require(found is not None, "apt-get ran but `chromium` is still not on PATH", HOW_TO_ENABLE)
    return found


def screenshot(chromium: str, html: Path, png: Path, tmp_path: Path, size: str = "1280,2400") -> Path:
    """Render ``html`` with headless Chromium into ``png`` and return its path."""
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    cmd = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        f"--screenshot={png}", f"--window-size={size}", html.resolve().as_uri(),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=RENDER_TIMEOUT_S)
    assert png.exists(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-500:]}"
    return png


def dark_pixels(png: Path) -> int:
    """How many pixels of a screenshot are darker than mid-grey."""
    with Image.open(png) as img:
        grey = img.convert("L")
        return sum(grey.histogram()[:128])


def test_thai_fonts_are_installed(chromium: str) -> None:
    assert thai_fonts(), "fc-list :lang=th lists no font; install fonts-thai-tlwg"


def test_a_thai_word_renders_as_glyphs(chromium: str, tmp_path: Path) -> None:
    # Two different Thai words of the same length: real glyphs differ, tofu boxes would not.
    pngs = []
    for word in ("สวัสดี", "ขอบคุณ"):
        page = tmp_path / f"{len(pngs)}.html"
        page.write_text(
            '<!doctype html><html lang="th"><meta charset="utf-8"><body style="margin:0;'
            'font: 120px \'Noto Sans Thai\', Sarabun, Loma, Garuda, Norasi, sans-serif">'
            f"{word}</body></html>",
            encoding="utf-8",
        )
        pngs.append(screenshot(chromium, page, ARTIFACTS / f"thai_word_{len(pngs)}.png", tmp_path, "600,200"))
    assert dark_pixels(pngs[0]) > 500, "the Thai word rendered as a blank page"
    with Image.open(pngs[0]) as first, Image.open(pngs[1]) as second:
        assert first.tobytes() != second.tobytes(), "two Thai words render the same: tofu boxes?"


REGION_BASE = {"north": 0.09, "northeast": 0.13, "central": 0.06, "east": 0.08, "west": 0.11, "south": 0.15}


def national_inputs():
    """A whole country of made-up but plausible summaries: every province, region and the nation."""
    from risk.scoring.report import ReportInputs

    def summaries(shift: float, offset: float = 0.0) -> pd.DataFrame:
        rows = []
        for code, (_, region) in PROVINCES.items():
            students = 20_000 + 311 * int(code)
            rate = REGION_BASE[region] + 0.006 * (int(code) % 7) + shift * (int(code) % 3 - 1) + offset
            problem = round(students * rate * 0.3)
            at_risk = round(students * rate) - problem
            rows.append(("province", code, region, students, at_risk, problem))
        frame = pd.DataFrame(rows, columns=["level", "area_code", "region", "students", "at_risk", "problem"])
        regions = frame.groupby("region", as_index=False)[["students", "at_risk", "problem"]].sum()
        regions = regions.rename(columns={"region": "area_code"}).assign(level="region")
        nation = frame[["students", "at_risk", "problem"]].sum().to_frame().T.assign(level="nation", area_code="TH")
        out = pd.concat([frame.drop(columns="region"), regions, nation], ignore_index=True)
        out["normal"] = out["students"] - out["at_risk"] - out["problem"]
        out["flagged_rate"] = (out["at_risk"] + out["problem"]) / out["students"]
        return out

    grades = ["K1", "K2", "K3", "P1", "P2", "P3", "P4", "P5", "P6", "M1", "M2", "M3", "M4", "M5", "M6"]
    flagged = [0.03, 0.03, 0.04, 0.05, 0.05, 0.06, 0.07, 0.08, 0.16, 0.10, 0.12, 0.21, 0.09, 0.08, 0.07]
    by_grade = pd.DataFrame({
        "grade_level": grades,
        "at_risk": [round(150_000 * f * 0.7) for f in flagged],
        "problem": [round(150_000 * f * 0.3) for f in flagged],
    })
    by_grade["normal"] = 150_000 - by_grade["at_risk"] - by_grade["problem"]
    features = [("attendance_rate_term", 0.31, "drifted"), ("gpa_last_term", 0.14, "watch"),
                ("absent_streak_max", 0.05, "stable"), ("household_income_baht_month", 0.02, "stable")]
    return ReportInputs(
        as_of=dt.date(2024, 7, 1), term="2567-1", generated_at=dt.datetime(2024, 7, 2, 6, 30),
        model={"name": "dropout-risk", "version": "7", "alias": "champion",
               "trained_window": ["2564-1", "2566-2"],
               "evaluation": {"roc_auc": 0.842, "ece": 0.012, "recall_top10": 0.61,
                              "oracle": {"roc_auc": 0.871, "recall_top10": 0.66}}},
        summaries=summaries(0.0), previous_summaries=summaries(0.01, -0.008), by_grade=by_grade,
        drift={"score_psi": 0.08, "threshold": 0.2, "drifted": ["attendance_rate_term"],
               "features": [{"name": n, "psi": p, "status": s} for n, p, s in features]},
        alerts={"newly_at_risk": 41_250, "escalated_problem": 8_130, "improved": 12_904, "left_register": 1_377},
    )  # fmt: skip


def test_the_term_report_renders_in_chromium(chromium: str, tmp_path: Path) -> None:
    from risk.scoring.report import write_report

    html = write_report(national_inputs(), tmp_path / "term_report.html")
    png = screenshot(chromium, html, ARTIFACTS / "term_report.png", tmp_path)
    with Image.open(png) as img:
        assert img.size == (1280, 2400)
        colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
    assert png.stat().st_size > 50_000, "the screenshot is suspiciously small"
    assert len(colours) > 200, "the screenshot has almost no colours: a blank or broken page"
    assert dark_pixels(png) > 20_000, "the screenshot has almost no text"
