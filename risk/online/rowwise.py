"""The catalog evaluated on one student's records with numpy: the service's fast feature engine.

Batch builds features with the SQL of the domain modules (:mod:`risk.features.build`);
that SQL is the definition. Run on one student, DuckDB's fixed cost per statement
(~180 operators planned and started for a few hundred rows) is ~50 ms, twice the
whole budget of an online score. This module evaluates the same catalog entries —
the same compute kinds with the same parameters — on a student's records held as
arrays, in well under a millisecond.

Each function below names the SQL part it mirrors, and keeps its rules: NULL is
NaN and propagates as SQL's NULL does; an aggregate over no rows is NULL, a count
0; a part with no rows for the student leaves all its features NULL (the LEFT JOIN
of the plan). ``tests/test_online_rowwise.py`` holds the two side by side on
every student of generated worlds, so a change to one that the other lacks fails.

Input is :class:`StudentRecords`: one student's *valid* records in the validated
layout, per table a dict of column → array (dates ``datetime64[D]``, numbers and
flags float64 with NaN for missing, text as object arrays with None).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from risk.data.contract import NUMERIC_GRADES, TABLES, term_start
from risk.features.attendance import ATTENDED
from risk.features.base import AsOf
from risk.features.behaviour import FLAGS, SDQ
from risk.features.catalog import Catalog, FeatureSpec
from risk.features.enrollment import LEFT, USUAL_AGE
from risk.features.growth import DAYS_PER_MONTH, who_zscores

__all__ = ["RowEvaluator", "RowReferences", "StudentRecords", "records_from_frames"]

Columns = dict[str, np.ndarray]
NAT = np.datetime64("NaT", "D")
_GRADE_VALUE = {g: float(g) for g in NUMERIC_GRADES}
_FAILED_MARKS = frozenset(("0", "ร", "มส"))
_ATTENDED = frozenset(ATTENDED)


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


def _among(values: np.ndarray, choices: frozenset) -> np.ndarray:
    """``np.isin`` for one student's few hundred values: a set lookup each (np.isin sorts, ~20 µs a call)."""
    return np.fromiter(map(choices.__contains__, values.tolist()), dtype=bool, count=len(values))


def _mean(mask: np.ndarray, of: np.ndarray) -> float:
    """SQL avg(x) FILTER (WHERE mask): NULL over no rows."""
    n = int(mask.sum())
    return float(of[mask].sum()) / n if n else np.nan


def _nan_sum(values: np.ndarray) -> float:
    """SQL sum ignoring NULLs: NULL when every value is NULL (or none)."""
    present = values[~np.isnan(values)]
    return float(present.sum()) if len(present) else np.nan


class RowEvaluator:
    """The enabled features of ``catalog`` at ``as_of``, one student at a time (see the module docstring).

    Built once per (catalog, as_of); :meth:`evaluate` is safe to call from many threads.
    """

    def __init__(self, catalog: Catalog, as_of: AsOf, refs: RowReferences) -> None:
        self.catalog = catalog
        self.as_of = as_of
        self.refs = refs
        self.day = np.datetime64(as_of.date, "D")
        self.term = as_of.term
        self.previous = as_of.previous_term
        self.term_start = np.datetime64(term_start(as_of.term), "D")
        self._features: list[tuple[str, Callable[[Any], float]]] = [
            (_PART_OF.get(spec.domain, spec.domain), self._compiled(spec)) for spec in catalog.enabled]

    # ------------------------------------------------------------------ the cohort
    def cohort_row(self, rec: StudentRecords) -> dict[str, Any] | None:
        """The student's enrollment of the term of ``as_of`` if they had not left by then (``cohort_sql``).

        Raises ValueError when the student has two such rows (the contract's unique key forbids it).
        """
        enr = rec.table("enrollments")
        if not len(enr.get("term", ())):
            return None
        status_date = enr["status_date"]
        left = np.array([s in LEFT for s in enr["status"]], dtype=bool) & ~np.isnat(status_date) & (
            status_date <= self.day)
        rows = np.flatnonzero((enr["term"] == self.term) & ~left)
        if len(rows) > 1:
            raise ValueError("two enrollments in one term")
        if not len(rows):
            return None
        return {column: values[rows[0]] for column, values in enr.items()}

    def evaluate(self, rec: StudentRecords) -> tuple[dict[str, Any], np.ndarray] | None:
        """(cohort row, feature vector in catalog order), or None when the student is not in the cohort."""
        cohort = self.cohort_row(rec)
        if cohort is None:
            return None
        parts: dict[str, Any] = {}
        out = np.empty(len(self._features), dtype=np.float64)
        for i, (part, feature) in enumerate(self._features):
            if part not in parts:
                parts[part] = _PARTS[part](self, rec, cohort)
            data = parts[part]
            out[i] = np.nan if data is None else feature(data)
        return cohort, out

    # ------------------------------------------------------------------ compiling a catalog entry
    def _compiled(self, spec: FeatureSpec) -> Callable[[Any], float]:
        c = spec.compute
        kind = c["kind"]
        if spec.domain == "attendance":
            return _attendance_feature(c)
        if spec.domain == "grades":
            measure = c["measure"]
            if kind == "term_measure":
                rank = c["term_rank"]
                return lambda g: g.get(rank, {}).get(measure, np.nan)
            return lambda g: g.get(1, {}).get(measure, np.nan) - g.get(2, {}).get(measure, np.nan)
        if spec.domain in ("enrollment", "context"):
            return _context_feature(spec, self.term)
        return _event_feature(spec, self.day)


# ---------------------------------------------------------------------- parts (SQL: the domain modules' parts)
def _context_part(ev: RowEvaluator, rec: StudentRecords, c: dict[str, Any]) -> dict[str, Any]:
    """``context``: the cohort row, its school, age, over-age and the past rates."""
    school = ev.refs.school(c["school_id"]) or {}
    rate = ev.refs.rates(ev.term).get(c["school_id"], (np.nan, np.nan))
    birth = c["birth_date"]
    known = not np.isnat(birth)
    usual = USUAL_AGE.get(c["grade_level"])
    return {
        "grade_level": c["grade_level"], "sex": c["sex"], "nationality": c["nationality"],
        "disability": c["disability"], "size": school.get("size"), "area": school.get("area"),
        "region": school.get("region"), "affiliation": school.get("affiliation"),
        "age_years": (ev.day - birth).astype(np.int64) / 365.25 if known else np.nan,
        "over_age_years": ((ev.term_start - birth).astype(np.int64) / 365.25 - usual
                           if known and usual is not None else np.nan),
        "school_rate": rate[0], "district_rate": rate[1],
        "history": _history(rec, c, ev.term),
    }


def _history(rec: StudentRecords, c: dict[str, Any], term: str) -> tuple[float, float, float] | None:
    """``enr_history``: (repeated_grade, schools_attended, terms_enrolled) over enrollments up to this term."""
    enr = rec.table("enrollments")
    rows = enr["term"] <= term
    if not rows.any():
        return None
    terms, grades, schools = enr["term"][rows], enr["grade_level"][rows], enr["school_id"][rows]
    year = c["term"][:4]
    repeated = any(g == c["grade_level"] and t[:4] < year for g, t in zip(grades, terms, strict=True))
    return float(repeated), float(len({s for s in schools if s is not None})), float(len(set(terms)))


def _attendance_part(ev: RowEvaluator, rec: StudentRecords, c: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """``att_day``: the school days of this term and the last, ranked back from ``as_of``, and their status."""
    enr = rec.table("enrollments")
    current = [s for t, s in zip(enr["term"], enr["school_id"], strict=True) if t == ev.term]
    days_now = [ev.refs.calendar(s, ev.term) for s in current]
    days_now = [d[d <= ev.day] for d in days_now]
    n = len(days_now[0]) if days_now else 0
    dates, ranks, in_term = [], [], []
    for term, school in zip(enr["term"], enr["school_id"], strict=True):
        if term not in (ev.term, ev.previous):
            continue
        days = ev.refs.calendar(school, term)
        days = days[days <= ev.day]
        back = np.arange(len(days), 0, -1)  # the latest day is 1
        dates.append(days)
        ranks.append(back if term == ev.term else n + back)
        in_term.append(np.full(len(days), term == ev.term))
    if not dates or not sum(len(d) for d in dates):
        return None
    date = np.concatenate(dates)
    att = rec.table("attendance_daily")
    status = np.full(len(date), "missing", dtype=object)
    recorded = (att["date"] <= ev.day) & _among(att["term"], frozenset((ev.term, ev.previous))) if len(
        att.get("date", ())) else np.zeros(0, dtype=bool)
    if recorded.any():  # each school day's row, if any (validated rows are unique by date)
        order = np.argsort(att["date"][recorded], kind="stable")
        days, statuses = att["date"][recorded][order], att["status"][recorded][order]
        at = np.minimum(np.searchsorted(days, date), len(days) - 1)
        found = days[at] == date
        status[found] = statuses[at[found]]
    attended = _among(status, _ATTENDED)
    weekday = (date.astype(np.int64) + 3) % 7 + 1  # 1970-01-01 was a Thursday; ISO: Monday 1 … Sunday 7
    return {"in_term": np.concatenate(in_term), "day_rank": np.concatenate(ranks), "status": status,
            "attended": attended, "weekday": weekday}


def _grades_part(ev: RowEvaluator, rec: StudentRecords, c: dict[str, Any]) -> dict[int, dict[str, float]] | None:
    """``grade_term``: per graded term up to this one (entered by ``as_of``), its measures, by dense rank."""
    g = rec.table("grades")
    if not len(g.get("term", ())):
        return None
    rows = (g["recorded_on"] <= ev.day) & (g["term"] <= ev.term)
    if not rows.any():
        return None
    terms, credits, grades = g["term"][rows], g["credits"][rows], g["grade"][rows]
    out = {}
    for rank, term in enumerate(sorted(set(terms), reverse=True), start=1):
        mine = terms == term
        cr, gr = credits[mine], grades[mine]
        value = np.array([_GRADE_VALUE.get(x, np.nan) for x in gr])
        numeric = ~np.isnan(value)
        points = _nan_sum(cr * value)
        weight = _nan_sum(np.where(numeric, cr, np.nan))
        failed = _among(gr, _FAILED_MARKS)
        out[rank] = {
            "gpa": points / weight if weight and not np.isnan(weight) else np.nan,
            "n_zero": float((gr == "0").sum()), "n_incomplete": float((gr == "ร").sum()),
            "n_not_eligible": float((gr == "มส").sum()), "n_activity_failed": float((gr == "มผ").sum()),
            "failed_credits": float(np.nansum(cr[failed])) if failed.any() else 0.0,
            "n_subjects": float(len(gr)),
        }
    return out


def _events(table: Columns, date_column: str, day: np.datetime64) -> tuple[Columns, np.ndarray] | None:
    """The table's events on or before ``day``, newest first (``rnk`` 1 first), and their dates."""
    if not len(table.get(date_column, ())):
        return None
    rows = np.flatnonzero(table[date_column] <= day)
    if not len(rows):
        return None
    order = rows[np.argsort(-table[date_column][rows].astype(np.int64), kind="stable")]
    return {k: v[order] for k, v in table.items()}, table[date_column][order]


def _household_part(ev: RowEvaluator, rec: StudentRecords, c: dict[str, Any]) -> Columns | None:
    """``hh_event``: screenings with the derived columns of :mod:`risk.features.household`."""
    found = _events(rec.table("household"), "screened_on", ev.day)
    if found is None:
        return None
    h, dates = found
    size, income, dependants = h["household_size"], h["monthly_income_baht"], h["dependants"]
    condition = np.array([2.0 if v == "dilapidated" else 1.0 if v == "poor" else 0.0 for v in h["house_condition"]])
    water = np.array([np.nan if v is None else float(v in ("rain", "river")) for v in h["water_source"]])
    more = np.where(np.isnan(dependants) | np.isnan(size), np.nan, (dependants > size / 2).astype(np.float64))
    return {**h, "event_date": dates,
            "income_per_capita_baht": income / size, "dependency_ratio": dependants / size,
            "proxy_means_score": condition + (1 - h["owns_land"]) + water + (1 - h["has_electricity"])
            + (1 - h["has_vehicle"]) + more,
            "lives_with_parents": np.array([np.nan if v is None else float(v == "both_parents") for v in h["lives_with"]])}


def _health_part(ev: RowEvaluator, rec: StudentRecords, c: dict[str, Any]) -> Columns | None:
    """``health_event``: measurements with BMI and the WHO z-scores at the age on the day."""
    found = _events(rec.table("health"), "measured_on", ev.day)
    if found is None:
        return None
    h, dates = found
    bmi = h["weight_kg"] / (h["height_cm"] / 100) ** 2
    birth = c["birth_date"]
    age = ((dates - birth).astype(np.int64) / DAYS_PER_MONTH if not np.isnat(birth)
           else np.full(len(dates), np.nan))
    sex = np.full(len(dates), c["sex"], dtype=object)
    return {**h, "event_date": dates, "bmi": bmi, "bmi_z": who_zscores("bmi_for_age", sex, age, bmi),
            "height_z": who_zscores("height_for_age", sex, age, h["height_cm"])}


def _behaviour_part(ev: RowEvaluator, rec: StudentRecords, c: dict[str, Any]) -> Columns | None:
    """``behaviour_event``: screenings with the SDQ total and the count of risk flags."""
    found = _events(rec.table("behaviour"), "screened_on", ev.day)
    if found is None:
        return None
    b, dates = found
    flags = {f: b[f] for f in FLAGS}
    return {**{s: b[s] for s in SDQ}, **flags, "event_date": dates,
            "sdq_total": b["sdq_emotional"] + b["sdq_conduct"] + b["sdq_hyperactivity"] + b["sdq_peer"],
            "risk_flag_count": sum(flags.values())}


def _assistance_part(ev: RowEvaluator, rec: StudentRecords, c: dict[str, Any]) -> Columns | None:
    """``assistance_event``: payments and services, received ones with their amount."""
    found = _events(rec.table("assistance"), "date", ev.day)
    if found is None:
        return None
    a, dates = found
    received = a["received"]
    return {"event_date": dates, "amount_baht": a["amount_baht"], "received": received,
            "amount_received_baht": np.where(received == 1, a["amount_baht"], 0.0),
            "is_cct": np.array([np.nan if v is None else float(v == "cct") for v in a["programme"]])}


_PARTS: dict[str, Callable[[RowEvaluator, StudentRecords, dict[str, Any]], Any]] = {
    "context": _context_part, "attendance": _attendance_part, "grades": _grades_part,
    "household": _household_part, "health": _health_part, "behaviour": _behaviour_part,
    "assistance": _assistance_part,
}


# Enrollment features aggregate the cohort row and its history, which the context part holds.
_PART_OF = {"enrollment": "context"}


# ---------------------------------------------------------------------- kinds (SQL: the domain modules' expression)
def _attendance_feature(c: dict[str, Any]) -> Callable[[dict[str, np.ndarray]], float]:
    kind = c["kind"]

    def scope(a: dict[str, np.ndarray]) -> np.ndarray:
        return a["in_term"] if c.get("scope") == "term" else a["day_rank"] <= c["last_days"]

    if kind == "streak":
        which = c["which"]
        return lambda a: _streaks(a)[which]
    if kind == "rate":
        return lambda a: _mean(scope(a), a["attended"])
    if kind == "count":
        statuses = frozenset(c["statuses"])
        return lambda a: float((scope(a) & _among(a["status"], statuses)).sum())
    if kind == "reported_share":
        return lambda a: _mean(scope(a), a["status"] != "missing")
    if kind == "days":
        return lambda a: float(scope(a).sum())
    if kind == "trend":
        recent, before = c["recent_days"], c["before_days"]
        return lambda a: (_mean(a["day_rank"] <= recent, a["attended"])
                          - _mean((a["day_rank"] > recent) & (a["day_rank"] <= recent + before), a["attended"]))
    if kind == "share_of_absences_on":
        on_day = np.isin(np.arange(8), list(c["weekdays"]))  # by ISO weekday number, 1 to 7
        return lambda a: _mean(a["in_term"] & ~a["attended"], on_day[a["weekday"]])
    if kind == "exam_line_margin":
        line = float(c["line"])
        return lambda a: _mean(a["in_term"], a["attended"]) - line
    raise ValueError(kind)


def _streaks(a: dict[str, np.ndarray]) -> dict[str, float]:
    """``att_streak``: the longest run of non-attended school days this term, and the run ending at ``as_of``."""
    ranks = np.sort(a["day_rank"][a["in_term"] & ~a["attended"]])
    if not len(ranks):
        return {"longest": 0.0, "current": 0.0}
    breaks = np.flatnonzero(np.diff(ranks) != 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks + 1, [len(ranks)]])
    lengths = ends - starts
    current = float(lengths[0]) if ranks[0] == 1 else 0.0
    return {"longest": float(lengths.max()), "current": current}


def _context_feature(spec: FeatureSpec, term: str) -> Callable[[dict[str, Any]], float]:
    c = spec.compute
    kind = c["kind"]
    if kind == "code":
        categories, column = list(spec.categories or []), c["column"]
        return lambda x: float(categories.index(x[column])) if x[column] in categories else np.nan
    if kind == "in":
        values, column = list(c["values"]), c["column"]
        return lambda x: np.nan if x[column] is None else float(x[column] in values)
    if kind in ("age_years", "over_age_years"):
        return lambda x: float(x[kind])
    if kind == "rate":
        column = c["column"]
        return lambda x: float(x[column])
    if kind == "year_end":
        value = float(term.endswith("-2"))
        return lambda x: value
    index = {"repeated_grade": 0, "schools_attended": 1, "terms_enrolled": 2}[kind]
    return lambda x: np.nan if x["history"] is None else x["history"][index]


_OPS: dict[str, Callable[[float, float], bool]] = {
    "lt": lambda a, b: a < b, "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b}


def _event_feature(spec: FeatureSpec, day: np.datetime64) -> Callable[[Columns], float]:
    """:func:`risk.features.events.event_expression` over an event part (rows newest first)."""
    c = spec.compute
    kind, column, where = c["kind"], c.get("column"), c.get("where")

    def at(e: Columns, rank: int) -> float:
        values = e[column]
        return float(values[rank]) if len(values) > rank and not _is_null(values[rank]) else np.nan

    def chosen(e: Columns) -> np.ndarray:
        rows = np.ones(len(e["event_date"]), dtype=bool)
        return rows & (e[where] == 1) if where else rows

    def window(e: Columns) -> np.ndarray:
        return chosen(e) & (e["event_date"] > day - np.timedelta64(int(c.get("days", 0)), "D"))

    def since(e: Columns) -> float:
        rows = chosen(e)
        return float((day - e["event_date"][rows].max()).astype(np.int64)) if rows.any() else np.nan

    if kind == "latest":
        return lambda e: at(e, 0)
    if kind == "previous":
        return lambda e: at(e, 1)
    if kind == "change":
        return lambda e: at(e, 0) - at(e, 1)
    if kind == "pct_change":
        return lambda e: (100.0 * (at(e, 0) - at(e, 1)) / at(e, 1)) if at(e, 1) != 0 else np.nan
    if kind == "window_sum":
        return lambda e: _zero_if_nan(_nan_sum(e[column][window(e)].astype(np.float64)))
    if kind == "window_mean":
        return lambda e: _nan_mean(e[column][window(e)].astype(np.float64))
    if kind == "window_count":
        return lambda e: float(window(e).sum())
    if kind == "window_max":
        return lambda e: _nan_max(e[column][window(e)].astype(np.float64))
    if kind == "days_since_latest":
        return since
    if kind == "months_since_latest":
        return lambda e: since(e) / 30.4375
    if kind == "latest_flag":
        op, threshold = _OPS[c["op"]], c["threshold"]
        return lambda e: np.nan if np.isnan(at(e, 0)) else float(op(at(e, 0), threshold))
    if kind == "latest_code":
        categories = list(spec.categories or [])
        return lambda e: (float(categories.index(e[column][0])) if e[column][0] in categories else np.nan)
    raise ValueError(kind)


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _zero_if_nan(value: float) -> float:
    return 0.0 if np.isnan(value) else value


def _nan_mean(values: np.ndarray) -> float:
    present = values[~np.isnan(values)]
    return float(present.mean()) if len(present) else np.nan


def _nan_max(values: np.ndarray) -> float:
    present = values[~np.isnan(values)]
    return float(present.max()) if len(present) else np.nan
