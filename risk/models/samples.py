"""Training samples: feature rows at several points of each past term, labelled by what happened next.

For every term whose outcome is known (:mod:`risk.models.term_split`), a feature
vector is built at school weeks of the term (``samples.weeks``) and on its last
school day, read from the feature cache (:mod:`risk.features.cache`), and labelled
by :func:`risk.labels.dropout_labels`. The same student at several points is
several rows; every split in this module is by student (:func:`student_uniform`),
so no child straddles two of them.

The labels of each term are read here, not in :mod:`risk.labels`: they need a
connection over the whole validated folder (:func:`outcome_connection`, from the
features' sources), and labels sit below features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from risk.config import Settings
from risk.data.reading import parquet_chunks
from risk.features.cache import DataFiles, cached_features
from risk.features.catalog import Catalog
from risk.features.sources import connect, view_validated
from risk.labels import dropout_labels
from risk.models.term_split import SamplePoint, TrainingDataError
from risk.progress import Progress

__all__ = ["META_COLUMNS", "Samples", "build_samples", "check_samples", "outcome_connection", "student_sample", "student_uniform",
           "term_labels"]

META_COLUMNS = ("student_key", "term", "as_of", "point", "school_week", "school_id")
KEY_META = ("student_key", "term", "school_id")  # the meta columns read from a feature point


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


def student_sample(samples: Samples, max_rows: int, seed: int) -> np.ndarray | None:
    """A uniform sample of students whose rows number about ``max_rows``, as a row mask (None: all rows)."""
    if samples.rows <= max_rows:
        return None
    return student_uniform(samples.meta["student_key"].to_numpy(), seed) < max_rows / samples.rows


@dataclass(frozen=True)
class _Draw:
    """How the rows of one role are drawn (see :func:`build_samples`)."""

    negative_share: float
    max_students: int | None
    holdout: tuple[float, bool] | None
    seed: int

    @property
    def side(self) -> float:
        """The share of students on the kept side of the hold-out."""
        if self.holdout is None or self.holdout[0] <= 0:
            return 1.0
        return self.holdout[0] if self.holdout[1] else 1.0 - self.holdout[0]


@dataclass(frozen=True)
class _PointRows:
    """The rows kept at one point: its cached matrix, which rows, their labels and weights."""

    point: SamplePoint
    path: Path
    keep: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    unknown: int


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
    draw = _Draw(negative_share, max_students, holdout, seed)
    task = progress.add(task_name, total=2 * len(points)) if progress else None

    def advance() -> None:
        if progress and task is not None:
            progress.advance(task)

    # First the keys of every point (one column): which rows are kept, so the matrix is allocated
    # once at its final size and filled in place (parts and a concatenation held it twice).
    chosen = []
    for point in points:
        path, _ = cached_features(validated, point.as_of, settings=settings, catalog=catalog, inputs=inputs)
        chosen.append(_kept_rows(point, path, labels[point.term], draw))
        advance()
    if not chosen:
        raise TrainingDataError("no sample points were given")
    unknown: dict[str, int] = {}
    for rows in chosen:
        unknown[rows.point.term] = unknown.get(rows.point.term, 0) + rows.unknown
    names = catalog.names
    X, meta = _read_rows(chosen, names, advance)
    return Samples(X, np.concatenate([r.y[r.keep] for r in chosen]),
                   np.concatenate([r.weight[r.keep] for r in chosen]), meta, names, unknown)


def _kept_rows(point: SamplePoint, path: Path, term_labels: pd.DataFrame, draw: _Draw) -> _PointRows:
    """Which rows of the cached matrix at ``point`` are kept, with each row's label and weight."""
    label_keys, label_values = _label_lookup(term_labels)
    # Of the students on the kept side of the hold-out, ``max_students`` at most: the cap counts
    # the students this role can have, not the whole register.
    keep_share = _student_share(len(term_labels) * draw.side, draw.max_students)
    keys = pq.read_table(path, columns=["student_key"]).column(0).to_numpy()
    at = np.minimum(np.searchsorted(label_keys, keys), max(len(label_keys) - 1, 0))
    known = (label_keys[at] == keys) if len(label_keys) else np.zeros(len(keys), dtype=bool)
    y = np.where(known, label_values[at] if len(label_keys) else 0, 0).astype(np.int8)
    keep = known & (student_uniform(keys, draw.seed) < keep_share)
    if draw.holdout is not None and draw.holdout[0] > 0:
        keep &= (student_uniform(keys, draw.seed + 5) < draw.holdout[0]) == draw.holdout[1]
    weight = np.ones(len(keys), np.float32)
    if draw.negative_share < 1.0:
        keep &= (y == 1) | (student_uniform(keys, draw.seed + 1) < draw.negative_share)
        weight[y == 0] = 1.0 / draw.negative_share
    return _PointRows(point, path, keep, y, weight, int((~known).sum()))


def _read_rows(chosen: list[_PointRows], names: list[str], advance: Callable[[], None]
               ) -> tuple[np.ndarray, pd.DataFrame]:
    """The kept rows' features (float32, (n, f) in ``names`` order) and their :data:`META_COLUMNS`."""
    X = np.empty((sum(int(rows.keep.sum()) for rows in chosen), len(names)), dtype=np.float32)
    parts_meta, offset = [], 0
    for rows in chosen:
        start = 0
        # Row groups read a few at a time with Arrow's threads (~4x iter_batches, which decodes one
        # group at a time); only the kept rows become float32.
        for table in parquet_chunks(pq.ParquetFile(rows.path), [*KEY_META, *names], _CHUNK_ROWS):
            wanted = rows.keep[start:start + table.num_rows]
            start += table.num_rows
            kept = int(wanted.sum())
            if not kept:
                continue
            table = table.filter(wanted)
            _fill_rows(X[offset:offset + kept], [table.column(n).to_numpy() for n in names])
            offset += kept
            meta = table.select(list(KEY_META)).to_pandas()
            meta["as_of"] = rows.point.as_of
            meta["point"] = rows.point.label
            meta["school_week"] = rows.point.school_week
            parts_meta.append(meta[list(META_COLUMNS)])
        advance()
    meta = (pd.concat(parts_meta, ignore_index=True) if parts_meta
            else pd.DataFrame({c: pd.Series(dtype=object) for c in META_COLUMNS}))
    return X, meta


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
