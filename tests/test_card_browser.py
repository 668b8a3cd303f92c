"""The model card as an analyst sees it: rendered by headless Chromium, Thai glyphs, ties and red misses.

The browser, the Thai fonts and the screenshot helpers are those of the term report's browser test
(``chromium`` installs Debian's ``chromium`` and ``fonts-thai-tlwg`` on demand; RISK_CHROMIUM names
another binary). Screenshots go to ``tests/artifacts/`` (git-ignored); ``model_card_readme.png`` is
the clipped, palette-reduced copy that ``docs/images/model_card.png`` is taken from.
"""

from __future__ import annotations

import json
import re
import subprocess
from html import unescape
from pathlib import Path

import pytest
from PIL import Image
from test_plots_card import POLICY, realistic_card_info
from test_report_browser import ARTIFACTS, RENDER_TIMEOUT_S, chromium, dark_pixels, screenshot  # noqa: F401  (chromium: the session fixture that installs it)

from risk.models.card import model_card_html

pytestmark = pytest.mark.browser

SIZE = "1280,4200"
MISSED_BACKGROUND = (254, 243, 242)  # #fef3f2: only a missed target's box and row are this colour
MISSED_TEXT = (180, 35, 24)  # #b42318
README_HEIGHT = 2700  # the README's picture: header, what it is for, quality and the start of the policy


def rendered_text(browser: str, html: Path, tmp_path: Path) -> str:
    """The text of the page after Chromium (``browser``) parsed it (``--dump-dom``), tags removed."""
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           f"--user-data-dir={tmp_path / 'chromium-dom'}", "--dump-dom", html.resolve().as_uri()],
                          capture_output=True, text=True, timeout=RENDER_TIMEOUT_S)
    assert "<body" in done.stdout, f"chromium dumped no DOM (exit {done.returncode}): {done.stderr[-500:]}"
    body = done.stdout.split("<body", 1)[1]
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", body)).split())


def pixels_near(png: Path, colour: tuple[int, int, int], tolerance: int = 0) -> int:
    """How many pixels are within ``tolerance`` of ``colour`` on every channel."""
    with Image.open(png) as img:
        rgb = img.convert("RGB")
        return sum(count for count, pixel in rgb.getcolors(maxcolors=4_000_000)
                   if all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True)))


def card_page(tmp_path: Path, name: str, **changes) -> Path:
    page = tmp_path / f"{name}.html"
    page.write_text(model_card_html(realistic_card_info(tmp_path, **changes)), encoding="utf-8")
    return page


@pytest.fixture(scope="module")
def card_png(chromium, tmp_path_factory) -> tuple[Path, Path]:  # noqa: F811
    """(page, screenshot) of the realistic card: a tie with the logistic baseline and one missed target."""
    tmp_path = tmp_path_factory.mktemp("card")
    page = card_page(tmp_path, "model_card")
    return page, screenshot(chromium, page, ARTIFACTS / "model_card.png", tmp_path, SIZE)


def test_the_card_uses_a_font_that_has_thai_glyphs(card_png) -> None:
    page, _ = card_png
    stack = re.search(r"body \{ font-family: ([^;]+);", page.read_text(encoding="utf-8")).group(1)
    wanted = [name.strip().strip('"') for name in stack.split(",")]
    thai = subprocess.run(["fc-list", ":lang=th", "family"], capture_output=True, text=True).stdout
    installed = {family.strip() for line in thai.splitlines() for family in line.split(",")}
    assert installed & set(wanted), f"none of {wanted} covers Thai here; fc-list :lang=th gives {sorted(installed)}"


def test_the_card_renders_as_a_page_of_text(card_png) -> None:
    _, png = card_png
    with Image.open(png) as img:
        assert img.size == (1280, 4200)
        colours = img.convert("RGB").getcolors(maxcolors=4_000_000)
    assert len(colours) > 200, "the screenshot has almost no colours: a blank or broken page"
    assert dark_pixels(png) > 40_000, "the screenshot has almost no text"


def test_chromium_reads_thai_headings_the_tie_and_no_policy_json(chromium, card_png, tmp_path) -> None:  # noqa: F811
    page, _ = card_png
    text = rendered_text(chromium, page, tmp_path)
    for heading in ("ใช้ทำอะไร และไม่ใช้ทำอะไร", "คุณภาพเทียบกับ oracle และแบบจำลองพื้นฐาน", "นโยบายระดับความเสี่ยง",
                    "ความเป็นธรรม: ความหมายสำหรับครู"):
        assert heading in text
    assert "LightGBM ties the logistic baseline on this data (AUC 0.842 vs 0.843)." in text
    assert "LightGBM ได้ผลเท่ากับแบบจำลองโลจิสติกพื้นฐานบนข้อมูลนี้" in text
    assert "Target missed:" in text and "Fallback used:" in text
    assert "problem_threshold" not in text and '{"' not in text and '"targets"' not in text


def test_a_missed_target_is_red_on_the_screen_and_nothing_is_without_one(chromium, card_png, tmp_path) -> None:  # noqa: F811
    _, png = card_png
    policy = {k: v for k, v in POLICY.items() if k != "missed"} | {"missed": []}
    kept = screenshot(chromium, card_page(tmp_path, "kept", policy=policy), ARTIFACTS / "model_card_kept.png",
                      tmp_path, SIZE)
    assert pixels_near(png, MISSED_BACKGROUND) > 20_000, "no red box or row for the missed target"
    assert pixels_near(png, MISSED_TEXT, tolerance=12) > 300, "the missed target's words are not red"
    assert pixels_near(kept, MISSED_BACKGROUND) == 0, "a policy that missed nothing still shows a red box"


def test_the_readme_picture_is_clipped_and_small(card_png) -> None:
    _, png = card_png
    readme = ARTIFACTS / "model_card_readme.png"
    with Image.open(png) as img:
        # 64 colours keep text and the red box crisp and cut the file to a fraction of the full screenshot.
        img.convert("RGB").crop((0, 0, 1280, README_HEIGHT)).quantize(colors=64).save(readme, optimize=True)
    assert readme.stat().st_size < 300_000, f"{readme} is {readme.stat().st_size:,} bytes"
    assert dark_pixels(readme) > 20_000


def test_the_card_of_a_trained_model_compares_it_with_each_baseline_in_words(chromium, champion_store,  # noqa: F811
                                                                             tmp_path) -> None:
    # The card `risk train` logged for the session's champion (tests/conftest.py), as read back from MLflow.
    import mlflow

    from risk.models.review import review_tables

    _, uri, result, registered = champion_store
    # Other tests in this process may have pointed MLflow at stores of their own: read from the champion's.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    page = review_tables(registered["run_id"], tmp_path / "run").model_card
    html = page.read_text(encoding="utf-8")
    png = screenshot(chromium, page, ARTIFACTS / "model_card_trained.png", tmp_path, SIZE)
    assert dark_pixels(png) > 40_000
    text = rendered_text(chromium, page, tmp_path)
    assert "ใช้ทำอะไร และไม่ใช้ทำอะไร" in text and "นโยบายระดับความเสี่ยง" in text
    ours = result.evaluation.metric("model", "roc_auc")
    baselines = [m for m in result.evaluation.table["model"].unique() if m not in ("model", "oracle")]
    assert {"logistic", "abc_rule"} <= set(baselines)
    for model in baselines:
        pair = f"(AUC {ours:.3f} vs {result.evaluation.metric(model, 'roc_auc'):.3f})."
        assert re.search(rf"LightGBM (ties|is ahead of|is behind) (?:(?!LightGBM).)*?{re.escape(pair)}", text), (model, pair)
    policy = result.bundle.policy
    assert f"≥ {100 * policy.problem_threshold:.3g}%" in text  # the pooled problem threshold, in words
    assert "problem_threshold" not in html and "&#34;" not in html
    # Red exactly when the policy recorded a missed target (the policy's own record, when it keeps one).
    recorded = json.loads(policy.to_json()).get("missed") or []
    assert ('<div class="missed"' in html) == bool(recorded)
    # The protected-inputs comparison side by side exactly when training measured both settings.
    assert ('<table class="protected">' in html) == bool(getattr(result, "protected_comparison", None))
