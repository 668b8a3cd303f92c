"""One student's records as arrays, what the row-wise evaluator reads besides them, and the SQL rules it keeps.

:class:`StudentRecords` holds one student's *valid* records in the validated
layout, per table a dict of column → array (dates ``datetime64[D]``, numbers and
flags float64 with NaN for missing, text as object arrays with None).
:class:`Moment` is the point in time an evaluator is built for, with its references.
The helpers at the end are SQL's aggregate rules in numpy: NULL is NaN, an
average over no rows is NULL, a sum of NULLs is NULL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from risk.data.contract import TABLES, term_start
from risk.features.base import AsOf

__all__ = ["Columns", "Moment", "RowReferences", "StudentRecords", "among", "mean_where", "nan_sum",
           "records_from_frames"]

Columns = dict[str, np.ndarray]


@dataclass
class StudentRecords:
    """One student's valid records, per student table: column → array (see the module docstring)."""

    tables: dict[str, Columns]

    def table(self, name: str) -> Columns:
        return self.tables.get(name) or {}


@dataclass
class RowReferences:
    """What the evaluator reads besides the student's records.

    ``school(id)`` → the school's row as a dict (None when unknown);
    ``calendar(id, term)`` → the school's open days of the term, sorted, ``datetime64[D]``;
    ``rates(term)`` → school_id → (school_rate, district_rate), the past dropout rates.
    """

    school: Callable[[str], Mapping[str, Any] | None]
    calendar: Callable[[str, str], np.ndarray]
    rates: Callable[[str], Mapping[str, tuple[float, float]]]


@dataclass(frozen=True)
class Moment:
    """The ``as_of`` of an evaluator as the parts read it: its day, its term and the one before, the term's
    first day (all ``datetime64[D]`` or term codes), and the references."""

    day: np.datetime64
    term: str
    previous: str
    term_start: np.datetime64
    refs: RowReferences

    @classmethod
    def of(cls, as_of: AsOf, refs: RowReferences) -> Moment:
        return cls(np.datetime64(as_of.date, "D"), as_of.term, as_of.previous_term,
                   np.datetime64(term_start(as_of.term), "D"), refs)


def records_from_frames(frames: Mapping[str, pd.DataFrame]) -> StudentRecords:
    """Validated-layout frames as :class:`StudentRecords` (column arrays per table)."""
    tables = {}
    for name, frame in frames.items():
        kinds = {c.name: c.kind for c in TABLES[name].columns}
        tables[name] = {column: _array(frame[column], kinds.get(column, "text"))
                        for column in frame.columns if column != "student_key"}
    return StudentRecords(tables)


def _array(series: pd.Series, kind: str) -> np.ndarray:
    if kind == "date":
        return pd.to_datetime(series).to_numpy().astype("datetime64[D]")
    if kind in ("float", "int", "bool"):
        return pd.to_numeric(series.astype(object).where(series.notna(), None), errors="coerce").to_numpy(np.float64)
    return np.array([None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else v
                     for v in series.tolist()], dtype=object)


def among(values: np.ndarray, choices: frozenset) -> np.ndarray:
    """``np.isin`` for one student's few hundred values: a set lookup each (np.isin sorts, ~20 µs a call)."""
    return np.fromiter(map(choices.__contains__, values.tolist()), dtype=bool, count=len(values))


def mean_where(mask: np.ndarray, of: np.ndarray) -> float:
    """SQL avg(x) FILTER (WHERE mask): NULL over no rows."""
    n = int(mask.sum())
    return float(of[mask].sum()) / n if n else np.nan


def nan_sum(values: np.ndarray) -> float:
    """SQL sum ignoring NULLs: NULL when every value is NULL (or none)."""
    present = values[~np.isnan(values)]
    return float(present.sum()) if len(present) else np.nan
