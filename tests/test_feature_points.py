"""Many feature points of one small store, built together over held tables, equal the points built one by one.

``risk term`` builds its training points with :func:`build_feature_matrices`, which reads a
small store's student tables into memory once (:class:`HeldTables`) instead of opening
their Parquet files at every point. A store of 300 students over two terms (4 buckets):
the held views must select the rows the file views select, and every matrix must be the
same file, row for row and bit for bit. The drift reference's sample of whole buckets
(:func:`first_buckets_features`) must be the rows a bucket-by-bucket loop gives.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from synthetic_store import validated_synthetic

from risk.config import Settings
from risk.features import batch
from risk.features.base import AsOf
from risk.features.batch import (
    HeldTables,
    buckets_of,
    build_feature_matrices,
    build_feature_matrix,
    first_buckets_features,
)
from risk.features.build import build_features
from risk.features.catalog import load_catalog
from risk.features.context_rates import open_validated
from risk.features.sources import STUDENT_TABLES, connect, view_validated

CATALOG = load_catalog(Path(__file__).resolve().parent.parent / "configs" / "features.yaml")
KEY = b"feature-points-test-key-012345"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return validated_synthetic(tmp_path_factory.mktemp("points"), students=300, terms=2, seed=11, key=KEY)


def sample_days(validated: Path) -> list[dt.date]:
    """Days of both terms: the first term's 20th and last day, the second's 1st, 10th, 40th and last."""
    calendar = pd.read_parquet(validated / "calendar", columns=["date", "term"])
    first, second = (sorted(pd.to_datetime(calendar.loc[calendar["term"] == t, "date"]).dt.date.unique())
                     for t in sorted(calendar["term"].unique()))
    return [first[19], first[-1], second[0], second[9], second[39], second[-1]]


def fresh_copy(store: Path, into: Path) -> Path:
    """The store without derived data (stored days, context rates, cached points)."""
    shutil.copytree(store, into, ignore=shutil.ignore_patterns("_derived"))
    return into


def test_held_views_select_the_rows_file_views_select(store):
    held = HeldTables(store, Settings())
    files = connect()
    view_validated(files, store)
    term = sorted(pd.read_parquet(store / "calendar", columns=["term"])["term"].unique())[-1]
    try:
        for group, terms in (((0,), None), ((1, 3), (term,)), ((0, 1, 2, 3), None)):
            held.view(group, terms)
            view_validated(files, store, bucket=group, terms=terms)
            for name in STUDENT_TABLES:
                query = f"SELECT * FROM {name} ORDER BY ALL"
                assert held.con.execute(query).df().equals(files.execute(query).df()), (name, group, terms)
    finally:
        held.close()
        files.close()


def test_points_built_together_equal_points_built_one_by_one(store, tmp_path):
    days = sample_days(store)
    alone, together = fresh_copy(store, tmp_path / "alone"), fresh_copy(store, tmp_path / "together")
    for day in days:
        build_feature_matrix(alone, day, tmp_path / f"alone-{day}.parquet", settings=Settings(), catalog=CATALOG,
                             progress=False, check_data=False)
    reports = build_feature_matrices(together, [(day, tmp_path / f"together-{day}.parquet") for day in days],
                                     settings=Settings(), catalog=CATALOG)
    assert [r.as_of for r in reports] == days
    for day in days:
        one, many = pq.read_table(tmp_path / f"alone-{day}.parquet"), pq.read_table(tmp_path / f"together-{day}.parquet")
        assert many.num_rows > 0
        assert many.equals(one) and many.schema.metadata == one.schema.metadata, day


def test_several_groups_a_point_over_held_tables_equal_the_files(store, tmp_path, monkeypatch):
    monkeypatch.setattr(batch, "GROUP_ROWS", 1)  # every bucket its own pass, as at national size
    day = sample_days(store)[4]
    build_feature_matrix(fresh_copy(store, tmp_path / "alone"), day, tmp_path / "alone.parquet", settings=Settings(),
                         catalog=CATALOG, progress=False, check_data=False)
    build_feature_matrices(fresh_copy(store, tmp_path / "together"), [(day, tmp_path / "together.parquet")],
                           settings=Settings(), catalog=CATALOG)
    assert pq.read_table(tmp_path / "together.parquet").equals(pq.read_table(tmp_path / "alone.parquet"))


def test_a_store_past_the_held_size_is_read_from_its_files(store, tmp_path, monkeypatch):
    assert HeldTables.fit(store)
    monkeypatch.setattr(batch, "HELD_BYTES", 1_000)
    assert not HeldTables.fit(store)

    def refuse(*args: object) -> None:
        raise AssertionError("a store past HELD_BYTES was held")

    monkeypatch.setattr(HeldTables, "__init__", refuse)
    day = sample_days(store)[3]
    (report,) = build_feature_matrices(fresh_copy(store, tmp_path / "files"), [(day, tmp_path / "m.parquet")],
                                       settings=Settings(), catalog=CATALOG)
    assert report.students == pq.read_metadata(tmp_path / "m.parquet").num_rows > 0


def bucket_by_bucket(validated: Path, point: AsOf, min_rows: int) -> pd.DataFrame:
    """The drift reference's sample as it was built: bucket by bucket, each from rows, until ``min_rows``."""
    con = open_validated(validated, point, Settings())
    frames, rows = [], 0
    for bucket in buckets_of(validated):
        view_validated(con, validated, bucket=bucket)
        frames.append(build_features(con, point, CATALOG, keep_shared=True))
        rows += len(frames[-1])
        if rows >= min_rows:
            break
    con.close()
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("group_rows", [None, 1])
def test_first_buckets_are_the_rows_a_bucket_by_bucket_loop_stops_at(store, tmp_path, monkeypatch, group_rows):
    if group_rows is not None:
        monkeypatch.setattr(batch, "GROUP_ROWS", group_rows)
    point = AsOf(sample_days(store)[3])
    whole = bucket_by_bucket(store, point, 10**9)
    first = len(whole[whole["student_key"].isin(bucket_by_bucket(store, point, 1)["student_key"])])
    for min_rows in (first, first + 1, 10**9):  # the first bucket exactly, one row past it, all
        expected = bucket_by_bucket(store, point, min_rows)
        got = first_buckets_features(fresh_copy(store, tmp_path / f"m{min_rows}"), point, CATALOG, Settings(), min_rows)
        pd.testing.assert_frame_equal(got, expected)
    assert 0 < first < len(whole)
