"""Per-term aggregates: a point that reads last term's stored days equals the point read from rows.

A small synthetic store of two terms (4 buckets). Points early in the second term reach
back into the first (20- and 60-day windows); the stored days of the first term are
built by the latest point and reused by the earlier ones, so a stored term carries
nothing dated after an earlier point's ``as_of``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from synthetic_store import validated_synthetic

from risk.config import Settings
from risk.features import batch
from risk.features.aggregates import PreviousTermDays
from risk.features.attendance import horizon
from risk.features.base import AsOf
from risk.features.batch import bucket_groups, buckets_of, build_feature_matrix
from risk.features.catalog import load_catalog

CATALOG = load_catalog(Path(__file__).resolve().parent.parent / "configs" / "features.yaml")
KEY = b"aggregates-test-key-0123456789"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return validated_synthetic(tmp_path_factory.mktemp("aggregates"), students=300, terms=2, seed=5, key=KEY)


def school_days_of_last_term(validated: Path) -> list[dt.date]:
    calendar = pd.read_parquet(validated / "calendar", columns=["date", "term"])
    last = calendar[calendar["term"] == calendar["term"].max()]
    return sorted(pd.to_datetime(last["date"]).dt.date.unique())


def points(validated: Path) -> list[dt.date]:
    """The last school day first (it builds the stored days), then days 30, 10, 3 and 1 of the term."""
    days = school_days_of_last_term(validated)
    return [days[-1], days[29], days[9], days[2], days[0]]


def matrix(validated: Path, as_of: dt.date, out: Path) -> pd.DataFrame:
    build_feature_matrix(validated, as_of, out, settings=Settings(), catalog=CATALOG, progress=False,
                         check_data=False)
    return pd.read_parquet(out)


def test_the_catalog_reaches_into_last_term():
    # The premise of the stored days: some window reaches back past a term's first weeks.
    assert horizon(CATALOG) == 60


def test_points_from_stored_days_equal_points_from_rows(store, tmp_path, monkeypatch):
    stored = {d: matrix(store, d, tmp_path / f"stored-{d}.parquet") for d in points(store)}
    folder = PreviousTermDays(store, AsOf(points(store)[0])).folder
    assert sorted(p.name for p in folder.glob("*.parquet")) == [f"bucket={b}.parquet" for b in range(4)]
    monkeypatch.setattr(PreviousTermDays, "usable", lambda self, con: False)
    for day, frame in stored.items():
        rows = matrix(store, day, tmp_path / f"rows-{day}.parquet")
        assert frame["student_key"].tolist() == rows["student_key"].tolist()
        np.testing.assert_array_equal(frame[CATALOG.names].to_numpy(), rows[CATALOG.names].to_numpy())


def test_early_points_do_read_last_term(store, tmp_path):
    # Without last term, the 60-day rate on the term's 10th day would be the 10-day rate.
    day = points(store)[2]
    frame = matrix(store, day, tmp_path / "early.parquet")
    both = frame[["att_rate_60d", "att_rate_term"]].dropna()
    assert (both["att_rate_60d"] != both["att_rate_term"]).any()


def test_grouped_buckets_give_the_matrix_bucket_by_bucket_gives(store, tmp_path, monkeypatch):
    day = points(store)[1]
    assert len(bucket_groups(store, buckets_of(store))) == 1
    grouped = matrix(store, day, tmp_path / "grouped.parquet")
    monkeypatch.setattr(batch, "GROUP_ROWS", 1)
    assert len(bucket_groups(store, buckets_of(store))) == 4
    alone = matrix(store, day, tmp_path / "alone.parquet")
    pd.testing.assert_frame_equal(grouped, alone)


def test_a_changed_attendance_file_moves_the_stored_days(store, tmp_path):
    point = AsOf(points(store)[1])
    before = PreviousTermDays(store, point).folder
    extra = next((store / "attendance_daily").glob(f"bucket=0/term={point.previous_term}/*.parquet"))
    added = extra.with_name("part-extra-test.parquet")
    added.write_bytes(extra.read_bytes())
    try:
        assert PreviousTermDays(store, point).folder != before
    finally:
        added.unlink()
    assert PreviousTermDays(store, point).folder == before


def test_last_term_with_a_day_after_as_of_is_read_from_rows():
    con = duckdb.connect()
    con.execute("CREATE TABLE calendar AS SELECT * FROM (VALUES ('1040100001', DATE '2024-03-15', '2566-2'), "
                "('1040100001', DATE '2024-06-10', '2566-2')) t(school_id, date, term)")
    point = AsOf(dt.date(2024, 6, 7))
    assert not PreviousTermDays(Path("/nonexistent"), point).usable(con)
    con.execute("DELETE FROM calendar WHERE date > DATE '2024-06-07'")
    assert PreviousTermDays(Path("/nonexistent"), point).usable(con)
