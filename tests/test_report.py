"""The term report: the tile map's grid, and the HTML holding the numbers it was given.

The hand-made fixture has three provinces whose rates a reader can check:

=========  =========  ========  =======  ==========================
province   students   at_risk   problem  flagged rate
=========  =========  ========  =======  ==========================
10 BKK       1,000       50        30     80 / 1000  =  8.0%
50 CNX       2,000      300       100    400 / 2000  = 20.0%
96 NWT         500      100        25    125 / 500   = 25.0%
nation       3,500      450       155    605 / 3500  = 17.3%
=========  =========  ========  =======  ==========================
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from risk.data.geography import PROVINCES
from risk.features.freshness import DomainFreshness
from risk.scoring.charts import NO_DATA, SEQUENTIAL, colour_of, nice_bins
from risk.scoring.report import ReportError, ReportInputs, render_report, write_report
from risk.scoring.thai_tilemap import province_tiles

COLUMNS = ["level", "area_code", "students", "normal", "at_risk", "problem", "flagged_rate"]


def summary(rows: list[tuple[str, str, int, int, int]]) -> pd.DataFrame:
    """Summary rows from (level, area_code, students, at_risk, problem); normal and rate derived."""
    frame = pd.DataFrame(rows, columns=["level", "area_code", "students", "at_risk", "problem"])
    frame["normal"] = frame["students"] - frame["at_risk"] - frame["problem"]
    frame["flagged_rate"] = (frame["at_risk"] + frame["problem"]) / frame["students"]
    return frame[COLUMNS]


CURRENT = summary([
    ("province", "10", 1000, 50, 30), ("province", "50", 2000, 300, 100), ("province", "96", 500, 100, 25),
    ("region", "central", 1000, 50, 30), ("region", "north", 2000, 300, 100), ("region", "south", 500, 100, 25),
    ("nation", "TH", 3500, 450, 155),
])  # fmt: skip
# Last term: Bangkok 6.0%, Chiang Mai 21.0%, Narathiwat absent; nation 13.0%.
PREVIOUS = summary([
    ("province", "10", 1000, 40, 20), ("province", "50", 2000, 320, 100),
    ("nation", "TH", 3000, 300, 90),
])  # fmt: skip
BY_GRADE = pd.DataFrame({
    "grade_level": ["M3", "K1", "P6"], "normal": [70, 98, 80], "at_risk": [20, 2, 15], "problem": [10, 0, 5],
})  # fmt: skip
MODEL = {"name": "dropout-risk", "version": "3", "trained_window": ["2565-1", "2566-2"],
         "evaluation": {"roc_auc": 0.8421, "ece": 0.0123, "recall_top10": 0.61,
                        "oracle": {"recall_top10": 0.66}}}  # fmt: skip


def drift(drifted: bool, score_psi: float = 0.05, name: str = "attendance_rate_term") -> dict:
    psi = 0.31 if drifted else 0.04
    return {
        "score_psi": score_psi, "threshold": 0.2, "drifted": [name] if drifted else [],
        "features": [{"name": name, "psi": psi, "status": "drifted" if drifted else "stable"},
                     {"name": "gpa_last_term", "psi": 0.02, "status": "stable"}],
    }  # fmt: skip


def inputs(**changes) -> ReportInputs:
    fields = dict(
        as_of=dt.date(2024, 7, 1), term="2567-1", generated_at=dt.datetime(2024, 7, 2, 6, 30),
        model=MODEL, summaries=CURRENT, previous_summaries=PREVIOUS, by_grade=BY_GRADE,
        drift=drift(False), alerts={"newly_at_risk": 1234, "escalated_problem": 56, "improved": 7, "left_register": 8},
    )  # fmt: skip
    return ReportInputs(**{**fields, **changes})


def section(html: str, name: str) -> str:
    """The text of one ``<section id=name>``."""
    match = re.search(rf'<section id="{name}">(.*?)</section>', html, re.S)
    assert match, f"no section {name}"
    return match.group(1)


# ---------- the tile grid ----------


def test_tiles_hold_every_province_code_exactly_once() -> None:
    codes = [t.code for t in province_tiles()]
    assert len(codes) == 77
    assert sorted(codes) == sorted(PROVINCES)


def test_no_two_tiles_overlap() -> None:
    places = [(t.col, t.row) for t in province_tiles()]
    assert len(set(places)) == len(places)


def test_every_thai_name_is_thai_script() -> None:
    for tile in province_tiles():
        assert tile.name_th, tile.code
        assert all("\u0e00" <= ch <= "\u0e7f" for ch in tile.name_th), (tile.code, tile.name_th)
        assert unicodedata.normalize("NFC", tile.name_th) == tile.name_th


def test_thai_and_english_names_are_the_known_ones() -> None:
    tiles = {t.code: t for t in province_tiles()}
    assert {c: t.name_en for c, t in tiles.items()} == {c: v[0] for c, v in PROVINCES.items()}
    assert (tiles["10"].name_th, tiles["50"].name_th, tiles["40"].name_th) == ("กรุงเทพมหานคร", "เชียงใหม่", "ขอนแก่น")


def test_grid_keeps_the_shape_of_the_country() -> None:
    t = {tile.code: tile for tile in province_tiles()}
    # Mae Hong Son, Chiang Mai and Chiang Rai on the top row, west to east.
    assert t["58"].row == t["50"].row == t["57"].row == 0
    assert t["58"].col < t["50"].col < t["57"].col
    # The northeast bulge lies east of Bangkok, Ubon Ratchathani furthest east of all.
    assert t["34"].col == max(tile.col for tile in t.values()) > t["10"].col
    # Bangkok below the northern plain, the deep south at the bottom.
    assert t["57"].row < t["60"].row < t["10"].row < t["86"].row < t["90"].row < t["96"].row
    assert max(tile.row for tile in t.values()) == t["96"].row == t["95"].row


# ---------- colour bins ----------


def test_bins_start_on_a_round_percent_and_cover_the_range() -> None:
    bins = nice_bins([0.06, 0.12, 0.186])
    assert bins.edges == (0.06, 0.09, 0.12, 0.15, 0.18, 0.21)  # 3 pp wide from 6%


def test_colour_of_a_value_its_top_edge_and_a_missing_one() -> None:
    bins = nice_bins([0.0, 0.05])  # 0, 1, 2, 3, 4, 5 %
    assert colour_of(0.0, bins) == SEQUENTIAL[0]
    assert colour_of(0.025, bins) == SEQUENTIAL[2]
    assert colour_of(0.05, bins) == SEQUENTIAL[-1]
    assert colour_of(float("nan"), bins) == NO_DATA


# ---------- the report ----------


def test_report_is_one_thai_utf8_page_with_nothing_fetched() -> None:
    html = render_report(inputs())
    assert html.startswith("<!doctype html>")
    assert '<html lang="th">' in html and '<meta charset="utf-8">' in html
    assert '"Noto Sans Thai", "Sarabun", "Loma", "Garuda", "Norasi", sans-serif' in html
    assert "<script" not in html and "<link" not in html and "<img" not in html
    assert "http://" not in html and "https://" not in html and "@import" not in html


def test_headings_are_thai_with_english_beside() -> None:
    html = render_report(inputs())
    for heading in ("ภาพรวมระดับประเทศ <span class=\"en\">/ Nation</span>",
                    "อัตราเฝ้าระวังรายจังหวัด <span class=\"en\">/ Flagged rate by province</span>",
                    "รายภาค <span class=\"en\">/ Regions</span>",
                    "สัดส่วนกลุ่มนักเรียนตามระดับชั้น <span class=\"en\">/ Class mix by grade level</span>",
                    "การเปลี่ยนแปลงจากภาคเรียนก่อน <span class=\"en\">/ Change since last term</span>",
                    "การเปลี่ยนแปลงของข้อมูล <span class=\"en\">/ Data drift</span>",
                    "คุณภาพของแบบจำลอง <span class=\"en\">/ Model quality</span>",
                    "ความหมายของแต่ละกลุ่ม <span class=\"en\">/ What each class means</span>",
                    "ความทันสมัยของข้อมูล <span class=\"en\">/ Data freshness</span>",
                    "การแจ้งเตือน <span class=\"en\">/ Alerts</span>"):  # fmt: skip
        assert f"<h2>{heading}</h2>" in html


def test_nation_headline_holds_the_counts_and_rate() -> None:
    nation = section(render_report(inputs()), "nation")
    for text in ("3,500", "450", "155", "17.3%"):
        assert f'<div class="value">{text}</div>' in nation
    assert "1 ก.ค. 2567" in render_report(inputs())


def test_nation_is_summed_from_provinces_when_no_nation_row() -> None:
    html = render_report(inputs(summaries=CURRENT[CURRENT["level"] != "nation"]))
    assert '<div class="value">17.3%</div>' in section(html, "nation")


def test_region_table_in_the_order_of_the_regions() -> None:
    regions = section(render_report(inputs()), "regions")
    rows = re.findall(r"<tr><td>(.*?)</td>.*?<td class=\"num\">([\d.]+%)</td></tr>", regions, re.S)
    assert rows == [("ภาคเหนือ / north", "20.0%"), ("ภาคกลาง / central", "8.0%"), ("ภาคใต้ / south", "25.0%")]


def test_map_has_77_tiles_and_greys_provinces_without_data() -> None:
    svg = section(render_report(inputs()), "map")
    assert svg.count('<rect class="tile"') == 77
    assert len(re.findall(rf'<rect class="tile"[^>]*fill="{NO_DATA}"', svg)) == 77 - 3
    assert "<title>เชียงใหม่ / Chiang Mai (50): อัตราเฝ้าระวัง / flagged rate 20.0%</title>" in svg
    assert "legend" in svg and "ไม่มีข้อมูล" in svg


def test_ranked_bars_put_the_highest_province_first() -> None:
    svg = section(render_report(inputs()), "map")
    order = [svg.index(f">{label}</text>") for label in
             ("นราธิวาส Narathiwat", "เชียงใหม่ Chiang Mai", "กรุงเทพมหานคร Bangkok")]  # fmt: skip
    assert order == sorted(order)


def test_class_mix_is_in_school_order_whatever_the_input_order() -> None:
    grades = section(render_report(inputs()), "grades")
    assert grades.index(">K1</text>") < grades.index(">P6</text>") < grades.index(">M3</text>")
    assert "100 คน | 30.0%" in grades  # M3: 20 at risk + 10 problem of 100


def test_change_since_last_term_in_percentage_points() -> None:
    change = section(render_report(inputs()), "change")
    assert "13.0% → 17.3% (<strong>+4.3 pp</strong>)" in change
    assert "+2.0 pp" in change  # Bangkok 6.0% -> 8.0%
    assert "-1.0 pp" in change  # Chiang Mai 21.0% -> 20.0%
    assert "Narathiwat" not in change  # nothing to compare with last term


def test_no_previous_term_says_so_plainly() -> None:
    change = section(render_report(inputs(previous_summaries=None)), "change")
    assert "There is no earlier term to compare with." in change
    assert "pp" not in change


def test_a_drifted_feature_raises_the_warning() -> None:
    block = section(render_report(inputs(drift=drift(True))), "drift")
    assert 'class="warning"' in block and "attendance_rate_term" in block
    assert '<tr class="drifted"><td>attendance_rate_term</td><td class="num">0.310</td>' in block


def test_no_drift_no_warning() -> None:
    block = section(render_report(inputs(drift=drift(False))), "drift")
    assert 'class="warning"' not in block and 'class="drifted"' not in block
    assert "No feature or score drifted past the threshold." in block


def test_a_drifted_score_alone_raises_the_warning() -> None:
    block = section(render_report(inputs(drift=drift(False, score_psi=0.27))), "drift")
    assert 'class="warning"' in block and "the score distribution drifted (PSI 0.270)" in block


def test_without_a_drift_check_the_report_says_none_was_run() -> None:
    assert "No drift check was run" in section(render_report(inputs(drift=None)), "drift")


def test_model_section_shows_what_is_given() -> None:
    model = section(render_report(inputs()), "model")
    for text in ("dropout-risk", "2565-1 – 2566-2", "0.842", "61.0%", "66.0%", "oracle"):
        assert text in model


def test_alert_counts() -> None:
    alerts = section(render_report(inputs()), "alerts")
    assert "เข้ากลุ่มเสี่ยงใหม่" in alerts and '<td class="num">1,234</td>' in alerts
    assert "of which by a rule" not in alerts  # not known: no column rather than a false 0


def test_alerts_raised_by_a_rule_are_counted_apart() -> None:
    alerts = section(render_report(inputs(alerts_by_rule={"newly_at_risk": 437})), "alerts")
    assert "of which by a rule" in alerts
    assert re.search(r'newly at risk</span></td><td class="num">1,234</td>\s*<td class="num">437</td>', alerts)
    assert re.search(r'escalated to problem</span></td><td class="num">56</td>\s*<td class="num">0</td>', alerts)
    assert "No alert counts" in section(render_report(inputs(alerts=None)), "alerts")


def test_names_from_data_are_escaped() -> None:
    evil = "<script>alert(1)</script>"
    bad_province = pd.concat([CURRENT, summary([("province", evil, 100, 10, 10)])], ignore_index=True)
    html = render_report(inputs(summaries=bad_province, drift=drift(True, name=evil), alerts={evil: 1}))
    assert "<script" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4  # bars, table, drift table, warning


def test_missing_summary_column_is_named() -> None:
    with pytest.raises(ValidationError, match="flagged_rate"):
        inputs(summaries=CURRENT.drop(columns="flagged_rate"))


def test_write_report_writes_utf8_and_returns_the_path(tmp_path: Path) -> None:
    path = write_report(inputs(), tmp_path / "term.html")
    assert path == tmp_path / "term.html"
    assert "ภาพรวมระดับประเทศ" in path.read_text(encoding="utf-8")


def test_write_report_into_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="cannot write the term report"):
        write_report(inputs(), tmp_path / "no" / "such" / "term.html")


# ---------- data freshness ----------


def freshness(household: str = "fresh") -> list[DomainFreshness]:
    """Two domains at 1 July 2024: attendance seen yesterday; household screened 2023-05-01 (427 days) or 2024-05-20."""
    as_of = dt.date(2024, 7, 1)
    screened = dt.date(2023, 5, 1) if household == "stale" else dt.date(2024, 5, 20)
    return [
        DomainFreshness(domain="attendance_daily", as_of=as_of, term="2567-1", newest=dt.date(2024, 6, 30),
                        age_days=1, rows_in_term=41_000, max_age_days=30, status="fresh"),
        DomainFreshness(domain="household", as_of=as_of, term="2567-1", newest=screened,
                        age_days=(as_of - screened).days, rows_in_term=0, max_age_days=400, status=household),
    ]


def test_freshness_table_shows_each_domain_beside_the_scores() -> None:
    block = section(render_report(inputs(freshness=freshness())), "freshness")
    assert "การมาเรียน / attendance" in block and "<td>2024-06-30</td>" in block and '<td class="num">41,000</td>' in block
    assert "เป็นปัจจุบัน / fresh" in block and 'class="warning"' not in block and 'class="drifted"' not in block


def test_a_stale_domain_is_a_warning_in_thai_and_english() -> None:
    block = section(render_report(inputs(freshness=freshness("stale"))), "freshness")
    assert 'class="warning"' in block and "ข้อมูลเก่า / stale" in block
    assert "household screening is stale: its newest row is dated 2023-05-01, 427 days before 2024-07-01" in block
    assert "ข้อมูลการคัดกรองครัวเรือนล่าสุดลงวันที่ 2023-05-01" in block
    assert '<tr class="drifted"><td>การคัดกรองครัวเรือน / household screening</td>' in block


def test_without_a_freshness_check_the_report_says_so() -> None:
    assert "Data freshness was not checked" in section(render_report(inputs()), "freshness")


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
    assert "(semester 1)" in classes and "instead: the top 1% of students by probability" in classes
    assert 'class="missed"' not in render_report(inputs(policy={**POLICY, "missed": []}))


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


# ---------- drift banner from the check's own verdict ----------


def test_a_calibrated_check_without_warning_shows_no_banner_even_with_high_psi() -> None:
    record = {**drift(True), "warning": False, "warning_features": []}
    block = section(render_report(inputs(drift=record)), "drift")
    assert 'class="warning"' not in block and "No feature or score drifted" in block


def test_a_calibrated_warning_names_its_features() -> None:
    record = {**drift(False), "warning": True, "warning_features": ["att_rate_term", "income_baht_month"]}
    block = section(render_report(inputs(drift=record)), "drift")
    assert 'class="warning"' in block and "drifted features: att_rate_term, income_baht_month" in block


def test_freshness_dates_are_thai_first() -> None:
    block = section(render_report(inputs(freshness=freshness())), "freshness")
    assert "<td>30 มิ.ย. 2567</td><td>2024-06-30</td>" in block


# ---------- from the store and MLflow: risk report's own path ----------
# School 4001000001 (Khon Kaen, 40 students): 10 at risk (4 of them by the exam-line rule), 2 problem.
# School 5001000002 (Chiang Mai, 12 students, under the 30 of configs/scoring.yaml): 6 at risk (1 by the rule).


def stored_scores() -> pd.DataFrame:
    rows = []
    for school, region, classes, raised in (("4001000001", "northeast", ["at_risk"] * 10 + ["problem"] * 2 + ["normal"] * 28, 4),
                                            ("5001000002", "north", ["at_risk"] * 6 + ["normal"] * 6, 1)):  # fmt: skip
        for i, risk_class in enumerate(classes):
            key = int(school[:4]) * 100 + i
            rows.append({"student_key": key, "as_of": dt.date(2024, 7, 1), "term": "2567-1", "school_id": school,
                         "district_code": school[:4], "province_code": school[:2], "region": region,
                         "grade_level": "M3", "classroom": None, "sex": "female", "id_hint": f"•••••••••{key % 10_000:04d}",
                         "probability": {"normal": 0.01, "at_risk": 0.1, "problem": 0.5}[risk_class],
                         "risk_class": risk_class, "reasons_en": [], "reasons_th": [], "reason_codes": [],
                         "model_version": "1", "raised_by": "exam_line" if risk_class == "at_risk" and i < raised else None})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A local MLflow store as `risk train` leaves it: version 1 with policy.json, held-out metrics and a card."""
    import json

    import mlflow
    from mlflow.tracking import MlflowClient

    home = tmp_path_factory.mktemp("report-mlflow")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    before = (mlflow.get_tracking_uri() if mlflow.tracking.is_tracking_uri_set() else None, mlflow.get_registry_uri())
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        experiment = MlflowClient().create_experiment("report", artifact_location=(home / "mlartifacts").as_uri())
        (home / "policy.json").write_text(json.dumps(POLICY), encoding="utf-8")
        (home / "evaluation").mkdir()
        (home / "evaluation" / "model_card.html").write_text("<html>card</html>", encoding="utf-8")

        class CardModel(mlflow.pyfunc.PythonModel):
            """Stands for the registered model only as a holder of artifacts: the report never loads it."""

            def predict(self, context: object, model_input: list[str]) -> list[str]:
                return model_input

        with mlflow.start_run(experiment_id=experiment):
            mlflow.log_metrics({f"test.{k}": v for k, v in EVALUATION.items()})
            mlflow.pyfunc.log_model(name="model", python_model=CardModel(), artifacts={"policy": str(home / "policy.json")},
                                    registered_model_name="dropout-risk")
            mlflow.log_artifacts(str(home / "evaluation"), artifact_path="evaluation")
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1] if before[0] else None)
    return home


def test_the_report_of_a_stored_run_reads_the_model_from_mlflow_and_counts_rule_raised_students(
        registered: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from risk.scoring.summaries import area_summaries
    from risk.scoring.term_report import term_report
    from risk.store import finish_run, open_store, start_run, write_bucket_scores, write_summaries

    # As `risk report --data DIR` finds it: the MLflow store beside the validated folder, nothing set.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr("mlflow.tracking.is_tracking_uri_set", lambda: False)
    (registered / "validated").mkdir(exist_ok=True)
    store = open_store(f"sqlite:///{tmp_path / 'risk.db'}")
    run = start_run(store, as_of=dt.date(2024, 7, 1), term="2567-1", model_name="dropout-risk", model_version="1",
                    settings={"evaluation": {"model.roc_auc": 0.5}})  # an old run: no policy kept, MLflow's metrics win
    frame = stored_scores()
    write_bucket_scores(store, run, 0, frame)
    frame.to_parquet(tmp_path / "scores.parquet")
    write_summaries(store, run, area_summaries([tmp_path / "scores.parquet"]))
    finish_run(store, run, students=len(frame), drift=None)
    # No scoring settings given: the smallest area ranked is ReportSettings' 30, as in configs/scoring.yaml.
    html = term_report(store, tmp_path / "report.html", validated=registered / "validated").read_text(encoding="utf-8")

    card = re.search(r'<a href="(file://[^"]+)">', section(html, "model")).group(1)
    assert card.endswith("/evaluation/model_card.html") and Path(card.removeprefix("file://")).read_text() == "<html>card</html>"
    assert "ties this model" in section(html, "model") and "0.842" in section(html, "model")
    assert "โอกาส ≥ 30.0%" in class_row(html, "problem") and "37 / 100" in class_row(html, "problem")
    assert cells(class_row(html, "at_risk"))[:3] == ["16", "11", "5"]
    assert "18 / 52" in section(html, "nation")
    areas = section(html, "areas")
    assert re.findall(r"<tr><td>อำเภอ (\d+)", areas) == ["4001"] and "other small areas (1, under 30 students)" in areas
    assert "6 / 12" in areas and "12 / 40" in areas
    assert "เล็ก / small: &lt; 30" in section(html, "provinces")


def test_a_drift_report_as_the_check_writes_it_fits_and_calendar_features_do_not_count() -> None:
    from risk.scoring.drift import DriftReport, FeatureDrift

    # School days so far moves with the calendar: PSI 2.997 past its own 0.25, yet it cannot ring.
    report = DriftReport(
        rows=1000, warn=0.1, threshold=0.2, score_psi=0.002, score_status="stable", drifted=["school_days_so_far"],
        watch=[], warning=False, warning_features=[], score_limit=0.05, basis="terms 2566-1 and 2566-2 compared",
        features=[FeatureDrift(name="school_days_so_far", psi=2.997, status="drifted", missing_share_training=0.0,
                               missing_share=0.0, limit=0.25, in_warning=False),
                  FeatureDrift(name="att_rate_term", psi=0.03, status="stable", missing_share_training=0.0,
                               missing_share=0.0, limit=0.12)])  # fmt: skip
    block = section(render_report(inputs(drift=report.model_dump())), "drift")
    assert 'class="warning"' not in block and "score PSI: <strong>0.002</strong> | เกณฑ์ / threshold: 0.05" in block
    assert re.search(r"<td>school_days_so_far</td><td class=\"num\">2.997</td><td class=\"num\">0.25</td>.*?"
                     r"not counted \(moves with the calendar\)", block, re.S)
    assert "terms 2566-1 and 2566-2 compared" in block


def test_the_report_of_a_real_scoring_run_explains_the_champion(world, champion_store, tmp_path: Path) -> None:
    """The session's champion (tests/conftest.py) scores the world; the report reads run, scores and MLflow."""
    from risk.config import load_settings
    from risk.scoring.batch import score_students
    from risk.scoring.charts import percent
    from risk.scoring.settings import load_scoring_settings
    from risk.scoring.term_report import term_report
    from risk.store import latest_scores, open_store

    home, _, result, registered = champion_store
    store = open_store(f"sqlite:///{tmp_path / 'risk.db'}")
    score_students(world / "validated", dt.date(2026, 7, 24), bundle=result.bundle, model_name="dropout-risk",
                   model_version=registered["version"], store=store, out=tmp_path / "scores.parquet",
                   settings=load_settings(), scoring=load_scoring_settings(), progress=False)
    page = term_report(store, tmp_path / "report.html", validated=world / "validated", scoring=load_scoring_settings())
    html = page.read_text(encoding="utf-8")
    artifacts = Path(__file__).parent / "artifacts"  # git-ignored: the report of a real run, for a person to read
    artifacts.mkdir(exist_ok=True)
    (artifacts / "term_report_scored_world.html").write_text(html, encoding="utf-8")

    model = section(html, "model")
    card = re.search(r'<a href="file://([^"]+)">', model).group(1)
    assert card.endswith("evaluation/model_card.html") and "<html" in Path(card).read_text(encoding="utf-8")
    for name, words in (("model", "LightGBM"), ("logistic", "logistic regression"), ("abc_rule", "ABC rule")):
        auc = result.evaluation.metric(name, "roc_auc")
        assert re.search(rf"{words}[^<]*</span></td>\s*<td class=\"num\">{auc:.3f}</td>", model), (name, auc)
    assert not re.search(r"\b(model|logistic|oracle|context_only|abc_rule)\.[a-z_0-9]+", html)

    scores = pd.concat(latest_scores(store, registered_run(store), columns=["risk_class", "raised_by"]))
    policy = json.loads(result.bundle.policy.to_json())
    for name in ("problem", "at_risk", "normal"):
        row = class_row(html, name)
        mine = scores[scores["risk_class"] == name]
        assert cells(row)[:3] == [f"{len(mine):,}", f"{int(mine['raised_by'].isna().sum()):,}",
                                  f"{int(mine['raised_by'].notna().sum()):,}"], name
        outcome = (policy.get("outcomes") or {}).get(name)
        assert (percent(outcome["dropout_rate"]) in row) if outcome else ("not measured for this model" in row)
    for group in policy.get("groups", {}).values():
        assert f"≥ {percent(group['problem_threshold'])}" in class_row(html, "problem")
    alerts = section(html, "alerts")
    assert "first scored term" in alerts
    # A first run alerts every flagged student, so the rule-raised at-risk alerts are the rule-raised at-risk scores.
    raised_at_risk = int(scores.loc[scores["risk_class"] == "at_risk", "raised_by"].notna().sum())
    assert re.search(rf"newly flagged at risk \(first scored term\)</span></td><td class=\"num\">[\d,]+</td>\s*"
                     rf"<td class=\"num\">{raised_at_risk:,}</td>", alerts), raised_at_risk


def registered_run(store) -> str:
    from risk.store import latest_finished_run

    return latest_finished_run(store)


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
