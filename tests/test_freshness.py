"""Domain freshness at as_of, and the refusal of an as_of the store does not cover.

Two kinds of store: Parquet files written by hand in the validated layout (only the
date columns matter to freshness), and the conftest export run through
``risk validate`` for the feature matrix and the CLI. The export's week is
3–7 June 2024 (term 2567-1); as_of is Friday 7 June.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import clean_tables, write_source
from typer.testing import CliRunner

from risk.cli import app
from risk.config import FreshnessSettings, Settings
from risk.data.validate import validate_sources
from risk.features.batch import build_feature_matrix
from risk.features.catalog import load_catalog
from risk.features.freshness import AsOfOutsideDataError, check_as_of_in_data, domain_freshness

AS_OF = dt.date(2024, 6, 7)
CATALOG = load_catalog(Path(__file__).resolve().parent.parent / "configs" / "features.yaml")
KEY = b"freshness-test-key-0123456789"


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def write_dates(validated: Path, table: str, column: str, dates: list[str], folder: str = "bucket=0",
                row_group_size: int | None = None) -> None:
    """One Parquet file of ``dates`` in ``validated/table/folder``, as risk validate lays it out."""
    target = validated / table / folder
    target.mkdir(parents=True, exist_ok=True)
    frame = pa.table({"student_key": pa.array(range(len(dates)), pa.int64()),
                      column: pa.array([d(x) for x in dates], pa.date32())})
    pq.write_table(frame, target / f"part-{len(list(target.iterdir()))}.parquet", row_group_size=row_group_size)


def by_domain(validated: Path, as_of: dt.date = AS_OF, settings: Settings | None = None) -> dict:
    return {f.domain: f for f in domain_freshness(validated, as_of, settings or Settings())}


def fresh_tables() -> dict[str, pd.DataFrame]:
    """The conftest export with every domain dated on or before 7 June (grades and assistance moved earlier)."""
    tables = clean_tables()
    tables["grades"]["recorded_on"] = d("2024-06-06")
    tables["assistance"]["date"] = d("2024-06-06")
    return tables


@pytest.fixture(scope="module")
def validated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fresh")
    validate_sources(write_source(fresh_tables(), root / "source"), root / "validated", key=KEY, progress=False,
                     buckets=2)
    return root / "validated"


# ---------------------------------------------------------------- the rules, on hand-written files
def test_newest_row_age_and_rows_in_the_term(tmp_path):
    # Term 2567-1 starts in May: two March days belong to 2566-2, three June days up to as_of to 2567-1.
    write_dates(tmp_path, "attendance_daily", "date", ["2024-03-14", "2024-03-15"], "bucket=0/term=2566-2")
    write_dates(tmp_path, "attendance_daily", "date", ["2024-06-05", "2024-06-06", "2024-06-07", "2024-06-10"],
                "bucket=0/term=2567-1")
    attendance = by_domain(tmp_path)["attendance_daily"]
    assert (attendance.newest, attendance.age_days, attendance.rows_in_term) == (d("2024-06-07"), 0, 3)
    assert attendance.status == "fresh" and attendance.warning() is None


def test_a_row_group_spanning_as_of_counts_only_rows_on_or_before_it(tmp_path):
    # Row groups of two rows: (1 Jun, 9 Jun) spans as_of, so statistics alone cannot decide it.
    write_dates(tmp_path, "household", "screened_on", ["2024-04-01", "2024-05-20", "2024-06-01", "2024-06-09"],
                row_group_size=2)
    household = by_domain(tmp_path)["household"]
    assert (household.newest, household.rows_in_term) == (d("2024-06-01"), 2)  # 20 May and 1 Jun


def test_a_screening_older_than_its_max_age_is_stale(tmp_path):
    write_dates(tmp_path, "household", "screened_on", ["2023-03-01"])  # 464 days before 7 June 2024
    household = by_domain(tmp_path)["household"]
    assert (household.age_days, household.max_age_days, household.status) == (464, 400, "stale")
    assert household.warning() == ("household screening is stale: its newest row is dated 2023-03-01, 464 days "
                                   "before 2024-06-07 (more than 400), so its features describe older data.")
    assert "464" in household.warning_th()


def test_a_screening_within_its_max_age_is_fresh_though_the_term_has_none(tmp_path):
    write_dates(tmp_path, "household", "screened_on", ["2023-07-01"])  # 342 days: last year's screening
    household = by_domain(tmp_path)["household"]
    assert (household.rows_in_term, household.status) == (0, "fresh")


def test_a_domain_without_rows_is_missing(tmp_path):
    write_dates(tmp_path, "behaviour", "screened_on", ["2024-06-20"])  # only after as_of
    found = by_domain(tmp_path)
    assert found["behaviour"].status == "missing" and found["behaviour"].newest is None
    assert found["health"].status == "missing"  # no folder at all
    assert "no row is dated on or before 2024-06-07" in found["behaviour"].warning()


def test_attendance_without_rows_in_the_scored_term_is_missing_however_recent(tmp_path):
    # The last rows of 2566-2 are 23 days old (fresh by age), but 2567-1 has none yet.
    write_dates(tmp_path, "attendance_daily", "date", ["2024-04-29", "2024-04-30"], "bucket=0/term=2566-2")
    attendance = by_domain(tmp_path, dt.date(2024, 5, 23))["attendance_daily"]
    assert (attendance.age_days, attendance.rows_in_term, attendance.status) == (23, 0, "missing")
    assert "term 2567-1" in attendance.warning()


def test_grades_from_the_last_term_are_fresh_within_240_days(tmp_path):
    write_dates(tmp_path, "grades", "recorded_on", ["2024-03-20"])  # 2566-2's grades, 79 days before as_of
    assert by_domain(tmp_path)["grades"].status == "fresh"


# ---------------------------------------------------------------- the store's span
def test_as_of_before_the_first_school_day_or_after_the_last_term_is_refused(validated):
    for outside in (d("2024-06-02"), d("2024-11-01")):
        with pytest.raises(AsOfOutsideDataError, match=r"covers school days from 2024-06-03 to 2024-06-07"):
            check_as_of_in_data(validated, outside)
    check_as_of_in_data(validated, d("2024-10-31"))  # the break after the last school day: still term 2567-1


def test_as_of_in_a_term_without_enrolled_students_is_refused(tmp_path):
    write_dates(tmp_path, "calendar", "date", ["2024-03-15", "2024-06-03"], folder=".")
    frame = pa.table({"student_key": pa.array([1], pa.int64()), "term": ["2567-1"]})
    (tmp_path / "enrollments" / "bucket=0").mkdir(parents=True)
    pq.write_table(frame, tmp_path / "enrollments" / "bucket=0" / "part-0.parquet")
    with pytest.raises(AsOfOutsideDataError, match="term 2566-2, where no student is enrolled"):
        check_as_of_in_data(tmp_path, d("2024-03-20"))


# ---------------------------------------------------------------- the feature matrix and the CLI
def test_all_fresh_no_warning(validated, tmp_path):
    report = build_feature_matrix(validated, AS_OF, tmp_path / "f.parquet", settings=Settings(), catalog=CATALOG,
                                  progress=False)
    assert {f.status for f in report.freshness} == {"fresh"}
    assert not [line for line in report.summary_lines() if line.startswith("warning:")]


def test_stale_household_is_a_warning_line_of_the_features_summary(validated, tmp_path):
    # The screening of 5 June is 2 days old at as_of: stale under a 1-day limit.
    ages = FreshnessSettings().max_age_days | {"household": 1}
    settings = Settings(freshness=FreshnessSettings(max_age_days=ages))
    report = build_feature_matrix(validated, AS_OF, tmp_path / "f.parquet", settings=settings, catalog=CATALOG,
                                  progress=False)
    warnings = [line for line in report.summary_lines() if line.startswith("warning:")]
    assert warnings == ["warning: household screening is stale: its newest row is dated 2024-06-05, 2 days before "
                        "2024-06-07 (more than 1), so its features describe older data."]
    assert (tmp_path / "f.parquet").exists()  # a warning, not a failure


@pytest.mark.parametrize("as_of", ["2024-05-01", "2030-01-01"])
def test_features_as_of_outside_the_data_is_an_error_and_writes_nothing(validated, tmp_path, as_of):
    out = tmp_path / "features.parquet"
    result = CliRunner().invoke(app, ["features", "--as-of", as_of, "--data", str(validated), "--out", str(out),
                                      "--quiet"])
    assert result.exit_code == 2, result.output
    assert f"--as-of {as_of} is outside the data" in result.output and "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.iterdir())


# ---------------------------------------------------------------- the term report
def test_term_report_shows_each_domains_freshness_at_the_runs_as_of(validated, tmp_path):
    from risk.scoring.term_report import term_report
    from risk.store import finish_run, open_store, start_run, write_summaries

    store = open_store(f"sqlite:///{tmp_path / 'risk.db'}")
    run = start_run(store, as_of=AS_OF, term="2567-1", model_name="dropout-risk", model_version="1", settings={})
    levels = {"nation": "TH", "region": "northeast", "province": "40", "district": "4001", "school": "1040100001"}
    write_summaries(store, run, pd.DataFrame({
        "level": list(levels), "area_code": list(levels.values()), "students": 3, "normal": 2, "at_risk": 1,
        "problem": 0, "flagged_rate": 1 / 3}))
    finish_run(store, run, students=3, drift={"score_psi": 0.0, "features": [], "drifted": [], "threshold": 0.2})
    html = term_report(store, tmp_path / "report.html", validated=validated).read_text(encoding="utf-8")
    assert '<section id="freshness">' in html and "ข้อมูลทุกด้านเป็นปัจจุบัน" in html
    assert html.count("เป็นปัจจุบัน / fresh") == 6 and "<td>2024-06-07</td>" in html  # attendance's last day
    assert "Data freshness was not checked" in term_report(store, tmp_path / "r.html").read_text(encoding="utf-8")


def test_score_as_of_outside_the_data_is_refused_before_a_run_starts(validated, tmp_path):
    result = CliRunner().invoke(app, ["score", "--as-of", "2030-01-01", "--data", str(validated),
                                      "--store", f"sqlite:///{tmp_path / 'risk.db'}", "--out",
                                      str(tmp_path / "scores.parquet"), "--quiet"])
    assert result.exit_code == 2 and "--as-of 2030-01-01 is outside the data" in result.output
    assert not list(tmp_path.iterdir())  # no store opened, no scores written


# ---------------------------------------------------------------- the case: a later term loses its household
def next_year_tables() -> dict[str, pd.DataFrame]:
    """The same students a year later (term 2568-1, week of 7 July 2025), every household row out of range."""
    tables = clean_tables()
    shift = {day: day + dt.timedelta(days=399) for day in tables["calendar"]["date"]}  # 3 June 2024 → 7 July 2025
    tables["calendar"] = tables["calendar"].assign(date=tables["calendar"]["date"].map(shift), term="2568-1")
    tables["attendance_daily"] = tables["attendance_daily"].assign(date=tables["attendance_daily"]["date"].map(shift))
    tables["enrollments"] = tables["enrollments"].assign(term="2568-1")
    tables["grades"] = tables["grades"].assign(term="2568-1", recorded_on=d("2025-07-10"))
    tables["household"] = tables["household"].assign(screened_on=d("2025-07-08"), household_size=0)  # rejected
    tables["health"] = tables["health"].assign(measured_on=d("2025-07-08"))
    tables["behaviour"] = tables["behaviour"].assign(screened_on=d("2025-07-08"))
    tables["assistance"] = tables["assistance"].assign(date=d("2025-07-08"))
    return tables


def test_a_later_term_whose_household_was_rejected_reports_household_stale(tmp_path):
    store = tmp_path / "validated"
    validate_sources(write_source(fresh_tables(), tmp_path / "2567-1"), store, key=KEY, progress=False, buckets=2)
    validate_sources(write_source(next_year_tables(), tmp_path / "2568-1"), store, key=KEY, progress=False, buckets=2,
                     accept_loss=frozenset({"household", "schools"}))
    report = build_feature_matrix(store, d("2025-07-11"), tmp_path / "f.parquet", settings=Settings(),
                                  catalog=CATALOG, progress=False)
    status = {f.domain: f.status for f in report.freshness}
    assert status == {"attendance_daily": "fresh", "grades": "fresh", "household": "stale", "health": "fresh",
                      "behaviour": "fresh", "assistance": "fresh"}
    assert any(line.startswith("warning: household screening is stale: its newest row is dated 2024-06-05, 401 days")
               for line in report.summary_lines())
