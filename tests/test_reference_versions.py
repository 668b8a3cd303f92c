"""Schools and calendar come again with every export: unchanged rows are counted, a changed school is a new version."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import SCHOOL_A, SCHOOL_B, clean_tables, write_source

from risk.config import load_settings
from risk.data.validate import validate_sources
from risk.features.batch import build_feature_matrix
from risk.features.cache import DataFiles, feature_cache_path
from risk.features.catalog import load_catalog

CATALOG = load_catalog(Path(__file__).resolve().parent.parent / "configs" / "features.yaml")
SECOND_TERM = "2567-2"
# School days of term 2567-2 in the clean export's schools: Monday 4 to Friday 8 November 2024.
NOVEMBER = [dt.date(2024, 11, d) for d in (4, 5, 6, 7, 8)]
JUNE_POINT = dt.date(2024, 6, 7)  # the last school day of 2567-1, before the change
NOVEMBER_POINT = dt.date(2024, 11, 8)


def _next_term(schools: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """The export of term 2567-2: its calendar and register, the school list (``schools`` if given),
    and the student tables of 2567-1 sent again as they were."""
    t = clean_tables()
    calendar = pd.DataFrame([(s, d, SECOND_TERM) for s in (SCHOOL_A, SCHOOL_B) for d in NOVEMBER],
                            columns=["school_id", "date", "term"])
    enrollments = t["enrollments"].assign(term=SECOND_TERM)
    return t | {"calendar": calendar, "enrollments": enrollments,
                "schools": t["schools"] if schools is None else schools}


def _grown_school_a() -> pd.DataFrame:
    schools = clean_tables()["schools"]
    schools.loc[schools["school_id"] == SCHOOL_A, "size"] = "medium"
    return schools


@pytest.fixture
def first(clean_store: Path, tmp_path: Path) -> Path:
    """A fresh copy of the clean export of term 2567-1 validated into a new store."""
    return shutil.copytree(clean_store / "store", tmp_path / "store")


def _counts(report, table: str):
    return next(t for t in report.tables if t.table == table)


def test_schools_sent_again_unchanged_are_counted_not_quarantined(first, tmp_path, id_key):
    report = validate_sources(write_source(_next_term(), tmp_path / "second"), first, key=id_key, progress=False,
                              buckets=4)
    schools = _counts(report, "schools")
    assert (schools.rows_in, schools.used, schools.unchanged, schools.quarantined) == (2, 0, 2, 0)
    assert all(t.balanced for t in report.tables)
    assert len(pd.read_parquet(first / "schools")) == 2
    assert "unchanged" in report.summary_lines()[0]


def test_calendar_day_sent_again_is_unchanged_and_one_in_another_term_conflicts(first, tmp_path, id_key):
    tables = _next_term()
    stored_day = clean_tables()["calendar"].iloc[0]  # school A, 3 June 2024, 2567-1
    tables["calendar"] = pd.concat([tables["calendar"], pd.DataFrame([stored_day]),
                                    pd.DataFrame([stored_day.to_dict() | {"term": SECOND_TERM}])],
                                   ignore_index=True)
    report = validate_sources(write_source(tables, tmp_path / "second"), first, key=id_key, progress=False, buckets=4)
    calendar = _counts(report, "calendar")
    # The conflicting row also lies outside its term's months, which the row rules catch first.
    assert (calendar.used, calendar.unchanged, calendar.quarantined) == (10, 1, 1)
    assert calendar.balanced


def test_a_changed_school_is_a_new_version_dated_by_the_exports_first_term(first, tmp_path, id_key):
    report = validate_sources(write_source(_next_term(_grown_school_a()), tmp_path / "second"), first,
                              key=id_key, progress=False, buckets=4)
    schools = _counts(report, "schools")
    assert (schools.used, schools.unchanged, schools.quarantined) == (1, 1, 0)
    stored = pd.read_parquet(first / "schools").sort_values(["school_id", "valid_from"], na_position="first")
    versions = stored.loc[stored["school_id"] == SCHOOL_A, ["size", "valid_from"]]
    assert versions["size"].tolist() == ["small", "medium"]
    assert pd.isna(versions["valid_from"].iloc[0])  # the first version holds "always"
    assert versions["valid_from"].iloc[1] == dt.date(2024, 11, 1)  # term_start("2567-2")


def test_two_rows_of_one_school_in_one_export_still_conflict(first, tmp_path, id_key):
    schools = pd.concat([_grown_school_a(), clean_tables()["schools"].iloc[[0]]], ignore_index=True)
    report = validate_sources(write_source(_next_term(schools), tmp_path / "second"), first, key=id_key,
                              progress=False, buckets=4)
    counts = _counts(report, "schools")
    assert (counts.used, counts.unchanged, counts.by_rule) == (1, 1, {"duplicate_key": 1})


def test_features_see_the_version_in_force_at_as_of(first, tmp_path, id_key):
    validate_sources(write_source(_next_term(_grown_school_a()), tmp_path / "second"), first, key=id_key,
                     progress=False, buckets=4)
    settings = load_settings()
    categories = CATALOG.get("school_size").categories
    sizes = {}
    for day in (JUNE_POINT, NOVEMBER_POINT):
        out = tmp_path / f"features-{day}.parquet"
        build_feature_matrix(first, day, out, settings=settings, catalog=CATALOG, progress=False)
        sizes[day] = sorted(categories[int(v)] for v in pd.read_parquet(out)["school_size"])
    # Students 0 and 1 are at school A (small, then medium), student 2 at school B (medium).
    assert sizes[JUNE_POINT] == ["medium", "small", "small"]
    assert sizes[NOVEMBER_POINT] == ["medium", "medium", "medium"]


def test_a_new_version_moves_the_cache_key_of_later_points_only(first, tmp_path, id_key):
    # Cached feature points are keyed by the files that can hold rows dated on or before them
    # (risk.features.cache): the new version's file is dated by its valid_from.
    before = DataFiles.scan(first)
    tables = _next_term(_grown_school_a())
    tables["enrollments"] = clean_tables()["enrollments"]  # no register of 2567-2 yet
    report = validate_sources(write_source(tables, tmp_path / "second"), first, key=id_key, progress=False, buckets=4)
    after = DataFiles.scan(first)
    dated = {name: first_day for name, _, first_day, _ in after.files}
    assert dated[f"schools/part-{report.batch}.parquet"] == "2024-11-01"
    settings = load_settings()

    def key(day: dt.date, files: DataFiles) -> Path:
        return feature_cache_path(first, day, settings=settings, catalog=CATALOG, inputs=files)

    assert key(JUNE_POINT, before) == key(JUNE_POINT, after)
    assert key(NOVEMBER_POINT, before) != key(NOVEMBER_POINT, after)


def test_the_service_reads_one_row_per_school_its_latest(first, tmp_path, id_key):
    from risk.online.builder import OnlineFeatureBuilder

    validate_sources(write_source(_next_term(_grown_school_a()), tmp_path / "second"), first, key=id_key,
                     progress=False, buckets=4)
    builder = OnlineFeatureBuilder.load(first, catalog=CATALOG, settings=load_settings(), key=id_key)
    rows = builder.con.execute("SELECT school_id, size FROM ref_schools ORDER BY school_id").fetchall()
    assert rows == [(SCHOOL_B, "medium"), (SCHOOL_A, "medium")]


def test_a_valid_from_the_export_gives_dates_the_version(first, tmp_path, id_key, monkeypatch):
    # The contract may carry an optional schools.valid_from: a version the export dates itself.
    from dataclasses import replace

    from risk.data.contract import TABLES, Column

    schools = TABLES["schools"]
    dated = Column("valid_from", "date", "the day this version took effect", required=False)
    monkeypatch.setitem(TABLES, "schools", replace(schools, columns=(*schools.columns, dated)))
    grown = _grown_school_a().assign(valid_from=[dt.date(2024, 12, 2), None])
    report = validate_sources(write_source(_next_term(grown), tmp_path / "second"), first, key=id_key,
                              progress=False, buckets=4)
    counts = _counts(report, "schools")
    assert (counts.used, counts.unchanged, counts.quarantined) == (1, 1, 0)
    stored = pd.read_parquet(first / "schools")
    assert sorted(stored.loc[stored["school_id"] == SCHOOL_A, "valid_from"].dropna()) == [dt.date(2024, 12, 2)]
