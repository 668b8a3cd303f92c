"""Test support for parity: the numpy evaluator beside the SQL, and a catalog of every compute kind.

:func:`references` and :func:`per_student` give the evaluator a world's reference tables
and each student's records; :func:`mismatches` compares its vectors with batch's rows
exactly (NaN equals NaN, nothing else is close enough).

The catalog has every compute kind the domain modules declare, written as YAML and loaded.

The shipped ``configs/features.yaml`` enables the kinds its model uses; an analyst may
enable any other. This catalog takes each kind from the domain modules' own lists
(``attendance.KINDS``, ``events.EVENT_KINDS`` over each event domain's ``COLUMNS``,
``enrollment.KINDS``, the grade measures) with each of its variants:

- attendance: each scope (the term; 1, 5, 20 and 60 school days back, the last
  reaching into the term before), each status alone and together, both streaks;
- events: each kind over each column it can read (a number kind over a number or a
  flag, ``latest_code`` over a text with all but its last value as categories), a
  window of 30 and 365 days, and the kinds that take ``where`` filtered by a flag
  column of the domain (``kinds.EVENT_FLAGS``; each flag for the kinds without a
  column, the flags in turn over the columns of the others);
- enrollment and context: each kind over each column it names; grades: each measure
  at each term rank, and its change.

:func:`every_kind_catalog` writes it to a folder and reads it with the catalog's own
loader, so every entry passes the same checks an analyst's entry does.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from risk.data.contract import GRADE_LEVELS, TABLES
from risk.features import assistance, attendance, behaviour, enrollment, grades, health, household
from risk.features.catalog import Catalog, load_catalog
from risk.features.events import EVENT_KINDS
from risk.features.kinds import EVENT_FLAGS, WHERE_KINDS
from risk.features.sources import STUDENT_TABLES
from risk.online.rowwise import RowEvaluator, RowReferences, StudentRecords, records_from_frames

__all__ = ["EVENT_COLUMNS", "GRADE_KINDS", "WHERE_KINDS", "Mismatch", "every_kind_catalog", "every_kind_entries",
           "mismatches", "per_student", "references"]


def references(schools: pd.DataFrame, calendar: pd.DataFrame, rates: pd.DataFrame) -> RowReferences:
    """The evaluator's references from a world's schools, calendar and past rates (school_id, school_rate,
    district_rate)."""
    by_school = {row["school_id"]: row for row in schools.to_dict("records")}
    days = calendar.assign(date=pd.to_datetime(calendar["date"]))
    calendars = {key: np.sort(group["date"].to_numpy().astype("datetime64[D]"))
                 for key, group in days.groupby(["school_id", "term"])}
    rate_map = {r.school_id: (float(r.school_rate), float(r.district_rate)) for r in rates.itertuples()}
    return RowReferences(school=by_school.get,
                         calendar=lambda s, t: calendars.get((s, t), np.empty(0, "datetime64[D]")),
                         rates=lambda term: rate_map)


def per_student(frames: dict[str, pd.DataFrame]) -> dict[int, StudentRecords]:
    """Every student's records, cut from whole-table arrays (one conversion per table)."""
    out: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    for name in STUDENT_TABLES:
        frame = frames[name].sort_values("student_key", kind="stable").reset_index(drop=True)
        columns = records_from_frames({name: frame}).tables[name]
        keys = frame["student_key"].to_numpy()
        bounds = np.flatnonzero(np.diff(keys)) + 1
        for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(keys)], strict=True):
            if stop > start:
                out.setdefault(int(keys[start]), {})[name] = {c: v[start:stop] for c, v in columns.items()}
    empty = {name: records_from_frames({name: frames[name].iloc[:0]}).tables[name] for name in STUDENT_TABLES}
    return {key: StudentRecords({**empty, **tables}) for key, tables in out.items()}


Mismatch = tuple[int, str, float, float]  # student_key, feature, numpy's value, SQL's value


def mismatches(evaluator: RowEvaluator, students: dict[int, StudentRecords], batch: pd.DataFrame,
               names: list[str]) -> tuple[int, list[Mismatch]]:
    """(students compared, every feature value where the evaluator differs from batch's row).

    Equal means the same float64 bits' value, or both NaN. Fails at once when a student is in one
    cohort and not the other.
    """
    expected = batch.set_index("student_key")[names]
    found: list[Mismatch] = []
    for key, records in students.items():
        vector = evaluator.evaluate(records)
        if key not in expected.index:
            assert vector is None, f"student {key} is not in batch's cohort"
            continue
        assert vector is not None, f"student {key} is in batch's cohort"
        row = expected.loc[key].to_numpy(np.float64)
        same = (vector[1] == row) | (np.isnan(vector[1]) & np.isnan(row))
        found += [(key, names[i], float(vector[1][i]), float(row[i])) for i in np.flatnonzero(~same)]
    return len(expected), found

# Each event domain, the contract table its events come from, and the columns a feature may read.
EVENT_COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "household": ("household", household.COLUMNS),
    "health": ("health", health.COLUMNS),
    "behaviour": ("behaviour", behaviour.COLUMNS),
    "assistance": ("assistance", assistance.COLUMNS),
}
# The grade kinds (risk.features.grades checks these two names; it declares no tuple of them).
GRADE_KINDS = ("term_measure", "change")
_NO_COLUMN = frozenset(("window_count", "days_since_latest", "months_since_latest"))
_SCOPES: tuple[dict[str, Any], ...] = ({"scope": "term"}, *({"last_days": n} for n in (1, 5, 20, 60)))


def every_kind_catalog(folder: Path) -> Catalog:
    """The catalog of :func:`every_kind_entries`, written to ``folder/every_kind.yaml`` and loaded from there."""
    path = folder / "every_kind.yaml"
    path.write_text(yaml.safe_dump({"name": "every-kind", "features": list(every_kind_entries())},
                                   allow_unicode=True, sort_keys=False), encoding="utf-8")
    return load_catalog(path)


def every_kind_entries() -> Iterator[dict[str, Any]]:
    """One catalog entry per (domain, kind, variant): see the module docstring."""
    made = itertools.count()
    for domain, compute, categories in itertools.chain(_attendance(), _grades(), _enrollment(), _events()):
        name = f"{domain[:4]}_{compute['kind']}_{next(made)}"
        entry: dict[str, Any] = {
            "name": name, "domain": domain, "compute": compute, "unit": "count", "direction": "none",
            "role": "child", "description": {"en": str(compute), "th": str(compute)},
            "reason": {"en": "{value}", "th": "{value}"}}
        if categories is not None:
            entry |= {"unit": "category", "categories": list(categories)}
        yield entry


Generated = Iterator[tuple[str, dict[str, Any], tuple[str, ...] | None]]


def _attendance() -> Generated:
    statuses = [[s] for s in attendance.STATUSES] + [["absent", "sick", "leave"], ["missing", "late"]]
    variants: dict[str, list[dict[str, Any]]] = {
        "rate": list(_SCOPES), "reported_share": list(_SCOPES), "days": list(_SCOPES),
        "count": [scope | {"statuses": s} for scope in _SCOPES for s in statuses],
        "trend": [{"recent_days": 5, "before_days": 5}, {"recent_days": 10, "before_days": 40},
                  {"recent_days": 1, "before_days": 1}],
        "share_of_absences_on": [{"weekdays": [1]}, {"weekdays": [1, 5]}, {"weekdays": [2, 3, 4, 6, 7]}],
        "streak": [{"which": "longest"}, {"which": "current"}],
        "exam_line_margin": [{"line": 0.8}, {"line": 0.6}],
    }
    for kind in attendance.KINDS:
        for params in variants[kind]:
            yield "attendance", {"kind": kind, **params}, None


def _grades() -> Generated:
    for measure in grades.MEASURES:
        for rank in (1, 2, 3, 4):
            yield "grades", {"kind": "term_measure", "measure": measure, "term_rank": rank}, None
        yield "grades", {"kind": "change", "measure": measure}, None


def _enrollment() -> Generated:
    allowed = {c.name: c.allowed for table in ("enrollments", "schools") for c in TABLES[table].columns}
    allowed["grade_level"] = GRADE_LEVELS
    for domain, kind in itertools.product(("enrollment", "context"), enrollment.KINDS):
        if kind == "code":
            for column in enrollment.CODE_COLUMNS:  # the last value left out: a value outside the categories
                yield domain, {"kind": kind, "column": column}, allowed[column][:-1]
        elif kind == "in":
            for column in enrollment.CODE_COLUMNS:
                yield domain, {"kind": kind, "column": column, "values": list(allowed[column][:2])}, None
        elif kind == "rate":
            for column in ("school_rate", "district_rate"):
                yield domain, {"kind": kind, "column": column}, None
        else:
            yield domain, {"kind": kind}, None


def _events() -> Generated:
    for domain, (table, columns) in EVENT_COLUMNS.items():
        texts = {c.name: c.allowed for c in TABLES[table].columns if c.kind == "text" and c.name in columns}
        flags = list(EVENT_FLAGS[domain])
        numbers = [c for c in columns if c not in texts]
        for kind in EVENT_KINDS:
            if kind == "latest_code":
                for column, values in texts.items():
                    yield domain, {"kind": kind, "column": column}, tuple(values or ())[:-1]
                continue
            if kind in _NO_COLUMN:
                yield from _event_variants(domain, {"kind": kind}, flags)
                continue
            for i, column in enumerate(numbers):  # each column filtered by one flag, the flags in turn
                yield from _event_variants(domain, {"kind": kind, "column": column}, flags[i % len(flags):][:1] if flags else [])


def _event_variants(domain: str, compute: dict[str, Any], flags: list[str]) -> Generated:
    """The kind with its parameters (windows of 30 and 365 days), then with each of ``flags`` as ``where``
    when the kind takes one."""
    kind = compute["kind"]
    windows = [{"days": 30}, {"days": 365}] if kind.startswith("window_") else [{}]
    if kind == "latest_flag":
        windows = [{"op": op, "threshold": t} for op, t in (("lt", 1), ("le", 0), ("gt", 2.5), ("ge", 1))]
    for params in windows:
        yield domain, compute | params, None
    if kind in WHERE_KINDS:
        for flag in flags:
            yield domain, compute | windows[-1] | {"where": flag}, None
