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


# ---------- drift banner from the check's own verdict ----------


def test_a_calibrated_check_without_warning_shows_no_banner_even_with_high_psi() -> None:
    record = {**drift(True), "warning": False, "warning_features": []}
    block = section(render_report(inputs(drift=record)), "drift")
    assert 'class="warning"' not in block and "No feature or score drifted" in block


def test_a_calibrated_warning_names_its_features() -> None:
    record = {**drift(False), "warning": True, "warning_features": ["att_rate_term", "income_baht_month"]}
    block = section(render_report(inputs(drift=record)), "drift")
    warning = " ".join(block.split('class="warning"', 1)[1].split("</div>", 1)[0].split())
    # A catalog feature by its description, Thai with English beside; a code the catalog lacks stays a code.
    assert ("drifted features: สัดส่วนวันที่มาเรียนในภาคเรียนนี้ (มาเรียนหรือมาสาย) <span class=\"en\">"
            "(Share of this term&#39;s school days attended (present or late))</span>; income_baht_month") in warning


def test_the_drift_table_names_each_feature_in_thai_and_english_from_the_installed_catalog() -> None:
    from risk.features.catalog import load_catalog
    from risk.scoring.settings import DEFAULT_CATALOG

    spec = load_catalog(DEFAULT_CATALOG).get("gpa_last_term")
    block = section(render_report(inputs(drift=drift(True, name="att_rate_term"))), "drift")
    assert (f'<td title="gpa_last_term">{spec.description.th}<br><span class="en">{spec.description.en}</span></td>'
            '<td class="num">0.020</td>') in block
    assert '<tr class="drifted"><td title="att_rate_term">สัดส่วนวันที่มาเรียนในภาคเรียนนี้' in block
    assert "<td>att_rate_term</td>" not in block and "<td>gpa_last_term</td>" not in block


def test_freshness_dates_are_thai_first() -> None:
    block = section(render_report(inputs(freshness=freshness())), "freshness")
    assert "<td>30 มิ.ย. 2567</td><td>2024-06-30</td>" in block


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


def test_a_drift_warning_or_a_stale_domain_is_announced_before_the_numbers() -> None:
    def top(html: str) -> str:
        return html.split('<section id="nation">', 1)[0]

    assert 'id="read-first"' not in top(render_report(inputs(freshness=freshness())))
    drifted = top(render_report(inputs(drift={**drift(False), "warning": True, "warning_features": ["x"]})))
    assert 'id="read-first"' in drifted and 'href="#drift"' in drifted and 'href="#freshness"' not in drifted
    stale = top(render_report(inputs(freshness=freshness("stale"))))
    assert 'href="#freshness"' in stale and 'href="#drift"' not in stale
