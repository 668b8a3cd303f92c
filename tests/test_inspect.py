"""risk inspect: a preflight that says how each table reads and what it would lose, and writes nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from conftest import STUDENTS, clean_tables, thai_id, write_source
from typer.testing import CliRunner

from risk.cli import app
from risk.data.inspect import inspect_source
from risk.data.profile import load_profile

runner = CliRunner()
BAD_CHECK_DIGIT = STUDENTS[0][:-1] + str((int(STUDENTS[0][-1]) + 1) % 10)
PROFILE = """\
tables:
  household:
    encoding: cp874
    columns:
      เลขประจำตัวประชาชน: student_id
      วันที่คัดกรอง: screened_on
    values:
      house_condition: {ทรุดโทรม: dilapidated, ไม่ดี: poor, พอใช้: fair}
"""


def _listing(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


@pytest.fixture
def source(tmp_path) -> Path:
    """The clean export with one health height out of range and one bad ID in grades."""
    tables = clean_tables()
    tables["health"].loc[1, "height_cm"] = 2000.0
    tables["grades"].loc[3, "student_id"] = BAD_CHECK_DIGIT
    return write_source(tables, tmp_path / "source", csv=("schools", "grades", "health"))


def _thai_household(source: Path) -> None:
    """household as CCT sends it: cp874 CSV, Thai headers and values, dates day first in Buddhist Era."""
    frame = clean_tables()["household"].rename(columns={"student_id": "เลขประจำตัวประชาชน",
                                                        "screened_on": "วันที่คัดกรอง"})
    frame["วันที่คัดกรอง"] = "05/06/2567"
    frame["house_condition"] = ["ไม่ดี", "ทรุดโทรม", "พอใช้"]
    (source / "household.parquet").unlink()
    frame.to_csv(source / "household.csv", index=False, encoding="cp874")


def test_a_clean_table_reads_with_nothing_rejected(source):
    tables = {t.table: t for t in inspect_source(source)}
    assert all(t.error is None for t in tables.values())
    assert tables["schools"].files[0].info.format == "csv"
    assert tables["schools"].files[0].info.encoding == "utf-8"
    assert (tables["enrollments"].sampled, tables["enrollments"].rejected) == (3, [])


def test_values_that_would_be_rejected_are_shown_with_their_rule(source):
    tables = {t.table: t for t in inspect_source(source)}
    [height] = tables["health"].rejected
    assert (height.file, height.row, height.column, height.value, height.rule) == (
        "health.csv", 1, "height_cm", "2000.0", "out_of_range")
    [bad_id] = tables["grades"].rejected
    assert (bad_id.column, bad_id.rule) == ("student_id", "invalid_id")
    assert bad_id.value != BAD_CHECK_DIGIT and bad_id.value.endswith(BAD_CHECK_DIGIT[-4:])


def test_a_thai_export_reads_through_its_profile(source, tmp_path):
    _thai_household(source)
    (tmp_path / "profile.yaml").write_text(PROFILE, encoding="utf-8")
    [household] = [t for t in inspect_source(source, load_profile(tmp_path / "profile.yaml"))
                   if t.table == "household"]
    info = household.files[0].info
    assert (info.format, info.encoding, info.rows, info.missing) == ("csv", "cp874", 3, [])
    assert info.columns["เลขประจำตัวประชาชน"] == "student_id"
    dates = household.files[0].dates["screened_on"]
    assert (dates.order, dates.era) == ("dmy", "be")
    assert household.rejected == []


def test_the_command_prints_each_table_and_writes_nothing(source):
    before = _listing(source)
    result = runner.invoke(app, ["inspect", str(source)])
    assert result.exit_code == 0, result.output
    for name in ("schools", "attendance_daily", "assistance", "out_of_range", "invalid_id"):
        assert name in result.output
    assert BAD_CHECK_DIGIT not in result.output and STUDENTS[1] not in result.output
    assert _listing(source) == before


def test_the_command_shows_a_profile_mapping(source, tmp_path):
    _thai_household(source)
    (tmp_path / "profile.yaml").write_text(PROFILE, encoding="utf-8")
    result = runner.invoke(app, ["inspect", str(source), "--profile", str(tmp_path / "profile.yaml")])
    assert result.exit_code == 0, result.output
    assert "เลขประจำตัวประชาชน" in result.output and "cp874" in result.output


def test_without_the_profile_thai_headers_are_one_sentence_and_exit_2(source):
    _thai_household(source)
    result = runner.invoke(app, ["inspect", str(source)])
    assert result.exit_code == 2
    error = result.output.strip().splitlines()[-1]
    assert "household.csv" in error and "student_id" in error and "risk contract" in error
    assert "tables.household.columns" in error
    assert "Traceback" not in result.output


def test_a_missing_table_is_named_and_the_others_are_still_inspected(source):
    (source / "behaviour.parquet").unlink()
    tables = {t.table: t for t in inspect_source(source)}
    assert "no file for table 'behaviour'" in tables["behaviour"].error
    assert tables["assistance"].error is None and tables["assistance"].sampled == 3
    assert runner.invoke(app, ["inspect", str(source)]).exit_code == 2


def test_an_excel_table_with_number_cell_ids_inspects_clean(source):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "health"
    sheet.append(["student_id", "measured_on", "weight_kg", "height_cm"])
    for student in (thai_id("110370012345"), thai_id("110370012346")):
        sheet.append([int(student), dt.date(2024, 6, 4), 35, 142])
    (source / "health.csv").unlink()
    book.save(source / "health.xlsx")
    [health] = [t for t in inspect_source(source) if t.table == "health"]
    assert (health.files[0].info.format, health.files[0].info.sheet, health.files[0].info.rows) == ("xlsx", "health", 2)
    assert health.rejected == [] and health.sampled == 2


def test_month_first_dates_are_one_sentence_naming_the_file_and_date_order(source):
    frame = clean_tables()["health"]
    frame["measured_on"] = ["06/13/2024", "06/14/2024", "06/04/2024"]
    (source / "health.csv").write_text(frame.to_csv(index=False), encoding="utf-8")
    [health] = [t for t in inspect_source(source) if t.table == "health"]
    assert health.files[0].dates["measured_on"].order == "mdy"
    assert health.error.startswith(str(source / "health.csv")) and "date_order: mdy" in health.error
