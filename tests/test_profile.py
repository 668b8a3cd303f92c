"""Source profiles: header aliases and value maps applied by the readers, and profile mistakes named."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from conftest import STUDENTS

from risk.data.contract import TABLES
from risk.data.formats import file_batches
from risk.data.profile import (
    SourceProfile,
    apply_values,
    load_profile,
    map_headers,
    profile_markdown,
)
from risk.errors import ConfigError

ENROLLMENTS = TABLES["enrollments"]
FIELD = """\
tables:
  enrollments:
    encoding: TIS-620
    columns:
      " เลขประจำตัวประชาชน ": student_id
      เพศ: sex
    values:
      sex: {ชาย: male, หญิง: female}
  attendance_daily:
    columns: {วันที่: date, สถานะ: status, เลขประจำตัวประชาชน: student_id}
    values:
      status: {มา: present, ขาด: absent}
  household:
    date_order: dmy
    era: be
    values:
      owns_land: {มี: yes, ไม่มี: no}
      household_size: {๕: 5}
"""


def _profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_field_profile_loads_with_names_people_write(tmp_path):
    profile = load_profile(_profile(tmp_path, FIELD))
    assert profile.table("enrollments").encoding == "cp874"
    # YAML reads yes/no and 5 as a flag and a number; a map holds text.
    assert profile.table("household").values["owns_land"] == {"มี": "true", "ไม่มี": "false"}
    assert profile.table("household").values["household_size"] == {"๕": "5"}
    assert profile.table("health").encoding == "auto"  # a table the profile does not name keeps the defaults


def test_a_header_alias_gives_the_contract_column_and_the_rest_are_unmapped(tmp_path):
    profile = load_profile(_profile(tmp_path, FIELD)).table("enrollments")
    mapped = map_headers(Path("x.csv"), ["เลขประจำตัวประชาชน", "term", "เพศ", "หมายเหตุ"], ENROLLMENTS, profile)
    assert mapped.by_header == {"เลขประจำตัวประชาชน": "student_id", "term": "term", "เพศ": "sex"}
    assert mapped.unmapped == ("หมายเหตุ",)
    assert "school_id" in mapped.missing and "classroom" not in mapped.missing


def test_value_maps_replace_only_the_values_they_name(tmp_path):
    profile = load_profile(_profile(tmp_path, FIELD)).table("enrollments")
    batch = pa.record_batch({"sex": ["ชาย", " หญิง ", "female", None, "ชายๆ"]})
    assert apply_values(batch, profile).column("sex").to_pylist() == ["male", "female", "female", None, "ชายๆ"]


def test_the_readers_apply_aliases_and_value_maps(tmp_path):
    profile = load_profile(_profile(tmp_path, FIELD))
    path = tmp_path / "attendance_daily.csv"
    path.write_bytes(("สถานะ,เลขประจำตัวประชาชน,วันที่\n" + f"ขาด,{STUDENTS[0]},03/06/2567\n").encode("cp874"))
    batch = next(file_batches(path, TABLES["attendance_daily"], 100, profile))
    assert batch.schema.names == ["student_id", "date", "status"]  # contract order, whatever the file's
    assert batch.to_pylist() == [{"student_id": STUDENTS[0], "date": "03/06/2567", "status": "absent"}]


@pytest.mark.parametrize("text, message", [
    ("tables:\n  househole: {era: be}\n", r"profile\.yaml: tables\.househole: no table 'househole'"),
    ("tables:\n  household:\n    columns: {เลข: studentid}\n",
     r"tables\.household\.columns\.เลข: 'studentid' is not a column of table 'household'"),
    ("tables:\n  household:\n    values: {sex: {ชาย: male}}\n",
     r"tables\.household\.values\.sex: 'sex' is not a column of table 'household'"),
    ("tables:\n  enrollments:\n    values: {sex: {ชาย: mal}}\n", r"'mal' is not an allowed value of sex"),
    ("tables:\n  enrollments:\n    columns: {a: sex, b: sex}\n", r"columns\.b: column 'sex' is already given"),
    ("tables:\n  enrollments: {encoding: latin-1}\n", r"profile\.yaml: tables\.enrollments\.encoding"),
    ("tables:\n  enrollments: {date_order: dym}\n", r"tables\.enrollments\.date_order"),
    ("tables:\n  enrollments: {sheets: x}\n", r"tables\.enrollments\.sheets"),
    ("tables: [\n", r"profile\.yaml: not valid YAML"),
])
def test_a_profile_mistake_names_the_file_and_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_profile(_profile(tmp_path, text))


def test_the_profile_documentation_names_every_key():
    text = profile_markdown()
    for key in ("encoding", "sheet", "date_order", "era", "columns", "values"):
        assert f"| `{key}` |" in text
    assert "เลขประจำตัวประชาชน: student_id" in text


def test_the_documentation_of_a_given_profile_shows_its_settings(tmp_path):
    text = profile_markdown(SourceProfile(tables={"household": {"era": "be"}}))
    assert "household:\n    era: be" in text


def test_date_options_go_to_every_date_column_of_the_table(tmp_path):
    from risk.data.values import ParseOptions

    profile = load_profile(_profile(tmp_path, FIELD))
    assert profile.options_for("household") == {"screened_on": ParseOptions(date_order="dmy", era="be")}
    assert profile.options_for("enrollments") == {"birth_date": ParseOptions(), "status_date": ParseOptions()}


def test_a_cct_form_export_types_the_same_as_the_clean_table(tmp_path):
    import pandas as pd
    from conftest import clean_tables

    from risk.data.values import typed_frame

    table, clean = TABLES["household"], clean_tables()["household"]
    form = clean.rename(columns={"student_id": "เลขประจำตัวประชาชน", "screened_on": "วันที่คัดกรอง"})
    form["วันที่คัดกรอง"] = [f"{d.day:02d}/{d.month:02d}/{d.year + 543}" for d in clean["screened_on"]]
    form["house_condition"] = clean["house_condition"].map({"poor": "ไม่ดี", "dilapidated": "ทรุดโทรม", "fair": "พอใช้"})
    form.to_csv(tmp_path / "household.csv", index=False, encoding="cp874")
    clean.to_parquet(tmp_path / "household.parquet", index=False)
    profile = SourceProfile(tables={"household": {
        "date_order": "dmy",
        "columns": {"เลขประจำตัวประชาชน": "student_id", "วันที่คัดกรอง": "screened_on"},
        "values": {"house_condition": {"ไม่ดี": "poor", "ทรุดโทรม": "dilapidated", "พอใช้": "fair"}}}})

    def typed(path, profile=None):
        batches = pa.Table.from_batches(list(file_batches(path, table, 100, profile)))
        options = profile.options_for("household") if profile else None
        return typed_frame(batches, table, source="export", options=options)

    form_frame, bad = typed(tmp_path / "household.csv", profile)
    assert bad == {}
    pd.testing.assert_frame_equal(form_frame, typed(tmp_path / "household.parquet")[0])
