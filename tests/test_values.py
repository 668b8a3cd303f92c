"""Export values as schools write them: day-first and Buddhist-Era dates, Thai digits, nothing lost."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from conftest import STUDENTS, clean_tables, write_source

from risk.data.contract import TABLES
from risk.data.reading import iter_chunks
from risk.data.validate import validate_sources
from risk.data.values import (
    DateForm,
    DateOrderError,
    ParseOptions,
    ascii_digits,
    describe_dates,
    typed_frame,
)

HOUSEHOLD = TABLES["household"]
DAYS = [dt.date(2024, 6, 16), dt.date(2024, 1, 6), dt.date(2023, 12, 31)]
THAI = str.maketrans("0123456789", "๐๑๒๓๔๕๖๗๘๙")


def _read(dates: list[object], **kwargs: object) -> tuple[list[object], list[bool]]:
    """``dates`` as a household export's screened_on: the days read, and which values were unreadable."""
    batch = pa.table({"student_id": [STUDENTS[0]] * len(dates), "screened_on": dates})
    frame, bad = typed_frame(batch, HOUSEHOLD, **kwargs)
    days = [None if pd.isna(v) else v.date() for v in frame["screened_on"]]
    return days, list(bad.get("screened_on", [False] * len(dates)))


WRITTEN = {
    "BE day first": [f"{d:%d/%m}/{d.year + 543}" for d in DAYS],
    "BE ISO": [f"{d.year + 543}-{d:%m-%d}" for d in DAYS],
    "CE day first": [f"{d:%d/%m/%Y}" for d in DAYS],
    "CE ISO": [d.isoformat() for d in DAYS],
    "Thai digits, BE day first": [f"{d:%d/%m}/{d.year + 543}".translate(THAI) for d in DAYS],
    "no leading zeros, dots": [f"{d.day}.{d.month}.{d.year + 543}" for d in DAYS],
}


@pytest.mark.parametrize("form", list(WRITTEN))
def test_every_written_form_of_a_date_reads_as_the_same_day(form):
    assert _read(WRITTEN[form], source="export") == (DAYS, [False] * 3)


@pytest.mark.parametrize("arrow_type", [pa.date32(), pa.timestamp("ms")])
def test_typed_dates_in_buddhist_era_are_made_ce(arrow_type):
    typed = pa.array([dt.datetime(d.year + 543, d.month, d.day) for d in DAYS]).cast(arrow_type)
    assert _read(typed, source="export") == (DAYS, [False] * 3)


@pytest.mark.parametrize("written", ["29/02/2567", "2567-02-29"])
def test_29_february_2567_is_29_february_2024(written):
    # 2567 CE is no leap year, but 2024 is: the year is made CE before the day is built.
    assert _read([written], source="export") == ([dt.date(2024, 2, 29)], [False])


def test_a_day_that_does_not_exist_is_unreadable():
    # 2568 BE is 2025 CE, not a leap year; April has 30 days.
    assert _read(["29/02/2568", "31/04/2567"], source="export") == ([None, None], [True, True])


def test_text_that_is_no_date_is_unreadable_and_nothing_else():
    assert _read(["16/06/25x7", "16/06/67", "", None], source="export") == ([None] * 4, [True, True, True, False])


def test_era_ce_keeps_buddhist_years_as_written():
    options = {"screened_on": ParseOptions(era="ce")}
    assert _read(["16/06/2567"], source="export", options=options) == ([dt.date(2567, 6, 16)], [False])


def test_era_be_takes_every_year_as_buddhist():
    options = {"screened_on": ParseOptions(era="be")}
    assert _read(["16/06/2567", "2567-06-16"], source="export", options=options) == ([DAYS[0]] * 2, [False] * 2)


MONTH_FIRST = ["06/16/2024", "06/17/2024", "01/02/2024"]


def _month_first_csv(folder: Path) -> Path:
    folder.mkdir()
    path = folder / "household.csv"
    clean_tables()["household"].assign(screened_on=MONTH_FIRST).to_csv(path, index=False)
    return path


def test_a_month_first_column_is_an_error_naming_file_column_and_option(tmp_path):
    path = _month_first_csv(tmp_path / "source")
    with pytest.raises(DateOrderError, match=r"household\.csv.*'screened_on'.*'06/16/2024'.*date_order: mdy.*--profile"):
        list(iter_chunks(path, HOUSEHOLD, 100, path.parent))


def test_a_month_first_column_reads_with_date_order_mdy(tmp_path):
    path = _month_first_csv(tmp_path / "source")
    chunk = next(iter_chunks(path, HOUSEHOLD, 100, path.parent, {"screened_on": ParseOptions(date_order="mdy")}))
    assert [d.date() for d in chunk.frame["screened_on"]] == [dt.date(2024, 6, 16), dt.date(2024, 6, 17),
                                                             dt.date(2024, 1, 2)]


def test_one_impossible_value_in_a_day_first_column_is_unreadable_not_an_error():
    dates = [f"{day:02d}/06/2567" for day in range(1, 21)] + ["06/16/2567"]
    days, bad = _read(dates, source="export")
    assert days[:20] == [dt.date(2024, 6, day) for day in range(1, 21)]
    assert (days[20], bad) == (None, [False] * 20 + [True])


def test_thai_digits_are_digits_in_codes_and_numbers():
    schools = pa.table({"school_id": ["๑๐๔๐๑๐๐๐๐๑"], "district_code": ["๔๐๐๑"], "latitude": ["๑๖.๔"]})
    frame, bad = typed_frame(schools, TABLES["schools"], source="export")
    assert (frame.loc[0, "school_id"], frame.loc[0, "district_code"], frame.loc[0, "latitude"], bad) == (
        "1040100001", "4001", 16.4, {})


def test_text_without_thai_digits_is_left_as_it_is():
    text = pa.array(["โรงเรียนบ้านหนองบัว", None, "ท21101"])
    assert ascii_digits(text) is text
    assert ascii_digits(pa.array(["ท๒๑๑๐๑", None])).to_pylist() == ["ท21101", None]


def test_payload_dates_stay_iso_only():
    # The API contract: ISO and Common Era, ASCII digits; a Buddhist-Era year is kept for the schema to refuse.
    days, bad = _read(["2024-06-16", "16/06/2567", "2567-06-16", "๒๐๒๔-๐๖-๑๖"])
    assert (days, bad) == ([DAYS[0], None, dt.date(2567, 6, 16), None], [False, True, False, True])


@pytest.mark.parametrize(("dates", "form"), [
    (WRITTEN["BE day first"], ("dmy", "be")),
    (WRITTEN["CE ISO"], ("iso", "ce")),
    (MONTH_FIRST, ("mdy", "ce")),
    (["no date", None], ("none", "none")),
])
def test_describe_dates_tells_order_and_era(dates, form):
    assert describe_dates(pa.array(dates, pa.string())) == DateForm(*form)


def _household_csv(tmp_path: Path, dates: list[str]) -> Path:
    """The clean export with household as CSV whose screened_on holds ``dates``."""
    tables = clean_tables()
    tables["household"] = tables["household"].assign(screened_on=dates)
    return write_source(tables, tmp_path / "source", csv=("schools", "grades", "household"))


def test_a_rejected_date_keeps_its_original_text_in_quarantine(tmp_path, id_key):
    dates = [f"{d:%d/%m}/{d.year + 543}" for d in clean_tables()["household"]["screened_on"]]
    dates[0] = "16/06/25x7"
    report = validate_sources(_household_csv(tmp_path, dates), tmp_path / "out", key=id_key, progress=False)
    quarantined = pd.read_parquet(tmp_path / "out" / "quarantine" / "household")
    assert list(quarantined["detail"]) == ["screened_on = 16/06/25x7: bad_type"]
    counts = {c.table: c for c in report.tables}["household"]
    assert (counts.rows_in, counts.quarantined) == (len(dates), 1)


def test_buddhist_day_first_export_validates_to_the_same_table_as_iso(tmp_path, id_key):
    days = clean_tables()["household"]["screened_on"]
    written = {"iso": [d.isoformat() for d in days], "be": [f"{d:%d/%m}/{d.year + 543}".translate(THAI) for d in days]}
    validated = {}
    for name, dates in written.items():
        validate_sources(_household_csv(tmp_path / name, dates), tmp_path / name / "out", key=id_key, progress=False)
        validated[name] = pd.read_parquet(tmp_path / name / "out" / "household").drop(columns=["_file", "_batch"],
                                                                                     errors="ignore")
    pd.testing.assert_frame_equal(validated["iso"], validated["be"])


def test_a_rejected_row_shows_its_date_as_written_and_its_student_id_only_masked(tmp_path, id_key):
    tables = clean_tables()
    raw_id = STUDENTS[0][:-1] + str((int(STUDENTS[0][-1]) + 1) % 10)  # a wrong check digit
    tables["household"].loc[0, "student_id"] = raw_id
    dates = [d.isoformat() for d in tables["household"]["screened_on"]]
    dates[0] = "31/04/2567"
    tables["household"] = tables["household"].assign(screened_on=dates)
    source = write_source(tables, tmp_path / "source", csv=("schools", "grades", "household"))
    validate_sources(source, tmp_path / "out", key=id_key, progress=False)
    detail = pd.read_parquet(tmp_path / "out" / "quarantine" / "household")["detail"].iloc[0]
    assert "screened_on = 31/04/2567: bad_type" in detail
    assert "invalid_id" in detail and raw_id not in detail


def test_a_long_iso_column_with_a_few_other_forms_reads_every_value():
    # ISO is read block by block (65,536 values); a block holding another form is read value by value.
    dates = ["2024-06-16"] * 70_000
    dates[100], dates[69_000] = "16/06/2567", "2024-13-01"
    days, bad = _read(dates, source="export")
    assert (days[100], days[69_000], days[0], days[-1]) == (DAYS[0], None, DAYS[0], DAYS[0])
    assert [i for i, b in enumerate(bad) if b] == [69_000]
