"""The feature catalog is data: analysts switch features off and add windows without Python."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from feature_world import AS_OF, S1, context_rates_frame, world
from online_frames import features_from_frames

from risk.errors import ConfigError
from risk.features.catalog import DOMAINS, format_value, load_catalog, reason_text
from risk.features.domains import DOMAIN_MODULES

CATALOG_FILE = Path(__file__).resolve().parent.parent / "configs" / "features.yaml"


def edited_catalog(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(CATALOG_FILE.read_text(encoding="utf-8"))
    edit(data["features"])
    path = tmp_path / "features.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_every_feature_has_thai_and_english_texts_and_a_direction():
    catalog = load_catalog(CATALOG_FILE)
    for feature in catalog.features:
        assert feature.description.th and feature.description.en
        # A flag's reason is shown only when it is set, so its text need not repeat "yes".
        if feature.unit != "flag":
            assert "{value}" in feature.reason.en and "{value}" in feature.reason.th
        assert feature.direction in ("higher", "lower", "none")


def test_a_switched_off_feature_is_not_built(tmp_path):
    def switch_off(features):
        next(f for f in features if f["name"] == "att_rate_20d")["enabled"] = False

    catalog = load_catalog(edited_catalog(tmp_path, switch_off))
    frame = features_from_frames(world() | {"context_rates": context_rates_frame()}, AS_OF, catalog)
    assert "att_rate_20d" not in frame.columns
    assert "att_rate_60d" in frame.columns


def test_a_new_window_needs_only_a_catalog_entry(tmp_path):
    def add_window(features):
        entry = dict(next(f for f in features if f["name"] == "att_rate_20d"))
        features.append(entry | {"name": "att_rate_10d", "compute": {"kind": "rate", "last_days": 10}})
        features.append({"name": "weight_max_kg_30d", "domain": "health", "unit": "kg", "direction": "none",
                         "role": "child",
                         "compute": {"kind": "window_max", "column": "weight_kg", "days": 30},
                         "description": {"en": "Heaviest in 30 days", "th": "น้ำหนักสูงสุดใน 30 วัน"},
                         "reason": {"en": "{value}", "th": "{value}"}})

    catalog = load_catalog(edited_catalog(tmp_path, add_window))
    frame = features_from_frames(world() | {"context_rates": context_rates_frame()}, AS_OF, catalog)
    row = frame.set_index("student_key").loc[S1]
    # Last 10 school days: 27 May – 7 June; not attended 27 May, 3, 4, 5, 7 June → 5 of 10.
    assert row["att_rate_10d"] == pytest.approx(0.5)
    assert row["weight_max_kg_30d"] == 40.0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda fs: fs[0]["compute"].update(kind="median"), "att_rate_term.*compute kind 'median'"),
        (lambda fs: fs[0]["compute"].update(scope="week"), "att_rate_term.*scope"),
        (lambda fs: fs.append(dict(fs[0])), "appear twice: att_rate_term"),
        (lambda fs: fs[0].pop("reason"), "att_rate_term.*reason"),
        (lambda fs: fs[-1]["compute"].update(where="amount_baht; DROP TABLE x"), "compute.where"),
        (lambda fs: fs[0].pop("role"), "att_rate_term.*role.*required"),
        (lambda fs: fs[0].update(role="teacher"), "att_rate_term.*role"),
        (lambda fs: fs[0].pop("action"), "att_rate_term.*needs an action"),
        (lambda fs: next(f for f in fs if f["name"] == "sex").update(action="counselling"),
         "'sex'.*protected feature is never a reason"),
        (lambda fs: fs[0].update(min_grade="P7"), "min_grade names no grade_level category: att_rate_term: 'P7'"),
        (lambda fs: fs[0]["reason"].update(en="Attended {vaule}"), "att_rate_term.*placeholder other than"),
    ],
)
def test_a_wrong_entry_is_a_config_error_naming_the_feature(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=message):
        load_catalog(edited_catalog(tmp_path, edit))


def event_entry(domain: str, compute: dict, categories: list[str] | None = None) -> dict:
    """A catalog entry named ``bad_event`` of a dated-event domain."""
    entry = {"name": "bad_event", "domain": domain, "unit": "count", "direction": "none", "role": "child",
             "compute": compute, "description": {"en": "x", "th": "x"}, "reason": {"en": "{value}", "th": "{value}"}}
    return entry | ({"unit": "category", "categories": categories} if categories else {})


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        # A number kind over text: DuckDB would fail at batch time ("Could not convert string 'fair' to DOUBLE").
        (event_entry("household", {"kind": "latest", "column": "house_condition"}),
         "latest reads a number, and compute.column 'house_condition' is text"),
        (event_entry("household", {"kind": "window_sum", "column": "water_source", "days": 30}),
         "window_sum reads a number, and compute.column 'water_source' is text"),
        (event_entry("household", {"kind": "latest_flag", "column": "cct_status", "op": "lt", "threshold": 1}),
         "latest_flag reads a number"),
        (event_entry("household", {"kind": "latest_code", "column": "monthly_income_baht"}, ["a", "b"]),
         "latest_code reads text, and compute.column 'monthly_income_baht' is not text (the domain's text columns: "
         "cct_status, house_condition, lives_with, water_source)"),
        (event_entry("health", {"kind": "latest_code", "column": "weight_kg"}, ["a"]),
         "compute.column 'weight_kg' is not text (the domain's text columns: none)"),
        # Not a 0/1 flag: SQL would keep any non-zero amount or count, the online twin only 1.
        (event_entry("assistance", {"kind": "window_sum", "column": "amount_baht", "days": 30, "where": "amount_baht"}),
         "compute.where 'amount_baht' is not a 0/1 flag column (the domain's flags: received, is_cct)"),
        (event_entry("behaviour", {"kind": "window_count", "days": 365, "where": "risk_flag_count"}),
         "compute.where 'risk_flag_count' is not a 0/1 flag"),
        # A kind that would ignore its where.
        (event_entry("assistance", {"kind": "latest", "column": "amount_baht", "where": "received"}),
         "latest takes no compute.where"),
        (event_entry("behaviour", {"kind": "change", "column": "sdq_total", "where": "bullying"}),
         "change takes no compute.where"),
    ],
)
def test_an_event_entry_the_sql_and_its_online_twin_would_read_differently_is_a_config_error(tmp_path, entry,
                                                                                               message):
    with pytest.raises(ConfigError, match=rf"feature 'bad_event': .*{re.escape(message)}"):
        load_catalog(edited_catalog(tmp_path, lambda features: features.append(entry)))


@pytest.mark.parametrize(
    "entry",
    [event_entry("assistance", {"kind": "window_sum", "column": "amount_baht", "days": 30, "where": "is_cct"}),
     event_entry("behaviour", {"kind": "days_since_latest", "where": "bullying"}),
     event_entry("household", {"kind": "window_max", "column": "owns_land", "days": 365, "where": "lives_with_parents"}),
     event_entry("household", {"kind": "latest_code", "column": "lives_with"}, ["alone"])],
)
def test_an_event_entry_over_the_columns_its_kind_reads_loads(tmp_path, entry):
    catalog = load_catalog(edited_catalog(tmp_path, lambda features: features.append(entry)))
    assert catalog.get("bad_event").compute == entry["compute"]


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_domain_checks_its_kinds_and_has_a_module_to_build_them(tmp_path, domain):
    def unknown_kind(features):
        next(f for f in features if f["domain"] == domain)["compute"]["kind"] = "median"

    with pytest.raises(ConfigError, match=r"feature '\w+': compute kind"):
        load_catalog(edited_catalog(tmp_path, unknown_kind))
    assert domain in DOMAIN_MODULES


@pytest.mark.parametrize(
    ("value", "unit", "lang", "text"),
    [(0.62, "share", "en", "62%"), (2500.0, "baht", "en", "2,500 baht"), (2500.0, "baht", "th", "2,500 บาท"),
     (3.0, "days", "th", "3 วัน"), (-1.53, "z", "en", "-1.5 SD"), (None, "days", "th", "ไม่มีข้อมูล"),
     (-25.0, "percent", "en", "-25%"), (1.0, "days", "en", "1 day"), (2.0, "days", "en", "2 days"),
     (1.0, "people", "en", "1 person"), (1.5, "credits", "en", "1.5 credits"), (1.0, "credits", "en", "1 credit"),
     (-0.04, "share_change", "en", "-4 points"), (0.01, "share_change", "en", "1 point"),
     (-0.04, "share_change", "th", "-4 จุดเปอร์เซ็นต์"), (0.003, "share_change", "en", "0.3 points")],
)
def test_values_are_formatted_for_teachers(value, unit, lang, text):
    assert format_value(value, unit, lang) == text


def test_a_signed_value_loses_its_sign_when_the_words_carry_it():
    assert format_value(-0.04, "share_change", "en", signed=False) == "4 points"
    assert format_value(-30.0, "percent", "en", signed=False) == "30%"
    assert format_value(-2.34, "z", "th", signed=False) == "2.3 SD"


@pytest.mark.parametrize(
    ("name", "value", "en", "th"),
    [("att_exam_line_margin", -0.04, "Attendance is 4 points under the 80% line for exam eligibility (มส)",
      "การมาเรียนต่ำกว่าเกณฑ์ 80% ที่มีสิทธิ์สอบ 4 จุดเปอร์เซ็นต์ (มส)"),
     ("att_current_absence_streak", 1.0, "Has missed the last 1 day in a row, up to today",
      "ขาดเรียนติดต่อกันมาแล้ว 1 วัน จนถึงวันนี้"),
     ("grades_zero_last_term", 1.0, "1 subject graded 0 last term", "ได้เกรด 0 จำนวน 1 วิชาในภาคเรียนที่แล้ว"),
     ("grades_zero_last_term", 3.0, "3 subjects graded 0 last term", "ได้เกรด 0 จำนวน 3 วิชาในภาคเรียนที่แล้ว"),
     ("income_change_pct", -30.0, "Household income fell by 30% since the screening before",
      "รายได้ครัวเรือนลดลง 30% จากการคัดกรองครั้งก่อน"),
     ("att_trend_4w", -0.04, "Attendance fell by 4 points in the last 4 weeks, against the 8 weeks before",
      "การมาเรียนลดลง 4 จุดเปอร์เซ็นต์ ใน 4 สัปดาห์ล่าสุด เทียบกับ 8 สัปดาห์ก่อนหน้า")],
)
def test_reasons_read_as_a_teacher_would_say_them(name, value, en, th):
    spec = load_catalog(CATALOG_FILE).get(name)
    assert (reason_text(spec, value, "en"), reason_text(spec, value, "th")) == (en, th)


# Representative values per unit; features that can fall below 0 (those with reason_negative)
# also get negative ones. Every reason of the catalog is rendered with each.
UNIT_VALUES = {"share": [0.0, 0.01, 0.5, 0.83, 1.0], "rate": [0.0, 0.12, 1.0], "share_change": [0.0, 0.004, 0.01, 0.15],
               "percent": [0.0, 1.0, 25.0], "z": [0.0, 0.04, 1.0, 2.5], "kg": [0.0, 1.0, 2.5],
               "years": [0.0, 1.0, 2.0, 0.5], "grade_points": [0.0, 1.0, 1.5, 4.0], "days": [0.0, 1.0, 2.0, 12.0],
               "count": [0.0, 1.0, 2.0, 5.0], "credits": [0.0, 1.0, 1.5, 3.0], "months": [0.0, 1.0, 7.0],
               "people": [0.0, 1.0, 3.0], "points": [0.0, 1.0, 12.0], "baht": [0.0, 1.0, 2500.0],
               "km": [0.4, 1.0, 2.5], "flag": [0.0, 1.0], "category": [0.0, 1.0], "score": [0.0, 1.0, 2.0]}
# English plural errors: a number other than 1 before a singular, or 1 before a plural.
SINGULAR = r"(day|subject|credit|month|year|point|school(?! days?\b)|term|activity|behaviour|person)"
PLURAL = r"(days|subjects|credits|months|years|points|schools|terms|activities|behaviours|people)"


def rendered_reasons():
    for spec in load_catalog(CATALOG_FILE).features:
        values = list(UNIT_VALUES[spec.unit])
        if spec.reason_negative is not None:
            values += [-v for v in values if v]
        for value in [*values, None]:
            yield spec, value, reason_text(spec, value, "en"), reason_text(spec, value, "th")


def test_every_reason_of_the_catalog_reads_properly_in_both_languages():
    checked = 0
    for spec, value, en, th in rendered_reasons():
        where = f"{spec.name} at {value}"
        for text in (en, th):
            assert "{" not in text and "}" not in text, f"{where}: a placeholder is left in {text!r}"
            assert not re.search(r"[-−+]\s*\d", text), f"{where}: a signed number in {text!r}"
        assert not re.search(rf"(?<![\d.])(?!1 )\d[\d,.]* {SINGULAR}\b", en), f"{where}: singular after a number: {en!r}"
        assert not re.search(rf"(?<![\d.,])1 {PLURAL}\b", en), f"{where}: plural after 1: {en!r}"
        assert re.search(r"[\u0e00-\u0e7f]", th), f"{where}: the Thai text has no Thai: {th!r}"
        checked += 1
    assert checked > 200


def test_the_plural_check_catches_what_it_should():
    # The checks of the test above, on texts that break them.
    assert re.search(rf"(?<![\d.,])1 {PLURAL}\b", "Missed 1 days of school")
    assert re.search(rf"(?<![\d.])(?!1 )\d[\d,.]* {SINGULAR}\b", "3 subject graded 0")
    assert not re.search(rf"(?<![\d.])(?!1 )\d[\d,.]* {SINGULAR}\b", "1 subject graded 0")
    assert not re.search(rf"(?<![\d.,])1 {PLURAL}\b", "1.5 credits")
    assert not re.search(rf"(?<![\d.])(?!1 )\d[\d,.]* {SINGULAR}\b", "the last 20 school days")
    assert re.search(r"[-−+]\s*\d", "Attendance is -4% from the 80% line")


def test_roles_groups_and_grades_are_as_the_issue_says():
    catalog = load_catalog(CATALOG_FILE)
    roles = {f.name: f.role for f in catalog.features}
    assert {n for n, r in roles.items() if r == "protected"} == {"sex", "non_thai", "has_disability"}
    assert {n for n, r in roles.items() if r == "context"} == {
        "grade_level", "transition_year", "year_end_term", "age_years", "school_size", "school_rural", "region",
        "school_past_dropout_rate", "district_past_dropout_rate"}
    group = {f.name: f.group for f in catalog.features}
    assert group["att_rate_term"] == group["att_rate_20d"] == group["att_exam_line_margin"]
    assert group["gpa_last_term"] == group["gpa_term_before"] != group["gpa_change"]
    assert group["income_per_capita_baht"] == "income_per_capita_baht"  # the default: its own name
    assert catalog.get("att_exam_line_margin").min_grade == "P1"
    assert catalog.get("grades_not_eligible_last_term").min_grade == "P1"
    assert catalog.grade_index("P1") == 3 and catalog.grade_index(None) is None


def test_an_action_the_scoring_settings_lack_is_a_config_error_naming_the_feature(tmp_path):
    from risk.scoring.settings import DEFAULT_SCORING_SETTINGS, load_scoring_settings

    data = yaml.safe_load(DEFAULT_SCORING_SETTINGS.read_text(encoding="utf-8"))
    del data["actions"]["travel_support"]
    del data["action_codes"]["travel_support"]  # a recordable code must be a suggested action too
    path = tmp_path / "scoring.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"scoring.yaml: actions: .*distance_to_school_km → travel_support"):
        load_scoring_settings(path)
    # Every action the shipped catalog names is defined in the shipped settings.
    assert load_scoring_settings().actions.keys() >= {f.action for f in load_catalog(CATALOG_FILE).features
                                                      if f.action}


def test_a_catalog_from_before_roles_reads_with_the_installed_roles_and_never_shows_an_unknown_feature(tmp_path):
    """A champion registered before roles existed keeps its catalog; it must load, and stay within the rules."""
    data = yaml.safe_load(CATALOG_FILE.read_text(encoding="utf-8"))
    for entry in data["features"]:
        for key in ("role", "group", "min_grade", "action", "reason_negative", "reason_zero"):
            entry.pop(key, None)
        if entry["name"] == "att_exam_line_margin":
            entry["unit"] = "share"  # as it was written then
    region = next(entry for entry in data["features"] if entry["name"] == "region")
    data["features"].append({**region, "name": "old_region_code", "direction": "higher"})
    old = tmp_path / "catalog.yaml"
    old.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match="role"):
        load_catalog(old)
    read = load_catalog(old, installed=load_catalog(CATALOG_FILE))
    assert read.get("non_thai").role == "protected" and not read.get("non_thai").is_reason
    assert read.get("school_past_dropout_rate").role == "context"
    assert read.get("att_exam_line_margin").min_grade == "P1" and read.get("att_rate_term").action
    assert read.get("old_region_code").role == "protected"  # nobody said what it is: never a reason
    assert read.names == [entry["name"] for entry in data["features"]]
