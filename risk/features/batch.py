"""Batch path: the feature matrix of every enrolled student, one bucket of students at a time.

Validated student tables are split into buckets by pseudonym (``bucket=N``
folders), so each step reads only its bucket's files and memory stays bounded
whatever the national size. Many points of a small store (the training points of
``risk term``) are built by :func:`build_feature_matrices` over one connection that
holds the student tables in memory (:class:`HeldTables`).
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import time
from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from risk.config import Settings
from risk.errors import ContractError
from risk.features.aggregates import PreviousTermDays
from risk.features.attendance import PREVIOUS_DAYS
from risk.features.base import AsOf, sql_text
from risk.features.build import FeaturePlan, build_features, feature_plan
from risk.features.catalog import Catalog
from risk.features.context_rates import context_rates, open_validated
from risk.features.freshness import (
    DomainFreshness,
    check_as_of_in_data,
    domain_freshness,
    warnings_of,
)
from risk.features.sources import STUDENT_TABLES, connect, view_validated
from risk.progress import Progress

__all__ = ["GROUP_ROWS", "HELD_BYTES", "FeatureRunReport", "HeldTables", "bucket_groups", "build_feature_matrices",
           "build_feature_matrix", "buckets_of", "first_buckets_features", "group_features", "last_term_days"]


class FeatureRunReport(BaseModel):
    as_of: dt.date
    term: str
    students: int
    features: int
    catalog_version: str
    missing_share: dict[str, float]
    seconds: float
    peak_rss_mb: float
    output: str
    # Each student domain's newest row and status at as_of (risk.features.freshness).
    freshness: list[DomainFreshness] = []

    def summary_lines(self) -> list[str]:
        worst = sorted(self.missing_share.items(), key=lambda kv: -kv[1])[:5]
        return [
            f"features at {self.as_of} (term {self.term}): {self.students:,} students × {self.features} features",
            f"catalog {self.catalog_version}; {self.seconds:.1f} s; peak RSS {self.peak_rss_mb:,.0f} MB",
            "most often missing: " + ", ".join(f"{n} {s:.0%}" for n, s in worst),
            *(f"warning: {sentence}" for sentence in warnings_of(self.freshness)),
            f"written to {self.output}",
        ]


# Enrollment rows (all terms) one pass of the feature SQL takes at most, unless a bucket alone holds more.
GROUP_ROWS = 250_000


def buckets_of(validated: Path) -> list[int]:
    """The student buckets present in a validated folder."""
    folder = validated / "enrollments"
    if not folder.is_dir():
        raise ContractError(f"{validated} holds no validated enrollments: run `risk validate` first")
    buckets = sorted(int(p.name.split("=", 1)[1]) for p in folder.glob("bucket=*") if p.is_dir())
    if not buckets:
        raise ContractError(f"{folder} has no bucket=N folders: was it written by `risk validate`?")
    return buckets


def bucket_groups(validated: Path, buckets: list[int], rows: int | None = None) -> list[tuple[int, ...]]:
    """``buckets`` in order, cut into groups of at most ``rows`` (default :data:`GROUP_ROWS`) enrollment
    rows (a bucket is never cut).

    Each group is one pass of the feature SQL. Planning that SQL costs ~0.1 s whatever the
    data, so a small store's 32 buckets of a few hundred students each cost more to plan than
    to compute; a national bucket (~500k enrollment rows at 4M students over 4 terms) stays alone.
    """
    rows = GROUP_ROWS if rows is None else rows
    groups: list[tuple[int, ...]] = []
    current: list[int] = []
    held = 0
    for bucket in buckets:
        size = sum(pq.ParquetFile(f).metadata.num_rows
                   for f in (validated / "enrollments" / f"bucket={bucket}").glob("*.parquet"))
        if current and held + size > rows:
            groups.append(tuple(current))
            current, held = [], 0
        current.append(bucket)
        held += size
    if current:
        groups.append(tuple(current))
    return groups


def build_feature_matrix(validated: Path, as_of: dt.date, out: Path, *, settings: Settings, catalog: Catalog,
                         progress: bool = True, check_data: bool = True, stored_terms: bool = True,
                         group_rows: int | None = None, held: HeldTables | None = None) -> FeatureRunReport:
    """Write the feature matrix at ``as_of`` to ``out`` (Parquet, pseudonymous keys, catalog version).

    An ``as_of`` the store does not cover raises :class:`~risk.features.freshness.AsOfOutsideDataError`
    before anything is written; a stale or missing domain is a warning in the report and the log.
    ``check_data=False`` skips both, for callers whose points come from the store's own
    calendar (training samples: dozens of past points, each inside the data by construction).
    ``stored_terms=False`` reads last term from rows instead of its stored days
    (:mod:`risk.features.aggregates`); ``group_rows``: see :func:`bucket_groups`. Both change
    only the time a point takes, never its values (the benchmarks compare them), and so does ``held``
    (the student tables read into memory once for many points: :func:`build_feature_matrices`).
    """
    started = time.perf_counter()
    point = AsOf(as_of)
    buckets = buckets_of(validated)
    freshness: list[DomainFreshness] = []
    if check_data:
        check_as_of_in_data(validated, as_of)
        freshness = domain_freshness(validated, as_of, settings)
    con = open_validated(validated, point, settings) if held is None else held.open(point, settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    # This process's own file, renamed into place whole: two commands may build the same point at once.
    partial = out.with_name(f"{out.name}.{os.getpid()}.partial")
    writer: pq.ParquetWriter | None = None
    rows = 0
    missing = pd.Series(0.0, index=catalog.names)
    plan = feature_plan(point, catalog)
    previous = last_term_days(con, validated, point, plan) if stored_terms else None
    with Progress(enabled=progress) as bar:
        task = bar.add(f"features at {as_of}", total=len(buckets))
        for group in bucket_groups(validated, buckets, group_rows):
            frame = group_features(con, validated, group, point, catalog, plan=plan, previous=previous, held=held)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                meta = {b"risk.catalog_version": catalog.version.encode(), b"risk.as_of": as_of.isoformat().encode(),
                        b"risk.term": point.term.encode()}
                writer = pq.ParquetWriter(partial, table.schema.with_metadata(meta), compression="zstd")
            writer.write_table(table.cast(writer.schema))
            rows += len(frame)
            missing += frame[catalog.names].isna().sum()
            bar.advance(task, len(group))
    if held is None:
        con.close()
    if writer is not None:
        writer.close()
    if rows == 0:  # enrolled in the term, but every one had left by as_of: an empty matrix is no answer
        partial.unlink(missing_ok=True)
        raise ContractError(f"no student of term {point.term} in {validated} is still enrolled at {as_of}")
    partial.replace(out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return FeatureRunReport(
        as_of=as_of, term=point.term, students=rows, features=len(catalog.names), catalog_version=catalog.version,
        missing_share={k: round(v / max(rows, 1), 4) for k, v in missing.items()},
        seconds=round(time.perf_counter() - started, 2), peak_rss_mb=round(peak, 1), output=str(out),
        freshness=freshness,
    )


def last_term_days(con: duckdb.DuckDBPyConnection, validated: Path, point: AsOf,
                   plan: FeaturePlan) -> PreviousTermDays | None:
    """The stored days of the term before ``point``'s, when ``plan`` reads it and that term is over at
    ``point`` in the connection's calendar; None: read it from rows (as online does)."""
    if not any(p.name == PREVIOUS_DAYS for p in plan.parts):
        return None
    previous = PreviousTermDays(validated, point)
    return previous if previous.usable(con) else None


def group_features(con: duckdb.DuckDBPyConnection, validated: Path, group: tuple[int, ...], point: AsOf,
                   catalog: Catalog, *, plan: FeaturePlan, previous: PreviousTermDays | None,
                   held: HeldTables | None = None) -> pd.DataFrame:
    """The feature rows of the students of ``group`` (buckets) at ``point``, bucket by bucket in order.

    Switches the connection's student views to ``group`` (they stay so after), over the Parquet
    files or, with ``held``, over the tables it holds. With ``previous`` (:func:`last_term_days`),
    last term's days come from its stored days, built here on first need.
    """
    # Last term's attendance is read only to store its days, once (see risk.features.aggregates).
    rows_of_last_term = previous is None or not previous.stored(group)
    terms = (point.term, point.previous_term) if rows_of_last_term else (point.term,)
    if held is None:
        view_validated(con, validated, bucket=group, terms=terms)
    else:
        held.view(group, terms)
    stored = {PREVIOUS_DAYS: previous.stored_sql(con, group)} if previous is not None else {}
    frame = build_features(con, point, catalog, keep_shared=True, plan=plan, stored=stored)
    return _in_bucket_order(con, frame, point.term) if len(group) > 1 else frame


def _in_bucket_order(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, term: str) -> pd.DataFrame:
    """A group's rows in the order bucket by bucket would give (bucket, then student), so a matrix
    does not depend on how buckets were grouped."""
    buckets = _buckets_of_rows(con, frame, term)
    order = np.lexsort((frame["student_key"].to_numpy(), buckets))
    return frame.iloc[order].reset_index(drop=True)


def _buckets_of_rows(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, term: str) -> np.ndarray:
    """The bucket of each row's student (``term``'s enrollments on the connection's views)."""
    buckets = con.execute("SELECT student_key, any_value(bucket) AS bucket FROM enrollments WHERE term = ? "
                          "GROUP BY student_key", [term]).df().set_index("student_key")["bucket"]
    return buckets.reindex(frame["student_key"]).to_numpy()


def first_buckets_features(validated: Path, point: AsOf, catalog: Catalog, settings: Settings,
                           min_rows: int) -> pd.DataFrame:
    """The feature rows of the first buckets of students, whole and in order, up to the bucket that brings
    them to ``min_rows`` (all when fewer): a uniform sample of students, buckets being by pseudonym.

    The rows a bucket-by-bucket loop that stops at ``min_rows`` gives (each bucket's rows
    sorted by student), built as :func:`build_feature_matrix` builds a point: buckets grouped
    into few passes of the feature SQL, last term's days from its stored days. Empty when no
    student is enrolled at ``point``.
    """
    con = open_validated(validated, point, settings)
    try:
        plan = feature_plan(point, catalog)
        previous = last_term_days(con, validated, point, plan)
        frames, rows = [], 0
        for group in bucket_groups(validated, buckets_of(validated)):
            frame = group_features(con, validated, group, point, catalog, plan=plan, previous=previous)
            if len(frame) and rows + len(frame) >= min_rows:  # cut after the bucket that reaches min_rows
                buckets = _buckets_of_rows(con, frame, point.term)
                counts = pd.Series(buckets).value_counts(sort=False).reindex(group, fill_value=0).to_numpy()
                last = group[int(np.argmax(rows + np.cumsum(counts) >= min_rows))]
                frames.append(frame[buckets <= last])
                break
            frames.append(frame)
            rows += len(frame)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    finally:
        con.close()


# A store whose student tables hold at most this many bytes of Parquet is read into memory once when
# many points are built. The demo's store (20k students, six terms) holds 19.3 MB, and held it raised
# the 25 points' peak RSS from 0.57 to 1.26 GB: at this bound, about 2 GB.
HELD_BYTES = 32 * 2**20


class HeldTables:
    """The validated student tables of a small store, read once into one connection's memory.

    A point over Parquet opens every table's files again: ~190 small files a table in a
    20k-student store of six terms (32 buckets × terms), and at that size opening them was
    ~40% of a point's CPU. Held, each point reads the same rows from memory: the views
    :func:`group_features` makes select a group's buckets (and attendance's terms) of the
    held tables, as :func:`~risk.features.sources.view_validated` selects their files.
    ``open(point, settings)`` readies the connection for a point, as
    :func:`~risk.features.context_rates.open_validated` does for a new connection.
    """

    def __init__(self, validated: Path, settings: Settings) -> None:
        self.validated = validated
        self.con = connect(settings.features.threads, settings.data.duckdb_memory_limit)
        view_validated(self.con, validated)
        self.bucketed: dict[str, bool] = {}
        for name in STUDENT_TABLES:
            self.con.execute(f"CREATE TABLE held_{name} AS SELECT * FROM {name}")
            columns = [c[0] for c in self.con.execute(f"DESCRIBE held_{name}").fetchall()]
            self.bucketed[name] = "bucket" in columns  # an empty table is held without its hive columns

    @staticmethod
    def fit(validated: Path) -> bool:
        """True when the store's student tables are small enough to hold (:data:`HELD_BYTES`)."""
        held = 0
        for name in STUDENT_TABLES:
            held += sum(p.stat().st_size for p in (validated / name).glob("**/*.parquet"))
            if held > HELD_BYTES:
                return False
        return True

    def open(self, point: AsOf, settings: Settings) -> duckdb.DuckDBPyConnection:
        """The connection, its previous point's tables dropped, with views and ``context_rates`` for ``point``."""
        con = self.con
        for (name,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall():
            con.execute(f"DROP TABLE {name}")
        view_validated(con, self.validated, as_of=point.date)  # the reference tables as in force at the point
        self.view(None, None)
        rates = context_rates(con, self.validated, point, history_terms=settings.features.context_history_terms,
                              prior_students=settings.features.context_prior_students, policy=settings.labels)
        con.register("context_rates", rates)
        return con

    def view(self, group: tuple[int, ...] | None, terms: tuple[str, ...] | None) -> None:
        """Student views over the held rows of the buckets ``group`` (None: all), attendance of ``terms`` only."""
        for name in STUDENT_TABLES:
            where = []
            if self.bucketed[name] and group is not None:
                where.append(f"bucket IN ({', '.join(str(b) for b in group)})")
            if self.bucketed[name] and terms is not None and name == "attendance_daily":
                where.append(f"term IN ({', '.join(sql_text(t) for t in terms)})")
            condition = f" WHERE {' AND '.join(where)}" if where else ""
            self.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM held_{name}{condition}")

    def close(self) -> None:
        self.con.close()


def build_feature_matrices(validated: Path, points: Sequence[tuple[dt.date, Path]], *, settings: Settings,
                           catalog: Catalog, progress: bool = False) -> list[FeatureRunReport]:
    """The feature matrix at each (``as_of``, ``out``) of ``points``, as :func:`build_feature_matrix` with
    ``check_data=False`` writes it; a small store's student tables are read once for all (:class:`HeldTables`).
    """
    held = HeldTables(validated, settings) if points and HeldTables.fit(validated) else None
    reports = []
    try:
        with Progress(enabled=progress) as bar:
            task = bar.add("feature points", total=len(points))
            for as_of, out in points:
                reports.append(build_feature_matrix(validated, as_of, out, settings=settings, catalog=catalog,
                                                    progress=False, check_data=False, held=held))
                bar.advance(task)
    finally:
        if held is not None:
            held.close()
    return reports
