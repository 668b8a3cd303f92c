"""The term report as an analyst sees it: rendered by headless Chromium, Thai glyphs and all.

Chromium and the Thai fonts come from Debian's packages (``chromium``,
``fonts-thai-tlwg``), installed on demand by the session fixture below; no
browser is ever downloaded any other way. RISK_CHROMIUM names another browser
binary instead (and nothing is installed then). Screenshots are kept under
``tests/artifacts/`` (git-ignored) for a person to look at; ``term_report_readme.png`` is the
clipped, palette-reduced copy that ``docs/images/term_report.png`` (the README's) is taken from
when that file is missing.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pandas as pd
import pytest
from conftest import require
from PIL import Image  # Pillow comes with matplotlib, a pinned dependency

from risk.data.geography import PROVINCES

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).parent / "artifacts"
README_IMAGE = Path(__file__).parent.parent / "docs" / "images" / "term_report.png"
README_HEIGHT = 1840  # the README's picture: header, nation, what each class means, the model beside its baselines
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


# Tak (63): 47 of 103 students flagged, the example of a rate that needs its counts; Mae Hong Son
# (58): 20 students, 15 flagged, too few to rank. Every other province has 20,000+ students.
SMALL_PROVINCES = {"63": (103, 40, 7), "58": (20, 12, 3)}
POLICY = {
    "problem_threshold": 0.31, "at_risk_threshold": 0.062, "thresholds_by": "year_end_term",
    "groups": {"0": {"problem_threshold": 0.284, "at_risk_threshold": 0.048},
               "1": {"problem_threshold": 0.412, "at_risk_threshold": 0.117}},
    "rules": [{"id": "exam_line", "feature": "att_rate_term", "below": 0.8, "raise_to": "at_risk",
               "reason": {"en": "Attendance under 80%", "th": "มาเรียนต่ำกว่า 80%"}}],
    "outcomes": {"normal": {"students": 131_250, "dropouts": 1_181, "dropout_rate": 0.009, "share": 0.875, "raised_by_rule": 0},
                 "at_risk": {"students": 16_200, "dropouts": 1_053, "dropout_rate": 0.065, "share": 0.108, "raised_by_rule": 2_100},
                 "problem": {"students": 2_550, "dropouts": 94, "dropout_rate": 0.037, "share": 0.017, "raised_by_rule": 0}},
    "missed": [{"target": "problem_precision", "group": "0", "wanted": 0.5, "achieved": 0.037, "where": "held_out",
                "fallback": "the top 1% of students by probability"}],
}  # fmt: skip
EVALUATION = {
    "model.roc_auc": 0.842, "model.recall_top10": 0.564, "model.auc_ratio_to_oracle": 0.97,
    "logistic.roc_auc": 0.843, "logistic.recall_top10": 0.551, "context_only.roc_auc": 0.781,
    "context_only.recall_top10": 0.402, "abc_rule.roc_auc": 0.702, "abc_rule.recall_top10": 0.297,
    "oracle.roc_auc": 0.868, "oracle.recall_top10": 0.618, "model.lead_week6.recall_top10": 0.51,
}  # fmt: skip


def national_inputs(first_term: bool = False):
    """A whole country of made-up but plausible summaries: every province, region and the nation.

    With ``first_term`` there is no earlier term (so no change section, and alerts are all new).
    """
    from risk.scoring.report import ReportInputs

    def summaries(shift: float, offset: float = 0.0) -> pd.DataFrame:
        rows = []
        for code, (_, region) in PROVINCES.items():
            if code in SMALL_PROVINCES:
                rows.append(("province", code, region, *SMALL_PROVINCES[code]))
                continue
            students = 20_000 + 311 * int(code)
            rate = REGION_BASE[region] + 0.006 * (int(code) % 7) + shift * (int(code) % 3 - 1) + offset
            problem = round(students * rate * 0.3)
            at_risk = round(students * rate) - problem
            rows.append(("province", code, region, students, at_risk, problem))
        frame = pd.DataFrame(rows, columns=["level", "area_code", "region", "students", "at_risk", "problem"])
        regions = frame.groupby("region", as_index=False)[["students", "at_risk", "problem"]].sum()
        regions = regions.rename(columns={"region": "area_code"}).assign(level="region")
        nation = frame[["students", "at_risk", "problem"]].sum().to_frame().T.assign(level="nation", area_code="TH")
        # A few districts to rank: 800, 450 and 18 students (the last too few to rank) in five provinces.
        districts = pd.DataFrame([("district", f"{code}0{i + 1}", None, size, round(size * share * 0.7), round(size * share * 0.3))
                                  for code, base in (("10", 0.05), ("40", 0.12), ("50", 0.09), ("63", 0.30), ("96", 0.16))
                                  for i, (size, share) in enumerate(((800, base), (450, base * 1.4), (18, 0.5)))],
                                 columns=frame.columns)  # fmt: skip
        out = pd.concat([frame.drop(columns="region"), regions, nation, districts.drop(columns="region")],
                        ignore_index=True)
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
    # A calibrated check on an unchanged population: school days so far moves with the calendar (PSI 2.997
    # past its own 0.25, yet it cannot ring), everything else within its term-to-term variation: no banner.
    features = [("school_days_so_far", 2.997, "drifted", 0.25, False), ("att_rate_term", 0.09, "stable", 0.12, True),
                ("gpa_last_term", 0.06, "stable", 0.10, True), ("income_baht_month", 0.02, "stable", 0.08, True)]
    current = summaries(0.0)
    # A tenth of each province's at-risk students are there by the exam-line rule, not the model.
    raised = current[["level", "area_code", "at_risk"]].assign(at_risk=lambda f: f["at_risk"] // 10, problem=0)
    return ReportInputs(
        as_of=dt.date(2024, 7, 1), term="2567-1", generated_at=dt.datetime(2024, 7, 2, 6, 30),
        model={"name": "dropout-risk", "version": "7", "alias": "champion",
               "trained window": {"train": ["2564-1", "2565-1"], "calibration": ["2565-2"], "test": ["2566-2"]}},
        evaluation=EVALUATION, policy=POLICY, raised=raised,
        model_card="file:///srv/risk/mlartifacts/1/4f2a/artifacts/evaluation/model_card.html",
        summaries=current, previous_summaries=None if first_term else summaries(0.01, -0.008), by_grade=by_grade,
        drift={"score_psi": 0.002, "threshold": 0.2, "drifted": ["school_days_so_far"], "score_limit": 0.05,
               "warning": False, "warning_features": [], "basis": "terms 2565-2 and 2566-1 of the training data compared",
               "features": [{"name": n, "psi": p, "status": s, "limit": lim, "in_warning": ring}
                            for n, p, s, lim, ring in features]},
        alerts=({"newly_at_risk": 41_250, "escalated_problem": 8_130} if first_term else
                {"newly_at_risk": 41_250, "escalated_problem": 8_130, "improved": 12_904, "left_register": 1_377}),
        alerts_by_rule={"newly_at_risk": 4_370},
    )  # fmt: skip


def rendered_text(browser: str, html: Path, tmp_path: Path) -> str:
    """The text of the page after Chromium parsed it (``--dump-dom``), tags removed, spaces collapsed."""
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           f"--user-data-dir={tmp_path / 'chromium-dom'}", "--dump-dom", html.resolve().as_uri()],
                          capture_output=True, text=True, timeout=RENDER_TIMEOUT_S)
    assert "<body" in done.stdout, f"chromium dumped no DOM (exit {done.returncode}): {done.stderr[-500:]}"
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", done.stdout.split("<body", 1)[1])).split())


@pytest.fixture(scope="module")
def first_term(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(page, screenshot) of a first term's national report: no earlier run, a missed target, a tie."""
    from risk.scoring.report import write_report

    tmp_path = tmp_path_factory.mktemp("term-report")
    html = write_report(national_inputs(first_term=True), tmp_path / "term_report.html")
    return html, screenshot(chromium, html, ARTIFACTS / "term_report.png", tmp_path)


def test_the_term_report_renders_in_chromium(first_term: tuple[Path, Path]) -> None:
    _, png = first_term
    with Image.open(png) as img:
        assert img.size == (1280, 2400)
        colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
    assert png.stat().st_size > 50_000, "the screenshot is suspiciously small"
    assert len(colours) > 200, "the screenshot has almost no colours: a blank or broken page"
    assert dark_pixels(png) > 20_000, "the screenshot has almost no text"


def test_chromium_reads_the_classes_counts_and_model_in_thai_first(chromium: str, first_term: tuple[Path, Path],
                                                                  tmp_path: Path) -> None:
    text = rendered_text(chromium, first_term[0], tmp_path)
    for words in ("ความหมายของแต่ละกลุ่ม / What each class means", "กลุ่มมีปัญหา problem", "กลุ่มเสี่ยง at risk",
                  "กลุ่มปกติ normal", "ภาคเรียนที่ 1 / semester 1 : โอกาส ≥ 28.4%", "ภาคเรียนที่ 2 / semester 2 : โอกาส ≥ 41.2%",
                  "คุณภาพของแบบจำลอง / Model quality", "การถดถอยโลจิสติก logistic regression 0.843 55.1%"):
        assert words in text, words
    # The at-risk row: 235,750 students, 212,175 by the model and 23,575 by the exam-line rule; 6.5% dropped out.
    assert "235,750 212,175 23,575 6.5% 1,053 / 16,200" in text
    assert "ตาก Tak 45.6% (47 / 103)" in text  # Tak's bar, first of the highest, with its counts
    assert re.search(r"63 ตาก Tak .{0,40}? 103 40 7 47 / 103 4 45.6%", text)
    assert "On this data the model does no better than the logistic regression baseline." in text
    assert not re.search(r"\b(model|logistic|oracle|context_only|abc_rule|champion)\.[a-z_0-9]+", text)
    assert "recall_top10" not in text and "roc_auc" not in text


def test_a_first_term_reads_newly_flagged_never_escalated(chromium: str, first_term: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    text = rendered_text(chromium, first_term[0], tmp_path)
    assert "There is no earlier term to compare with." in text
    assert "เข้ากลุ่มมีปัญหา (ครั้งแรกที่ประเมิน) newly flagged as problem (first scored term) 8,130" in text
    assert "escalated to problem" not in text and "เลื่อนเป็นกลุ่มมีปัญหา" not in text
    assert "newly flagged at risk (first scored term) 41,250 4,370" in text  # of which 4,370 by the exam-line rule


def test_a_later_term_keeps_escalated(chromium: str, tmp_path: Path) -> None:
    from risk.scoring.report import write_report

    text = rendered_text(chromium, write_report(national_inputs(), tmp_path / "later.html"), tmp_path)
    assert "เลื่อนเป็นกลุ่มมีปัญหา escalated to problem 8,130" in text and "first scored term" not in text


def test_a_small_province_is_never_among_the_highest(chromium: str, first_term: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    text = rendered_text(chromium, first_term[0], tmp_path)
    highest = text.split("15 highest provinces", 1)[1].split("รายภาค / Regions", 1)[0]
    assert "Mae Hong Son" not in highest and "(1 จังหวัด)" in highest  # 15 of 20 flagged, but 20 students
    assert "other small areas (5, under 30 students) 45 / 90" in text


def test_an_unchanged_population_shows_no_drift_banner(chromium: str, first_term: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    text = rendered_text(chromium, first_term[0], tmp_path)
    assert "No feature or score drifted past the threshold." in text and "Read first" not in text
    assert "school_days_so_far 2.997 0.25" in text and "not counted (moves with the calendar)" in text


def test_the_missed_target_is_red_on_the_screen(first_term: tuple[Path, Path]) -> None:
    with Image.open(first_term[1]) as img:
        missed = sum(n for n, pixel in img.convert("RGB").getcolors(maxcolors=4_000_000) if pixel == (253, 224, 221))
    assert missed > 20_000, "no red box for the missed semester-1 problem target"  # #fde0dd


def test_the_readme_picture_is_clipped_small_and_in_docs(first_term: tuple[Path, Path]) -> None:
    readme = ARTIFACTS / "term_report_readme.png"
    with Image.open(first_term[1]) as img:
        # 64 colours keep the text and the red box crisp and cut the file to a fraction of the screenshot.
        img.convert("RGB").crop((0, 0, 1280, README_HEIGHT)).quantize(colors=64).save(readme, optimize=True)
    assert readme.stat().st_size < 300_000, f"{readme} is {readme.stat().st_size:,} bytes"
    assert dark_pixels(readme) > 20_000
    # The README's copy is written when missing (delete it to refresh it), so a test run leaves the tree clean.
    if not README_IMAGE.exists():
        README_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(readme, README_IMAGE)
    with Image.open(README_IMAGE) as committed:
        assert committed.size == (1280, README_HEIGHT) and README_IMAGE.stat().st_size < 300_000
