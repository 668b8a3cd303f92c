"""Figures are written as PNG files; the model card is one escaped, self-contained page."""

import re
from datetime import datetime
from html import unescape

import numpy as np
import pandas as pd
import pytest

from risk.features.catalog import load_catalog
from risk.models.card import ModelCardInfo, model_card_html
from risk.models.card_policy import policy_view
from risk.models.card_views import auc_standard_error, quality_view
from risk.models.plots import calibration_plot, lead_time_plot, shap_summary_plot
from risk.scoring.settings import DEFAULT_CATALOG

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    data = path.read_bytes()
    return len(data) > 1000 and data.startswith(PNG)


def test_calibration_plot_writes_a_png(tmp_path):
    curve = pd.DataFrame({"mean_predicted": [0.02, 0.05, 0.2], "observed_rate": [0.01, 0.06, 0.25]})
    path = calibration_plot({"lightgbm": curve, "oracle": curve * 0.9}, tmp_path / "cal.png")
    assert path == tmp_path / "cal.png"
    assert _is_png(path)


def test_lead_time_plot_writes_a_png(tmp_path):
    table = pd.DataFrame({
        "week": [2, 6, 10, 2, 6, 10],
        "model": ["lightgbm"] * 3 + ["oracle"] * 3,
        "recall_top10": [0.2, 0.35, 0.4, 0.3, 0.45, 0.5],
    })
    assert _is_png(lead_time_plot(table, tmp_path / "lead.png"))


def test_shap_summary_plot_writes_a_png_with_missing_values(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    X[::5, 1] = np.nan
    contribs = X * np.array([0.1, 0.5, 0.0, 1.0])
    contribs[np.isnan(contribs)] = 0.0
    path = shap_summary_plot(contribs, X, ["a", "b", "c", "d"], tmp_path / "shap.png", max_features=3)
    assert _is_png(path)


def test_shap_summary_plot_refuses_mismatched_shapes(tmp_path):
    with pytest.raises(ValueError, match="feature names"):
        shap_summary_plot(np.zeros((5, 3)), np.zeros((5, 3)), ["a", "b"], tmp_path / "x.png")


# ---------------------------------------------------------------- the model card
# A realistic card: the overall slice of a demo-sized held-out term (logistic within 0.001 of
# LightGBM, the ABC rule far behind), a class policy with per-semester thresholds whose semester-1
# problem precision collapsed on the held-out term (a semester-1 term: 1 dropout among 27 in
# `problem`), and two flagged fairness groups.
POLICY = {
    "problem_threshold": 0.31, "at_risk_threshold": 0.052,
    "rules": [{"id": "exam_line", "feature": "att_rate_term", "below": 0.8, "above": None, "raise_to": "at_risk",
               "min_grade": "P1",
               "reason": {"en": "Attendance of {value} is under the 80% line needed to sit end-of-term exams",
                          "th": "มาเรียน {value} ต่ำกว่าเกณฑ์ 80% ที่มีสิทธิ์สอบปลายภาค (มส)"}}],
    "targets": {"problem_precision": 0.5, "at_risk_recall": 0.6, "at_risk_capacity_share": 0.15},
    "achieved": {"problem_precision": 0.51, "problem_share": 0.004, "flagged_recall": 0.58, "flagged_share": 0.15},
    "thresholds_by": "year_end_term",
    "groups": {
        "0": {"problem_threshold": 0.22, "at_risk_threshold": 0.031, "rows": 4000,
              "achieved": {"problem_precision": 0.5, "problem_share": 0.002, "flagged_recall": 0.55,
                           "flagged_share": 0.15},
              "held_out": {"problem_precision": 0.037, "problem_share": 0.009, "flagged_recall": 0.571,
                           "flagged_share": 0.149}},
        "1": {"problem_threshold": 0.41, "at_risk_threshold": 0.083, "rows": 3800,
              "achieved": {"problem_precision": 0.53, "problem_share": 0.006, "flagged_recall": 0.61,
                           "flagged_share": 0.149}},
    },
    "outcomes": {
        "normal": {"students": 2553, "dropouts": 39, "dropout_rate": 39 / 2553, "share": 0.851, "raised_by_rule": 0},
        "at_risk": {"students": 420, "dropouts": 40, "dropout_rate": 40 / 420, "share": 0.14, "raised_by_rule": 61},
        "problem": {"students": 27, "dropouts": 1, "dropout_rate": 1 / 27, "share": 0.009, "raised_by_rule": 0},
    },
    "missed": [{"target": "problem_precision", "group": "0", "wanted": 0.5, "achieved": 0.037, "where": "held_out",
                "fallback": "problem is the top 1% of students by probability (capacity rule)"}],
}
PROTECTED = {"used": "with_protected",
             "with_protected": {"auc": 0.842, "recall_top10": 0.61, "fairness_flags": 3},
             "without_protected": {"auc": 0.839, "recall_top10": 0.6, "fairness_flags": 2}}


def realistic_card_info(folder, **changes) -> ModelCardInfo:
    """A card as ``risk train`` would record it for a demo-sized term (figures written into ``folder``)."""
    curve = pd.DataFrame({"mean_predicted": [0.01, 0.05, 0.2], "observed_rate": [0.012, 0.047, 0.21]})
    image = calibration_plot({"model": curve}, folder / "cal.png")
    models = ["oracle", "model", "logistic", "context_only", "abc_rule"]
    evaluation = pd.DataFrame({
        "slice": ["overall"] * 5 + ["grade=P6"] * 5,
        "model": models * 2,
        "rows": [3000] * 5 + [400] * 5,
        "positives": [80] * 5 + [30] * 5,
        "roc_auc": [0.871, 0.842, 0.843, 0.781, 0.66, 0.83, 0.80, 0.79, 0.70, 0.61],
        "recall_top10": [0.66, 0.61, 0.6, 0.48, 0.35, 0.7, 0.6, 0.6, 0.5, float("nan")],
        "precision_top10": [0.18, 0.16, 0.16, 0.13, 0.09, 0.5, 0.45, 0.45, 0.38, 0.3],
        "ece": [0.004, 0.012, 0.015, 0.011, float("nan")] * 2,
    })
    evaluation["auc_ratio_to_oracle"] = evaluation["roc_auc"] / evaluation.groupby("slice")["roc_auc"].transform("first")
    fairness = pd.DataFrame({
        "attribute": ["sex", "sex", "non_thai", "non_thai"],
        "group": ["female", "male", "no", "yes"],
        "rows": [1500, 1500, 2900, 100], "positives": [35, 45, 76, 4],
        "recall_ratio": [1.0, 0.6, 1.0, 0.95], "fpr_ratio": [1.0, 1.1, 1.0, 1.6],
        "precision_ratio": [1.0, 0.9, 1.0, 0.85], "calibration_ratio": [1.0, 1.05, 1.0, 1.1],
        "flagged_disparity": [False, True, False, True],
        "disparity_reasons": ["", "recall 0.60x best", "", "fpr 1.60x best"],
    })
    info = {
        "model_name": "dropout-risk", "version": "7", "created": datetime(2026, 7, 24, 9, 30),
        "code_version": "6bcd0e7",
        "data_window": {"train": ["2567-1", "2567-2"], "calibration": "2568-1", "test": "2568-2"},
        "input_hash": "ab" * 32, "catalog_version": "features-2026-07",
        "rows": {"train": {"rows": 9000, "positives": 270}, "test": {"rows": 3000, "positives": 80}},
        "params": {"num_leaves": 31, "note": "<script>alert('x')</script>"},
        "policy": POLICY, "calibration": {"method": "isotonic", "brier_held_out_half": {"isotonic": 0.041}},
        "evaluation": evaluation, "key_model": "model", "fairness": fairness,
        "images": {"calibration": image, "calibration again": image}, "protected_comparison": PROTECTED,
    }
    return ModelCardInfo(**{**info, **changes})


@pytest.fixture
def card_info(tmp_path):
    return realistic_card_info(tmp_path)


def _text(html: str) -> str:
    """The page's text with tags removed and whitespace collapsed, as a reader sees it."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_card_names_the_model_and_every_evaluation_row(card_info):
    html = model_card_html(card_info)
    assert "dropout-risk" in html.split("</h1>")[0]
    for model in ("oracle", "model", "logistic", "context_only", "abc_rule"):
        assert f"<td>{model}</td>" in html
    assert "<td>grade=P6</td>" in html
    assert "0.842" in html  # LightGBM's overall AUC, 3 decimals


def test_card_embeds_each_image_inline(card_info):
    html = model_card_html(card_info)
    assert html.count('<img src="data:image/png;base64,') == 2
    assert "Calibration: predicted probability against the observed dropout rate" in _text(html)
    assert "การปรับเทียบ: ความน่าจะเป็นที่ทำนาย" in _text(html)
    assert not re.search(r'(src|href)="(https?:|file:|/)', html)  # nothing fetched from elsewhere


def test_card_escapes_values(card_info):
    html = model_card_html(card_info)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_card_highlights_overall_model_and_flagged_rows(card_info):
    html = model_card_html(card_info)
    assert '<tr class="key ours"><td>overall</td><td>model</td>' in html
    assert '<tr class="ours"><td>grade=P6</td>' in html
    assert '<tr class="flag"><td>sex</td><td>male</td>' in html
    assert '<tr><td>sex</td><td>female</td>' in html


def test_card_is_thai_first_with_english_beside(card_info):
    html = model_card_html(card_info)
    assert '<html lang="th">' in html and '<meta charset="utf-8">' in html
    headings = re.findall(r"<h2>(.*?)</h2>", html)
    assert len(headings) >= 6
    for heading in headings:  # each heading: Thai text, then the English in its own span
        thai, english = heading.split('<span class="en" lang="en">')
        assert re.search("[\u0e00-\u0e7f]", thai), heading
        assert re.search("[A-Za-z]{3}", english), heading
    text = _text(html)
    assert "ใช้ทำอะไร และไม่ใช้ทำอะไร" in text and "นโยบายระดับความเสี่ยง" in text
    assert "Not an automated decision" in text and "ไม่ใช่การตัดสินใจอัตโนมัติ" in text
    assert "not how well it will do on real students" in text
    assert "2567-1, 2567-2" in text and "ทดสอบ · held-out test 3,000 80 2.67%" in text


def test_a_use_the_trainer_wrote_is_shown_beside_the_plain_lists(card_info):
    html = model_card_html(card_info.model_copy(update={"intended_use": "Pilot schools in Khon Kaen only."}))
    assert "Recorded with the model: Pilot schools in Khon Kaen only." in _text(html)
    assert "Recorded with the model" not in _text(model_card_html(card_info))


def test_card_calls_a_tie_with_the_logistic_baseline_a_tie(card_info):
    text = _text(model_card_html(card_info))
    assert "LightGBM ties the logistic baseline on this data (AUC 0.842 vs 0.843)." in text
    assert "LightGBM ได้ผลเท่ากับแบบจำลองโลจิสติกพื้นฐานบนข้อมูลนี้" in text
    assert "a simpler baseline ties" in text


def test_card_says_by_how_much_a_model_is_ahead_beyond_the_tolerance(card_info):
    text = _text(model_card_html(card_info))
    assert "LightGBM is ahead of the ABC rule (attendance, behaviour, course failure) by 0.182 (AUC 0.842 vs 0.660)." in text
    assert "LightGBM is ahead of the context-only baseline (school, area and grade only) by 0.061" in text
    assert "ties the context-only" not in text
    assert "97% of the oracle's 0.871" in text  # 0.842 / 0.871 = 0.967


def test_the_tie_tolerance_is_the_auc_standard_error_on_few_dropouts():
    # Hanley & McNeil, AUC 0.8 on 50 dropouts and 50 others: Q1 = 0.8/1.2, Q2 = 1.28/1.8,
    # variance = (0.16 + 49 (Q1 - 0.64) + 49 (Q2 - 0.64)) / 2500 = 0.00198, so about 0.0445.
    assert auc_standard_error(0.8, 50, 50) == pytest.approx(0.0445, abs=0.0001)
    assert auc_standard_error(0.8, 5000, 5000) < 0.005
    evaluation = pd.DataFrame({"slice": ["overall"] * 2, "model": ["model", "logistic"], "roc_auc": [0.80, 0.78],
                               "rows": [100, 100], "positives": [50, 50]})
    small = quality_view(evaluation, "model", ["2568-2"])
    large = quality_view(evaluation.assign(rows=10_000, positives=5000), "model", ["2568-2"])
    assert "ties the logistic baseline" in small.rows[1]["verdict"].en
    assert "ahead of the logistic baseline by 0.020" in large.rows[1]["verdict"].en
    assert "0.005 or less" in large.tolerance.en


def test_card_states_the_class_policy_in_words_not_json(card_info):
    html = model_card_html(card_info)
    text = _text(html)
    assert "problem_threshold" not in html and "&#34;" not in html and '{"' not in html
    assert "semester 1 ≥ 22% · semester 2 (year end) ≥ 41% · other rows ≥ 31%" in text
    assert "ภาคเรียนที่ 1 ≥ 22%" in text
    # the held-out outcome of each class: students, share, dropouts, observed rate, raised by a rule
    assert "420 14.0% 40 9.5% 61" in text
    assert "27 0.9% 1 3.7% 0" in text
    assert ("Rule exam_line: raises a student to 'at risk' when share of this term's school days attended "
            "(present or late) is below 80%, from grade P1 up") in text
    rule = policy_view(POLICY).rules[0]
    assert "att_rate_term" not in rule.th + rule.en and "0.8" not in rule.th + rule.en
    assert "เมื่อสัดส่วนวันที่มาเรียนในภาคเรียนนี้ (มาเรียนหรือมาสาย) ต่ำกว่า 80%" in rule.th


def test_a_missed_target_is_shown_in_red_with_its_fallback(card_info):
    html = model_card_html(card_info)
    banners = re.findall(r'<div class="missed"[^>]*>(.*?)</div>', html, re.S)
    assert len(banners) == 2  # the alert at the top and the target itself
    missed = _text(banners[1])
    assert "At least 50% of the students in 'problem' really leave (precision), but only 3.7% on the held-out term" in missed
    assert "(semester 1)" in missed and "Fallback used: no threshold can be chosen on the held-out term" in missed
    assert "(Detail: problem is the top 1% of students by probability (capacity rule).)" in missed
    assert "พลาดเป้า" in missed
    red_rows = re.findall(r'<tr class="missed">(.*?)</tr>', html, re.S)
    assert len(red_rows) == 1 and "ภาคเรียนที่ 1" in red_rows[0] and "3.7%" in red_rows[0]
    assert re.search(r"\.missed, tr\.missed td \{ color: #b42318", html)  # red, not just a class name


def test_the_thai_missed_line_names_the_fallback_in_thai_from_the_policy_fields():
    view = policy_view(POLICY)
    thai = view.missed[0].th
    # Semester 1's calibration threshold (22%) stands; 3.7% of its 'problem' students left.
    assert "คงเกณฑ์ 'มีปัญหา' จากภาคเรียนที่ใช้ปรับเทียบไว้ (ความน่าจะเป็น ≥ 22%)" in thai
    assert "ซึ่งออกกลางคันจริง 3.7%" in thai
    assert "capacity rule" not in thai and "top 1%" not in thai  # the English detail stays on the English line


@pytest.mark.parametrize(("targets", "share"), [
    ({"problem_precision": 0.5, "problem_fallback_share": 0.01}, "1%"),  # the capacity the policy recorded
    ({"problem_precision": 0.5}, "0.2%"),  # else what the problem class took on semester 1's calibration rows
])
def test_a_calibration_miss_names_the_top_share_the_problem_class_falls_back_to(targets, share):
    miss = {"target": "problem_precision", "group": "0", "wanted": 0.5, "achieved": 0.21, "where": "calibration",
            "fallback": "no threshold reached precision 0.50 with a margin"}
    words = policy_view({**POLICY, "targets": targets, "missed": [miss]}).missed[0]
    assert f"กลุ่ม 'มีปัญหา' จึงเป็นนักเรียนที่มีความน่าจะเป็นสูงสุด {share} แรกแทน" in words.th
    assert f"Fallback used: the 'problem' class is instead the highest-scored {share} of students" in words.en
    assert "(Detail: no threshold reached precision 0.50 with a margin.)" in words.en and "margin" not in words.th


def test_a_rule_is_named_by_the_catalog_description_when_the_card_has_the_catalog():
    catalog = load_catalog(DEFAULT_CATALOG)
    rule = {**POLICY["rules"][0], "feature": "att_rate_20d", "below": 0.75}
    words = policy_view({**POLICY, "rules": [rule]}, catalog).rules[0]
    spec = catalog.get("att_rate_20d")
    assert f"เมื่อ{spec.description.th} ต่ำกว่า 75%" in words.th
    assert "is below 75%" in words.en and "att_rate_20d" not in words.en + words.th
    unknown = policy_view({**POLICY, "rules": [{**rule, "feature": "made_up_count", "below": 2}]}).rules[0]
    assert "when made_up_count is below 2," in unknown.en  # an unknown code stays a code


def test_a_target_short_on_the_held_out_term_but_not_recorded_missed_is_marked_short(card_info):
    html = model_card_html(card_info)
    rows = re.findall(r"<tr>(.*?)</tr>", html.split('<table class="targets">')[1].split("</table>")[0], re.S)
    pooled_precision = _text(rows[1])  # rows[0] is the header
    assert "all rows" in pooled_precision and "3.7%" in pooled_precision
    assert "short of it on the held-out term" in pooled_precision and "kept" not in pooled_precision
    pooled_recall = next(r for r in _target_rows(html) if "all rows" in r and "include 60%" in r)
    assert "58.0%" in pooled_recall and "short of it on the calibration term" in pooled_recall  # either-or, by design
    capacity = [r for r in _target_rows(html) if "No more than 15%" in r]
    assert len(capacity) == 3 and all(r.endswith("kept") for r in capacity)  # 15.0% and 14.9%: within the slack


def _target_rows(html: str) -> list[str]:
    """The text of each row of the targets table, header first."""
    table = html.split('<table class="targets">')[1].split("</table>")[0]
    return [_text(row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)]


def test_held_out_figures_come_from_the_policy_record_first_then_from_the_outcomes(card_info):
    rows = _target_rows(model_card_html(card_info))
    assert any("semester 1" in r and "include 60%" in r and "57.1%" in r for r in rows)  # the group's held_out
    assert any("all rows" in r and "include 60%" in r and "51.2%" in r for r in rows)  # (40 + 1) / 80 outcomes
    recorded = model_card_html(card_info.model_copy(update={"policy": POLICY | {"held_out": {"flagged_recall": 0.7}}}))
    assert any("all rows" in r and "include 60%" in r and "70.0%" in r for r in _target_rows(recorded))


def test_a_policy_without_outcomes_says_not_measured(card_info):
    policy = {k: v for k, v in POLICY.items() if k not in ("outcomes", "missed")}
    html = model_card_html(card_info.model_copy(update={"policy": policy}))
    text = _text(html)
    assert '<div class="missed"' not in html
    assert "ไม่ได้วัด not measured" in text
    assert "not checked" in text and "missed on" not in text


def test_fairness_flags_say_what_they_mean_for_a_teacher(card_info):
    text = _text(model_card_html(card_info))
    assert "4 groups checked (sex, without Thai nationality); 2 flagged." in text
    assert "Fewer of this group's children who will leave are on the list (0.60× the best group)" in text
    assert "More of this group's children who would have stayed are flagged (1.60× the false alarms)" in text
    assert "เพศ: ชาย" in text and "sex: male" in text
    assert "1,500 students, 45 left" in text


def test_the_protected_inputs_comparison_is_side_by_side(card_info):
    html = model_card_html(card_info)
    table = re.search(r'<table class="protected">(.*?)</table>', html, re.S).group(1)
    assert _text(table).count("0.842") == 1 and "0.839" in table and "61%" in table and "60%" in table
    assert '<th scope="col" class="inuse">' in table and "in use" in _text(table).split("without")[0]
    assert "The model in use uses them as inputs." in _text(html)
    missing = model_card_html(card_info.model_copy(update={"protected_comparison": None}))
    assert '<table class="protected">' not in missing
