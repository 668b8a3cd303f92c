"""The term report for its readers (issue 28): what each class means, the model beside its baselines,
areas with their counts, and a first term's alerts.

Uses the hand-made country of ``test_report`` (Bangkok 80 of 1,000 flagged, Chiang Mai 400 of 2,000,
Narathiwat 125 of 500; nation 605 of 3,500 with 450 at risk and 155 problem). The policy, metrics and
rule-raised counts below are as small and round as the figures they check.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest
from test_report import CURRENT, inputs, section, summary

from risk.scoring.report import render_report
from risk.scoring.report_model import missed_targets, quality

# ---------- what the classes mean (issue 28) ----------
# Semester 1 (year_end_term 0): problem from 30%, at risk from 5%; semester 2: 45% and 12%.
# On the held-out term 37 of 100 problem students dropped out, 40 of 400 at risk, 30 of 3,000 normal.
POLICY = {
    "problem_threshold": 0.35, "at_risk_threshold": 0.08, "thresholds_by": "year_end_term",
    "groups": {"0": {"problem_threshold": 0.30, "at_risk_threshold": 0.05},
               "1": {"problem_threshold": 0.45, "at_risk_threshold": 0.12}},
    "rules": [{"id": "exam_line", "feature": "att_rate_term", "below": 0.8, "raise_to": "at_risk",
               "reason": {"en": "Attendance of {value} is under the 80% line", "th": "มาเรียน {value}"}}],
    "outcomes": {"normal": {"students": 3000, "dropouts": 30, "dropout_rate": 0.01, "share": 0.857, "raised_by_rule": 0},
                 "at_risk": {"students": 400, "dropouts": 40, "dropout_rate": 0.10, "share": 0.114, "raised_by_rule": 90},
                 "problem": {"students": 100, "dropouts": 37, "dropout_rate": 0.37, "share": 0.029, "raised_by_rule": 0}},
    "missed": [{"target": "problem_precision", "group": "0", "wanted": 0.5, "achieved": 0.037, "where": "held_out",
                "fallback": "the top 1% of students by probability"}],
}  # fmt: skip
# The demo's finding: LightGBM ties the logistic baseline (AUC 0.842 vs 0.843).
EVALUATION = {
    "model.roc_auc": 0.842, "model.recall_top10": 0.564, "model.lead_week6.recall_top10": 0.51,
    "model.auc_ratio_to_oracle": 0.97, "oracle.roc_auc": 0.868, "oracle.recall_top10": 0.62,
    "logistic.roc_auc": 0.843, "logistic.recall_top10": 0.55, "context_only.roc_auc": 0.781,
    "context_only.recall_top10": 0.41, "abc_rule.roc_auc": 0.702, "abc_rule.recall_top10": 0.30,
}  # fmt: skip
# Of the nation's 450 at-risk students 40 are there by the exam-line rule (30 in Chiang Mai, 10 in Bangkok).
RAISED = pd.DataFrame([("nation", "TH", 40, 0), ("province", "50", 30, 0), ("province", "10", 10, 0),
                       ("region", "north", 30, 0), ("region", "central", 10, 0)],
                      columns=["level", "area_code", "at_risk", "problem"])  # fmt: skip


def class_row(html: str, name: str) -> str:
    match = re.search(rf'<tr class="class-{name}">(.*?)</tr>', section(html, "classes"), re.S)
    assert match, f"no class row {name}"
    return match.group(1)


def cells(row: str) -> list[str]:
    return [re.sub(r"<[^>]+>", " ", c).split()[0] if c.strip() else "" for c in re.findall(r'<td class="num">(.*?)</td>', row, re.S)]


def test_each_class_is_named_in_thai_and_explained_with_its_thresholds_per_semester() -> None:
    html = render_report(inputs(policy=POLICY))
    problem, at_risk, normal = (class_row(html, c) for c in ("problem", "at_risk", "normal"))
    assert "กลุ่มมีปัญหา" in problem and "กลุ่มเสี่ยง" in at_risk and "กลุ่มปกติ" in normal
    assert "ภาคเรียนที่ 1 <span class=\"en\">/ semester 1</span>: โอกาส ≥ 30.0%" in problem
    assert "ภาคเรียนที่ 2 <span class=\"en\">/ semester 2</span>: โอกาส ≥ 45.0%" in problem
    assert "โอกาส ≥ 5.0%" in at_risk and "โอกาส ≥ 12.0%" in at_risk
    assert "โอกาส &lt; 5.0%" in normal and "โอกาส &lt; 12.0%" in normal
    assert "attendance under 80% of school days" in at_risk and "80%" not in problem


def test_observed_dropout_on_the_held_out_term_comes_from_the_policy_outcomes() -> None:
    html = render_report(inputs(policy=POLICY))
    assert cells(class_row(html, "problem"))[-1] == "37.0%" and "37 / 100" in class_row(html, "problem")
    assert cells(class_row(html, "at_risk"))[-1] == "10.0%" and "40 / 400" in class_row(html, "at_risk")


def test_a_model_without_outcomes_says_not_measured() -> None:
    old = {k: v for k, v in POLICY.items() if k not in ("outcomes", "missed")}
    row = class_row(render_report(inputs(policy=old)), "problem")
    assert "ไม่ได้วัดสำหรับแบบจำลองนี้" in row and "not measured for this model" in row
    assert "thresholds not recorded" in class_row(render_report(inputs()), "problem")


def test_students_raised_by_a_rule_are_counted_apart_from_the_models() -> None:
    html = render_report(inputs(policy=POLICY, raised=RAISED))
    # at risk: 450 this term, 410 by the model, 40 by the exam-line rule; problem: 155, none by a rule.
    assert cells(class_row(html, "at_risk"))[:3] == ["450", "410", "40"]
    assert cells(class_row(html, "problem"))[:3] == ["155", "155", "0"]
    regions = section(html, "regions")
    assert re.search(r"ภาคเหนือ / north.*?<td class=\"num\">400 / 2,000</td>\s*<td class=\"num\">30</td>", regions, re.S)


def test_a_missed_target_is_shown_in_red_with_its_fallback() -> None:
    classes = section(render_report(inputs(policy=POLICY)), "classes")
    assert 'class="missed"' in classes
    assert "problem precision (share who drop out) 0.50 wanted, 0.037 on the held-out term" in classes
    assert "(semester 1)" in classes and "(detail: the top 1% of students by probability)" in classes
    assert "the calibration term&#39;s &#39;problem&#39; threshold (probability ≥ 30%) stands" in classes
    assert 'class="missed"' not in render_report(inputs(policy={**POLICY, "missed": []}))


def test_the_thai_missed_line_names_the_fallback_as_the_model_card_does() -> None:
    from risk.models.card_policy import policy_view

    line = missed_targets(POLICY)[0]
    card = policy_view(POLICY).missed[0]
    # Semester 1's calibration threshold, 30%, stands: the same Thai words on the card and in the report.
    words = "จึงคงเกณฑ์ 'มีปัญหา' จากภาคเรียนที่ใช้ปรับเทียบไว้ (ความน่าจะเป็น ≥ 30%)"
    assert line["th"].endswith(card.th.split("ใช้กฎสำรองแทน: ", 1)[1]) and words in line["th"]
    assert "จึงใช้กฎสำรองแทน: " in line["th"] and "top 1%" not in line["th"]  # the English detail stays English


# ---------- the model beside its baselines ----------


def test_model_quality_is_a_table_of_named_models_not_metric_keys() -> None:
    html = render_report(inputs(evaluation=EVALUATION))
    model = section(html, "model")
    rows = re.findall(r'<tr(?: class="section")?><td>(.*?)<br>.*?<td class="num">([\d.–]+)</td><td class="num">([\d.%–]+)</td>',
                      model, re.S)
    assert rows == [("แบบจำลองนี้ (LightGBM)", "0.842", "56.4%"), ("การถดถอยโลจิสติก", "0.843", "55.0%"),
                    ("ข้อมูลบริบทเท่านั้น (ชั้น โรงเรียน พื้นที่)", "0.781", "41.0%"),
                    ("กฎ ABC (ขาดเรียน พฤติกรรม ผลการเรียน)", "0.702", "30.0%"),
                    ("ขีดบน (oracle: รู้โอกาสจริงของข้อมูลจำลอง)", "0.868", "62.0%")]  # fmt: skip
    assert not re.search(r"\b(model|logistic|oracle|context_only|abc_rule)\.[a-z_0-9]+", html)
    assert "lead_week" not in html and "recall_top10" not in html


def test_a_baseline_that_ties_the_model_is_said_in_words() -> None:
    model = section(render_report(inputs(evaluation=EVALUATION)), "model")
    assert "ties this model" in model and "On this data the model does no better than the logistic regression" in model
    assert "0.140 below this model" in model and "this model reaches 0.97× the oracle AUC" in model
    apart = section(render_report(inputs(evaluation={**EVALUATION, "logistic.roc_auc": 0.80})), "model")
    assert "ties this model" not in apart and "0.042 below this model" in apart


# AUC 0.840 against 0.820: within the standard error on 50 dropouts of 2,000 rows (about 0.035), beyond it
# (and beyond the 0.005 floor) on 5,000 of 200,000.
@pytest.mark.parametrize(("rows", "positives", "tied"), [(2_000, 50, True), (200_000, 5_000, False)])
def test_the_report_and_the_model_card_agree_on_a_tie(rows: int, positives: int, tied: bool) -> None:
    from risk.models.card_views import quality_view

    card = quality_view(pd.DataFrame({"slice": ["overall"] * 2, "model": ["model", "logistic"],
                                      "roc_auc": [0.84, 0.82], "rows": [rows] * 2, "positives": [positives] * 2}),
                        "model", ["2568-2"])  # fmt: skip
    evaluation = {"model.roc_auc": 0.84, "logistic.roc_auc": 0.82, "model.rows": rows, "model.positives": positives}
    report = quality(evaluation)
    assert ("ties the logistic baseline" in card.rows[1]["verdict"].en) is tied
    assert bool(report["ties"]) is tied
    assert ("ties this model" in section(render_report(inputs(evaluation=evaluation)), "model")) is tied


def test_without_the_held_out_counts_the_report_ties_within_the_floor() -> None:
    assert quality({"model.roc_auc": 0.84, "logistic.roc_auc": 0.82})["tolerance"] == "0.005"
    assert quality({"model.roc_auc": 0.84, "logistic.roc_auc": 0.836})["ties"]


def test_the_model_card_is_linked_or_its_place_named() -> None:
    card = "file:///data/mlartifacts/1/abc/artifacts/evaluation/model_card.html"
    assert f'<a href="{card}">' in section(render_report(inputs(model_card=card)), "model")
    assert "evaluation/model_card.html of this version's training run" in section(render_report(inputs()), "model")


# ---------- areas with counts, small areas held back ----------


def with_small_areas() -> pd.DataFrame:
    """Mae Hong Son (58) with 12 students, 10 flagged (83%: the highest rate, over too few to rank);
    districts 5001 (40 of 200), 9601 (30 of 100) and two small ones, 1001 (5 of 10) and 1002 (1 of 8)."""
    return pd.concat([CURRENT, summary([
        ("province", "58", 12, 8, 2), ("district", "5001", 200, 30, 10), ("district", "9601", 100, 25, 5),
        ("district", "1001", 10, 4, 1), ("district", "1002", 8, 1, 0)])], ignore_index=True)  # fmt: skip


def test_area_lists_give_flagged_over_students_and_the_rate() -> None:
    html = render_report(inputs(summaries=with_small_areas(), raised=RAISED))
    assert re.search(r"เชียงใหม่ <span class=\"en\">Chiang Mai</span>.*?<td class=\"num\">400 / 2,000</td>\s*"
                     r"<td class=\"num\">30</td>\s*<td class=\"num\">20.0%</td>", section(html, "provinces"), re.S)
    assert "20.0% (400 / 2,000)" in section(html, "map")  # beside the bar


def test_a_small_area_is_marked_and_never_ranked_at_the_top() -> None:
    html = render_report(inputs(summaries=with_small_areas()))
    bars = section(html, "map")
    assert "แม่ฮ่องสอน" not in bars.split("highest provinces")[1]
    provinces = section(html, "provinces")
    mae_hong_son = provinces.index("Mae Hong Son")
    assert provinces.index("Bangkok") < mae_hong_son  # ranked after every fair-sized province, 8.0% < 83.3%
    assert "เล็ก / small: &lt; 30" in provinces[mae_hong_son:mae_hong_son + 200]


def test_small_districts_are_merged_into_other_small_areas() -> None:
    areas = section(render_report(inputs(summaries=with_small_areas())), "areas")
    ranked = re.findall(r"<tr><td>อำเภอ (\d+)", areas)
    assert ranked == ["9601", "5001"]  # 30.0% then 20.0%
    assert "other small areas (2, under 30 students)" in areas and "6 / 18" in areas


def test_min_area_students_comes_from_the_settings() -> None:
    areas = section(render_report(inputs(summaries=with_small_areas(), min_area_students=5)), "areas")
    assert re.findall(r"<tr><td>อำเภอ (\d+)", areas) == ["1001", "9601", "5001", "1002"]
    assert "other small areas (" not in areas


# ---------- first term ----------


def test_first_term_alerts_read_newly_flagged_not_escalated() -> None:
    alerts = section(render_report(inputs(previous_summaries=None)), "alerts")
    assert "newly flagged as problem (first scored term)" in alerts and "escalated" not in alerts.replace("not escalated", "")
    assert "This is the first scored term" in alerts


def test_with_an_earlier_term_escalation_keeps_its_name() -> None:
    alerts = section(render_report(inputs()), "alerts")
    assert "escalated to problem" in alerts and "first scored term" not in alerts




def test_a_threshold_no_one_reaches_and_an_empty_class_are_said_in_words() -> None:
    # Semester 2's problem line at 100%: nobody is put there by the model, so nobody's dropout can be measured.
    policy = {**POLICY, "groups": {**POLICY["groups"], "1": {"problem_threshold": 1.0, "at_risk_threshold": 0.12}},
              "outcomes": {**POLICY["outcomes"], "problem": {"students": 0, "dropouts": 0, "dropout_rate": 1.0,
                                                             "share": 0.0, "raised_by_rule": 0}}}  # fmt: skip
    row = class_row(render_report(inputs(policy=policy)), "problem")
    assert "โอกาส ≥ 100.0%" in row and "no one reaches it" in row
    assert "no student in this class" in row and "100.0%" not in cells(row)[-1]


def test_the_data_window_reads_train_calibration_test() -> None:
    window = {"test": ["2568-2"], "calibration": ["2568-1"], "train": ["2567-1", "2567-2"]}
    model = section(render_report(inputs(model={"name": "dropout-risk", "trained window": window})), "model")
    assert "ฝึก / train 2567-1, 2567-2; ปรับเทียบ / calibration 2568-1; ทดสอบ / held-out test 2568-2" in model
