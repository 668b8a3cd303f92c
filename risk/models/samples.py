"""Training samples: feature rows at several points of each past term, labelled by what happened next.

For every term whose outcome is known (the following term's register exists), a
feature vector is built at school weeks of the term (``samples.weeks``) and on
its last school day, with the feature builders of :mod:`risk.features`, and
labelled by :func:`risk.labels.dropout_labels`. The same student at several
points is several rows; every split in this module is by student, so no child
straddles two of them.

Feature matrices are cached under the validated folder
(``_derived/features/<catalog version>/<as_of>-<inputs hash>.parquet``):
the next term's retrain reuses every past point whose inputs did not change, and
``risk validate`` clears the cache when it rewrites the tables.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from risk.config import Settings
from risk.data.contract import TABLES, next_term, term_of_date
from risk.data.reading import parquet_chunks
from risk.data.validate import DERIVED
from risk.errors import RiskError
from risk.features.batch import build_feature_matrix
from risk.features.catalog import Catalog
from risk.features.sources import connect, view_validated
from risk.labels import dropout_labels
from risk.models.settings import SplitSettings
from risk.progress import Progress

__all__ = ["SamplePoint", "Samples", "TermSplit", "TrainingDataError", "DataFiles", "build_samples", "feature_cache_path", "first_school_day", "inputs_hash",
           "known_outcome_terms", "outcome_connection", "sample_points", "school_week_of", "split_terms", "student_uniform",
           "term_labels"]

META_COLUMNS = ("student_key", "term", "as_of", "point", "school_week", "school_id")
KEY_META = ("student_key", "term", "school_id")  # the meta columns read from a feature point


class TrainingDataError(RiskError):
    """The validated data cannot give training samples (no outcomes, too few terms, no dropouts)."""


@dataclass(frozen=True)
class SamplePoint:
    """One point of a term at which features are taken: ``week`` N, or the last school day (``week`` None)."""

    term: str
    as_of: dt.date
    week: int | None
    school_week: int = 0  # the week of the term it falls in (the last school day too)

    @property
    def label(self) -> str:
        return f"week {self.week}" if self.week is not None else "last day"


@dataclass(frozen=True)
class TermSplit:
    """Terms by role, oldest first: train on the earlier ones, calibrate on the next, test on the latest."""

    train: list[str]
    calibration: list[str]
    test: list[str]

    def as_dict(self) -> dict[str, list[str]]:
        return {"train": self.train, "calibration": self.calibration, "test": self.test}


@dataclass
class Samples:
    """Labelled feature rows of one role (train, calibration or test).

    ``X`` float32 of shape (n, f) in catalog order, NaN where data is missing;
    ``y`` int8 (1 dropped out); ``weight`` float32 (1 / kept share, for down-sampled
    negatives); ``meta`` the :data:`META_COLUMNS`; ``unknown`` labels left out
    (transfers found nowhere, deaths) by term.
    """

    X: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    meta: pd.DataFrame
    names: list[str]
    unknown: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return len(self.y)

    @property
    def positives(self) -> int:
        return int(self.y.sum())

    def column(self, name: str) -> np.ndarray:
        return self.X[:, self.names.index(name)]

    def subset(self, mask: np.ndarray) -> Samples:
        return Samples(self.X[mask], self.y[mask], self.weight[mask], self.meta[mask].reset_index(drop=True),
                       self.names, self.unknown)


def student_uniform(student_key: np.ndarray, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per student, the same for every row of that student (splitmix64)."""
    z = student_key.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def known_outcome_terms(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Terms whose following term's register is present, oldest first."""
    terms = [r[0] for r in con.execute("SELECT DISTINCT term FROM enrollments ORDER BY term").fetchall()]
    present = set(terms)
    return [t for t in terms if next_term(t) in present]


def split_terms(terms: list[str], split: SplitSettings) -> TermSplit:
    """Temporal split of the known-outcome terms; raises TrainingDataError when there are too few."""
    needed = split.min_train_terms + split.calibration_terms + split.test_terms
    if len(terms) < needed:
        have = ", ".join(terms) or "none"
        raise TrainingDataError(
            f"training needs {needed} terms with a known outcome ({split.min_train_terms} to train, "
            f"{split.calibration_terms} to calibrate, {split.test_terms} to test) but the data has {len(terms)} "
            f"({have}); a term's outcome is known once the next term's enrollments are validated")
    test = terms[-split.test_terms:]
    calibration = terms[-split.test_terms - split.calibration_terms:-split.test_terms]
    return TermSplit(train=terms[:-split.test_terms - split.calibration_terms], calibration=calibration, test=test)


def sample_points(con: duckdb.DuckDBPyConnection, term: str, weeks: list[int], last_school_day: bool
                  ) -> list[SamplePoint]:
    """The points of ``term``: the Friday of each school week (week 1 holds the first school day), clamped
    to the last school day, and the last school day itself; from the schools' calendars."""
    first, last = con.execute("SELECT min(date), max(date) FROM calendar WHERE term = ?", [term]).fetchone()
    if first is None:
        raise TrainingDataError(f"term {term} has no school days in the calendar: its samples cannot be placed")
    monday = first - dt.timedelta(days=first.weekday())
    points: dict[dt.date, SamplePoint] = {}
    for week in sorted(weeks):
        day = min(monday + dt.timedelta(weeks=week - 1, days=4), last)
        points.setdefault(day, SamplePoint(term, day, week, school_week_of(day, first)))
    if last_school_day:
        points.setdefault(last, SamplePoint(term, last, None, school_week_of(last, first)))
    return sorted(points.values(), key=lambda p: p.as_of)


def school_week_of(day: dt.date, first_school_day: dt.date) -> int:
    """Week of the term holding ``day``: week 1 is the week (Monday to Sunday) of the first school day."""
    monday = first_school_day - dt.timedelta(days=first_school_day.weekday())
    return (day - monday).days // 7 + 1


def first_school_day(con: duckdb.DuckDBPyConnection, term: str) -> dt.date | None:
    """The first day any school was open in ``term``, from the calendars."""
    return con.execute("SELECT min(date) FROM calendar WHERE term = ?", [term]).fetchone()[0]


def inputs_hash(validated: Path, settings: Settings) -> str:
    """A hash of what feature rows depend on: the validation report (it changes with the data) and the
    feature and label settings."""
    report = validated / "validation_report.json"
    digest = hashlib.sha256(report.read_bytes() if report.exists() else b"no report")
    digest.update(json.dumps([settings.features.model_dump(mode="json"), settings.labels.model_dump(mode="json")],
                             sort_keys=True).encode())
    return digest.hexdigest()[:16]


def cached_features(validated: Path, point: SamplePoint, *, settings: Settings, catalog: Catalog,
                    inputs: str | DataFiles) -> tuple[Path, bool]:
    """The feature matrix at ``point`` (built once, then reused) and whether it was reused.

    ``inputs`` is the :class:`DataFiles` of the folder (the cache key is then the files that
    can hold rows dated on or before the point, so a new term's export leaves the points of
    earlier terms cached), or a fixed hash.
    """
    path = feature_cache_path(validated, point, settings=settings, catalog=catalog, inputs=inputs)
    if path.exists():
        return path, True
    build_feature_matrix(validated, point.as_of, path, settings=settings, catalog=catalog, progress=False,
                         check_data=False)
    return path, False


def feature_cache_path(validated: Path, point: SamplePoint, *, settings: Settings, catalog: Catalog,
                       inputs: str | DataFiles) -> Path:
    """Where the feature matrix at ``point`` is cached (see :func:`cached_features`)."""
    key = inputs.point_hash(point.as_of, settings) if isinstance(inputs, DataFiles) else inputs
    return validated / DERIVED / "features" / catalog.version / f"{point.as_of.isoformat()}-{key}.parquet"


@dataclass(frozen=True)
class DataFiles:
    """The validated Parquet files with, from their statistics, the earliest date and term each holds.

    A feature point at ``as_of`` reads only rows dated on or before it (and terms up to its
    own), so its cache key needs only the files that hold such rows.
    """

    files: tuple[tuple[str, int, str, str], ...]  # (path, bytes, earliest date ISO, earliest term)

    @classmethod
    def scan(cls, validated: Path) -> DataFiles:
        rows = []
        for path in sorted(validated.glob("*/**/*.parquet")):
            relative = path.relative_to(validated)
            # Only the validated tables: quarantine, caches and stopped runs (failed_runs/) are not data.
            if relative.parts[0] not in TABLES:
                continue
            rows.append((str(relative), path.stat().st_size, *_earliest(path)))
        return cls(tuple(rows))

    def point_hash(self, as_of: dt.date, settings: Settings) -> str:
        day, term = as_of.isoformat(), term_of_date(as_of)
        digest = hashlib.sha256(json.dumps([settings.features.model_dump(mode="json"),
                                            settings.labels.model_dump(mode="json")], sort_keys=True).encode())
        for name, size, first_day, first_term in self.files:
            if first_day <= day or first_term <= term:
                digest.update(f"{name}:{size};".encode())
        return digest.hexdigest()[:16]


def _earliest(path: Path) -> tuple[str, str]:
    """Earliest date and term in a file from its row-group statistics; "" (always relevant) when unknown."""
    meta = pq.ParquetFile(path).metadata
    days, terms = [], []
    for i in range(meta.num_columns):
        column = meta.schema.column(i)
        name = column.name
        is_date = column.logical_type.type == "DATE"
        is_term = name == "term"
        if not (is_date or is_term) or name == "birth_date":
            continue
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            stats = group.column(i).statistics
            if stats is not None and stats.has_null_count and stats.null_count == group.num_rows:
                continue  # all empty (a status_date column of students still studying): holds no date
            if stats is None or not stats.has_min_max:
                return "", ""
            (days if is_date else terms).append(str(stats.min))
    if "term=" in str(path):  # attendance's term lives in its folder name
        terms.append(str(path).split("term=", 1)[1].split("/", 1)[0])
    return (min(days) if days else "9999"), (min(terms) if terms else "9999")


def build_samples(validated: Path, points: list[SamplePoint], labels: dict[str, pd.DataFrame], *,
                  settings: Settings, catalog: Catalog, inputs: str | DataFiles, negative_share: float = 1.0,
                  max_students: int | None = None, holdout: tuple[float, bool] | None = None, seed: int = 7,
                  progress: Progress | None = None, task_name: str = "samples") -> Samples:
    """Labelled rows at ``points``; ``labels`` maps each term to :func:`dropout_labels` output.

    Rows whose label is unknown are left out and counted. With ``negative_share`` < 1,
    students who did not drop out are kept with that probability (weight 1/share);
    with ``max_students``, a uniform sample of students is kept (all their rows).
    ``holdout`` = (share, wanted): a fixed share of students is held out of training
    and used only to calibrate and test, so no child is in both; ``wanted`` says
    which side to keep.
    """
    names = catalog.names
    unknown: dict[str, int] = {}
    task = progress.add(task_name, total=2 * len(points)) if progress else None
    # Of the students on the kept side of the hold-out, ``max_students`` at most: the cap counts
    # the students this role can have, not the whole register.
    side = 1.0 if holdout is None or holdout[0] <= 0 else holdout[0] if holdout[1] else 1.0 - holdout[0]
    # First the keys of every point (one column): which rows are kept, so the matrix is allocated
    # once at its final size and filled in place (parts and a concatenation held it twice).
    chosen: list[tuple[SamplePoint, Path, np.ndarray]] = []
    parts_y, parts_w = [], []
    for point in points:
        path, _ = cached_features(validated, point, settings=settings, catalog=catalog, inputs=inputs)
        term_labels = labels[point.term]
        label_keys, label_values = _label_lookup(term_labels)
        keep_share = _student_share(len(term_labels) * side, max_students)
        keys = pq.read_table(path, columns=["student_key"]).column(0).to_numpy()
        at = np.minimum(np.searchsorted(label_keys, keys), max(len(label_keys) - 1, 0))
        known = (label_keys[at] == keys) if len(label_keys) else np.zeros(len(keys), dtype=bool)
        y = np.where(known, label_values[at] if len(label_keys) else 0, 0).astype(np.int8)
        unknown[point.term] = unknown.get(point.term, 0) + int((~known).sum())
        keep = known & (student_uniform(keys, seed) < keep_share)
        if holdout is not None and holdout[0] > 0:
            keep &= (student_uniform(keys, seed + 5) < holdout[0]) == holdout[1]
        weight = np.ones(len(keys), np.float32)
        if negative_share < 1.0:
            keep &= (y == 1) | (student_uniform(keys, seed + 1) < negative_share)
            weight[y == 0] = 1.0 / negative_share
        chosen.append((point, path, keep))
        parts_y.append(y[keep])
        parts_w.append(weight[keep])
        if progress and task is not None:
            progress.advance(task)
    if not chosen:
        raise TrainingDataError("no sample points were given")
    X = np.empty((sum(int(keep.sum()) for _, _, keep in chosen), len(names)), dtype=np.float32)
    parts_meta, offset = [], 0
    for point, path, keep in chosen:
        start = 0
        # Row groups read a few at a time with Arrow's threads (~4x iter_batches, which decodes one
        # group at a time); only the kept rows become float32.
        for table in parquet_chunks(pq.ParquetFile(path), [*KEY_META, *names], _CHUNK_ROWS):
            rows = keep[start:start + table.num_rows]
            start += table.num_rows
            kept = int(rows.sum())
            if not kept:
                continue
            table = table.filter(rows)
            _fill_rows(X[offset:offset + kept], [table.column(n).to_numpy() for n in names])
            offset += kept
            meta = table.select(list(KEY_META)).to_pandas()
            meta["as_of"] = point.as_of
            meta["point"] = point.label
            meta["school_week"] = point.school_week
            parts_meta.append(meta[list(META_COLUMNS)])
        if progress and task is not None:
            progress.advance(task)
    meta = (pd.concat(parts_meta, ignore_index=True) if parts_meta
            else pd.DataFrame({c: pd.Series(dtype=object) for c in META_COLUMNS}))
    return Samples(X, np.concatenate(parts_y), np.concatenate(parts_w), meta, names, unknown)


_CHUNK_ROWS = 250_000
_FILL_ROWS = 4096  # rows × features of float32 that stay in cache while the columns are written in


def _fill_rows(out: np.ndarray, columns: list[np.ndarray]) -> None:
    """Write 1-D ``columns`` into the row-major ``out`` as its columns, a cache-sized band of rows at a time.

    Column by column over the whole block, every write lands on another cache line
    (5x slower at 250k rows × 68 features).
    """
    for first in range(0, len(out), _FILL_ROWS):
        band = out[first:first + _FILL_ROWS]
        for j, column in enumerate(columns):
            band[:, j] = column[first:first + _FILL_ROWS]


def _label_lookup(term_labels: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Students with a known outcome, sorted by key, and their label (1 dropped out): for searchsorted."""
    known = term_labels[term_labels["dropped_out"].notna()]
    keys = known["student_key"].to_numpy(np.int64)
    order = np.argsort(keys, kind="stable")
    return keys[order], known["dropped_out"].to_numpy()[order].astype(np.int8)


def _student_share(students: float, max_students: int | None) -> float:
    if max_students is None or students <= max_students:
        return 1.0
    return max_students / students


def term_labels(con: duckdb.DuckDBPyConnection, terms: list[str], settings: Settings) -> dict[str, pd.DataFrame]:
    """:func:`dropout_labels` of each term, over a connection from :func:`outcome_connection`."""
    return {term: dropout_labels(con, term, settings.labels) for term in terms}


def outcome_connection(validated: Path, settings: Settings) -> duckdb.DuckDBPyConnection:
    """A connection with views over the whole validated folder (terms, calendars, outcomes)."""
    con = connect(settings.features.threads, settings.data.duckdb_memory_limit)
    view_validated(con, validated)
    return con


def check_samples(samples: Samples, role: str, terms: list[str]) -> None:
    """Raise TrainingDataError when a role has no rows or no dropout to learn from."""
    where = ", ".join(terms)
    if samples.rows == 0:
        raise TrainingDataError(f"the {role} term(s) {where} have no students with a known outcome")
    if samples.positives < 10:
        raise TrainingDataError(
            f"the {role} term(s) {where} have {samples.positives} dropouts among {samples.rows:,} rows: "
            "too few to learn or judge a model (at least 10 are needed)")
