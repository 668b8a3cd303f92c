"""Spark features equal DuckDB's for every feature kind (risk.spark), in local mode.

The catalog of every kind and variant (tests/parity_support.py) is built by the DuckDB
path and by Spark SQL from the same plan, on the hand-made edge world at four points and
on the session's generated world at two; every value must agree within 1e-12 (NaN with
NaN). Dropping one explicit rewrite must break the comparison, so it cannot pass by
comparing nothing. One SparkSession serves the whole test process (start-up ~15 s).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import yaml
from feature_world import AS_OF, context_rates_frame, event_edge_world
from online_frames import features_from_frames
from parity_support import every_kind_catalog, every_kind_entries

from risk.config import Settings
from risk.features.base import AsOf
from risk.features.batch import build_feature_matrix
from risk.features.catalog import Catalog, load_catalog

pytestmark = [pytest.mark.slow, pytest.mark.spark,
              # PySpark 4.3 under pandas 3 (README, "Running on a Spark cluster"): ~3,000 lines a run, one per column
              # of each toPandas, nothing risk can act on.
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
              pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")]

EDGE_POINTS = (dt.date(2024, 5, 20), AS_OF, dt.date(2024, 6, 14), dt.date(2024, 3, 15))


@pytest.fixture(scope="module")
def every(tmp_path_factory) -> Catalog:
    return every_kind_catalog(tmp_path_factory.mktemp("every_kind_spark"))


@pytest.fixture(scope="module")
def attendance_kinds(tmp_path_factory) -> Catalog:
    """The every-kind catalog's attendance entries alone (65 of 750: a plan Spark builds in a fraction of the time)."""
    path = tmp_path_factory.mktemp("attendance_kinds_spark") / "attendance.yaml"
    entries = [e for e in every_kind_entries() if e["domain"] == "attendance"]
    path.write_text(yaml.safe_dump({"name": "attendance-kinds", "features": entries}, allow_unicode=True,
                                   sort_keys=False), encoding="utf-8")
    return load_catalog(path)


def differences(duck: pd.DataFrame, spark: pd.DataFrame, names: list[str]) -> list[tuple]:
    """(feature, students that differ, one DuckDB value, Spark's) for each feature not within 1e-12."""
    assert sorted(duck["student_key"]) == sorted(spark["student_key"]), "the cohorts differ"
    a = duck.set_index("student_key").sort_index()
    b = spark.set_index("student_key").loc[a.index]
    found = []
    for name in names:
        x, y = a[name].to_numpy(np.float64), b[name].to_numpy(np.float64)
        same = (np.isnan(x) & np.isnan(y)) | np.isclose(x, y, rtol=1e-12, atol=1e-12)
        if not same.all():
            i = np.flatnonzero(~same)[0]
            found.append((name, int((~same).sum()), float(x[i]), float(y[i])))
    return found


def spark_edge_features(spark, as_of: dt.date, catalog: Catalog) -> pd.DataFrame:
    from risk.spark.features import spark_features
    from risk.spark.sources import register_frames

    register_frames(spark, event_edge_world() | {"context_rates": context_rates_frame()})
    frame, cached = spark_features(spark, AsOf(as_of), catalog)
    out = frame.toPandas()
    for part in cached:
        part.unpersist()
    return out


@pytest.mark.parametrize("as_of", EDGE_POINTS)
def test_every_kind_on_the_edge_world_equals_duckdb(spark, every, as_of):
    duck = features_from_frames(event_edge_world() | {"context_rates": context_rates_frame()}, as_of, every)
    ours = spark_edge_features(spark, as_of, every)
    assert len(duck) >= 4
    assert not differences(duck, ours, every.names)
    assert str(ours["as_of"].iloc[0]) == str(as_of)


def test_leaving_out_the_weekday_rewrite_is_caught(spark, attendance_kinds, monkeypatch):
    """sqlglot's translation of isodow (Sunday first): the weekday features must then differ, and only they
    (the attendance kinds: every other one reads the same days)."""
    from risk.spark import dialect

    sunday_first = ("isodow", lambda sql: dialect.rewrite_calls(sql, "isodow", lambda a: f"dayofweek({a[0]})"))
    monkeypatch.setattr(dialect, "REWRITES", tuple(sunday_first if n == "isodow" else (n, f)
                                                  for n, f in dialect.REWRITES))
    catalog = attendance_kinds
    duck = features_from_frames(event_edge_world() | {"context_rates": context_rates_frame()}, AS_OF, catalog)
    found = differences(duck, spark_edge_features(spark, AS_OF, catalog), catalog.names)
    assert found and {catalog.get(name).compute["kind"] for name, *_ in found} == {"share_of_absences_on"}


def points(validated) -> list[dt.date]:
    """Week 1 of the newest term (its 60-day windows reach into the term before) and week 8 of the term before
    (another term, its own past rates). A point inside the newest term is held to risk score's by
    tests/test_spark_scoring.py, and every kind mid-term above, on the edge world; each point here costs ~45 s."""
    calendar = pd.read_parquet(validated / "calendar", columns=["term", "date"])
    terms = sorted(calendar["term"].unique())
    first = {t: pd.Timestamp(calendar.loc[calendar["term"] == t, "date"].min()) for t in terms[-2:]}
    return [(first[terms[-1]]).date(), (first[terms[-2]] + pd.Timedelta(weeks=7)).date()]


def test_every_kind_on_the_generated_world_equals_duckdb(spark, every, world, tmp_path):
    from risk.spark.features import build_feature_matrix_spark

    validated, settings = world / "validated", Settings()
    for as_of in points(validated):
        build_feature_matrix(validated, as_of, tmp_path / f"duck-{as_of}.parquet", settings=settings, catalog=every,
                             progress=False)
        report = build_feature_matrix_spark(spark, validated, as_of, str(tmp_path / f"spark-{as_of}"),
                                            settings=settings, catalog=every)
        duck = pd.read_parquet(tmp_path / f"duck-{as_of}.parquet")
        ours = pd.read_parquet(tmp_path / f"spark-{as_of}")
        assert report.students == len(duck) >= 1000
        # Counted from the written files' footers: each feature's share of missing values, as pandas counts it.
        assert report.missing_share == {n: round(ours[n].isna().sum() / len(ours), 4) for n in every.names}
        assert not differences(duck, ours, every.names), as_of
        assert sorted(p.name for p in (tmp_path / f"spark-{as_of}").glob("bucket=*")) == [
            f"bucket={b}" for b in range(4)]
