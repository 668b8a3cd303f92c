"""The compute kinds of the row-wise evaluator, as data: per family, kind name → maker.

A maker takes a catalog entry and the evaluator's :class:`Moment` and returns the
feature: a function of the rows of the entry's part (see :mod:`risk.online.rowwise_parts`)
to one float, NaN for NULL. Each mirrors the SQL expression of the same kind in its
domain module (:func:`risk.features.attendance.expression`,
:func:`risk.features.events.event_expression`, ...), with SQL's rules: an
aggregate over no rows is NULL, a count 0, NULL propagates through arithmetic.

:data:`KINDS` is what the evaluator implements; ``tests/test_parity_kinds.py`` holds
its names to the kinds the domain modules declare, both ways, and every kind to its
SQL on generated worlds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from risk.features.catalog import FeatureSpec
from risk.online.rowwise_records import Columns, Moment, among, mean_where, nan_sum

__all__ = ["FAMILY_OF", "KINDS", "Feature", "KindMaker"]

Feature = Callable[[Any], float]
KindMaker = Callable[[FeatureSpec, Moment], Feature]
Days = dict[str, np.ndarray]  # the attendance part: in_term, day_rank, status, attended, weekday


# ---------------------------------------------------------------------- attendance (risk.features.attendance)
def _scope(c: dict[str, Any]) -> Callable[[Days], np.ndarray]:
    if c.get("scope") == "term":
        return lambda a: a["in_term"]
    last = c["last_days"]
    return lambda a: a["day_rank"] <= last


def _streak(spec: FeatureSpec, m: Moment) -> Feature:
    which = spec.compute["which"]
    return lambda a: _streaks(a)[which]


def _streaks(a: Days) -> dict[str, float]:
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


def _rate(spec: FeatureSpec, m: Moment) -> Feature:
    scope = _scope(spec.compute)
    return lambda a: mean_where(scope(a), a["attended"])


def _count(spec: FeatureSpec, m: Moment) -> Feature:
    scope, statuses = _scope(spec.compute), frozenset(spec.compute["statuses"])
    return lambda a: float((scope(a) & among(a["status"], statuses)).sum())


def _reported_share(spec: FeatureSpec, m: Moment) -> Feature:
    scope = _scope(spec.compute)
    return lambda a: mean_where(scope(a), a["status"] != "missing")


def _days(spec: FeatureSpec, m: Moment) -> Feature:
    scope = _scope(spec.compute)
    return lambda a: float(scope(a).sum())


def _trend(spec: FeatureSpec, m: Moment) -> Feature:
    recent, before = spec.compute["recent_days"], spec.compute["before_days"]
    return lambda a: (mean_where(a["day_rank"] <= recent, a["attended"])
                      - mean_where((a["day_rank"] > recent) & (a["day_rank"] <= recent + before), a["attended"]))


def _share_of_absences_on(spec: FeatureSpec, m: Moment) -> Feature:
    on_day = np.isin(np.arange(8), list(spec.compute["weekdays"]))  # by ISO weekday number, 1 to 7
    return lambda a: mean_where(a["in_term"] & ~a["attended"], on_day[a["weekday"]])


def _exam_line_margin(spec: FeatureSpec, m: Moment) -> Feature:
    line = float(spec.compute["line"])
    return lambda a: mean_where(a["in_term"], a["attended"]) - line


ATTENDANCE: dict[str, KindMaker] = {
    "rate": _rate, "count": _count, "reported_share": _reported_share, "days": _days, "trend": _trend,
    "share_of_absences_on": _share_of_absences_on, "streak": _streak, "exam_line_margin": _exam_line_margin,
}


# ---------------------------------------------------------------------- grades (risk.features.grades)
def _term_measure(spec: FeatureSpec, m: Moment) -> Feature:
    measure, rank = spec.compute["measure"], spec.compute["term_rank"]
    return lambda g: g.get(rank, {}).get(measure, np.nan)


def _grade_change(spec: FeatureSpec, m: Moment) -> Feature:
    measure = spec.compute["measure"]
    return lambda g: g.get(1, {}).get(measure, np.nan) - g.get(2, {}).get(measure, np.nan)


GRADES: dict[str, KindMaker] = {"term_measure": _term_measure, "change": _grade_change}


# ---------------------------------------------------------------------- enrollment and context (risk.features.enrollment)
def _code(spec: FeatureSpec, m: Moment) -> Feature:
    categories, column = list(spec.categories or []), spec.compute["column"]
    return lambda x: float(categories.index(x[column])) if x[column] in categories else np.nan


def _in(spec: FeatureSpec, m: Moment) -> Feature:
    values, column = list(spec.compute["values"]), spec.compute["column"]
    return lambda x: np.nan if x[column] is None else float(x[column] in values)


def _age(spec: FeatureSpec, m: Moment) -> Feature:
    """``age_years`` and ``over_age_years``: the context part's column of that name."""
    kind = spec.compute["kind"]
    return lambda x: float(x[kind])


def _past_rate(spec: FeatureSpec, m: Moment) -> Feature:
    column = spec.compute["column"]
    return lambda x: float(x[column])


def _year_end(spec: FeatureSpec, m: Moment) -> Feature:
    value = float(m.term.endswith("-2"))
    return lambda x: value


def _history(index: int) -> KindMaker:
    """A measure of the enrollment history: (repeated_grade, schools_attended, terms_enrolled)[index]."""
    return lambda spec, m: lambda x: np.nan if x["history"] is None else x["history"][index]


ENROLLMENT: dict[str, KindMaker] = {
    "code": _code, "in": _in, "age_years": _age, "over_age_years": _age, "rate": _past_rate,
    "repeated_grade": _history(0), "schools_attended": _history(1), "terms_enrolled": _history(2),
    "year_end": _year_end,
}


# ---------------------------------------------------------------------- dated events (risk.features.events)
def _value_at(column: str, rank: int) -> Feature:
    """The column's value at the rank-th newest event (0 = the latest): SQL ``max(x) FILTER (WHERE rnk = rank + 1)``."""
    def at(e: Columns) -> float:
        values = e[column]
        return float(values[rank]) if len(values) > rank and not _is_null(values[rank]) else np.nan
    return at


def _chosen(c: dict[str, Any]) -> Callable[[Columns], np.ndarray]:
    """The events the ``where`` flag keeps (all without one)."""
    where = c.get("where")
    if where:
        return lambda e: e[where] == 1
    return lambda e: np.ones(len(e["event_date"]), dtype=bool)


def _in_window(c: dict[str, Any], m: Moment) -> Callable[[Columns], np.ndarray]:
    """Events kept by ``where`` dated after ``as_of`` minus ``days`` days."""
    chosen, start = _chosen(c), m.day - np.timedelta64(int(c.get("days", 0)), "D")
    return lambda e: chosen(e) & (e["event_date"] > start)


def _latest(spec: FeatureSpec, m: Moment) -> Feature:
    return _value_at(spec.compute["column"], 0)


def _previous(spec: FeatureSpec, m: Moment) -> Feature:
    return _value_at(spec.compute["column"], 1)


def _change(spec: FeatureSpec, m: Moment) -> Feature:
    latest, previous = _value_at(spec.compute["column"], 0), _value_at(spec.compute["column"], 1)
    return lambda e: latest(e) - previous(e)


def _pct_change(spec: FeatureSpec, m: Moment) -> Feature:
    latest, previous = _value_at(spec.compute["column"], 0), _value_at(spec.compute["column"], 1)
    return lambda e: (100.0 * (latest(e) - previous(e)) / previous(e)) if previous(e) != 0 else np.nan


def _window_sum(spec: FeatureSpec, m: Moment) -> Feature:
    window, column = _in_window(spec.compute, m), spec.compute["column"]
    return lambda e: _zero_if_nan(nan_sum(e[column][window(e)].astype(np.float64)))


def _window_mean(spec: FeatureSpec, m: Moment) -> Feature:
    window, column = _in_window(spec.compute, m), spec.compute["column"]
    return lambda e: _nan_mean(e[column][window(e)].astype(np.float64))


def _window_count(spec: FeatureSpec, m: Moment) -> Feature:
    window = _in_window(spec.compute, m)
    return lambda e: float(window(e).sum())


def _window_max(spec: FeatureSpec, m: Moment) -> Feature:
    window, column = _in_window(spec.compute, m), spec.compute["column"]
    return lambda e: _nan_max(e[column][window(e)].astype(np.float64))


def _days_since_latest(spec: FeatureSpec, m: Moment) -> Feature:
    chosen, day = _chosen(spec.compute), m.day

    def since(e: Columns) -> float:
        rows = chosen(e)
        return float((day - e["event_date"][rows].max()).astype(np.int64)) if rows.any() else np.nan
    return since


def _months_since_latest(spec: FeatureSpec, m: Moment) -> Feature:
    since = _days_since_latest(spec, m)
    return lambda e: since(e) / 30.4375


_OPS: dict[str, Callable[[float, float], bool]] = {
    "lt": lambda a, b: a < b, "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b}


def _latest_flag(spec: FeatureSpec, m: Moment) -> Feature:
    latest, op, threshold = _value_at(spec.compute["column"], 0), _OPS[spec.compute["op"]], spec.compute["threshold"]
    return lambda e: np.nan if np.isnan(latest(e)) else float(op(latest(e), threshold))


def _latest_code(spec: FeatureSpec, m: Moment) -> Feature:
    categories, column = list(spec.categories or []), spec.compute["column"]
    return lambda e: float(categories.index(e[column][0])) if e[column][0] in categories else np.nan


EVENTS: dict[str, KindMaker] = {
    "latest": _latest, "previous": _previous, "change": _change, "pct_change": _pct_change,
    "window_sum": _window_sum, "window_mean": _window_mean, "window_count": _window_count,
    "window_max": _window_max, "days_since_latest": _days_since_latest, "months_since_latest": _months_since_latest,
    "latest_code": _latest_code, "latest_flag": _latest_flag,
}


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _zero_if_nan(value: float) -> float:
    return 0.0 if np.isnan(value) else value


def _nan_mean(values: np.ndarray) -> float:
    """SQL's avg: NULLs ignored, NULL over none."""
    present = values[~np.isnan(values)]
    return float(present.mean()) if len(present) else np.nan


def _nan_max(values: np.ndarray) -> float:
    """SQL's max: NULLs ignored, NULL over none."""
    present = values[~np.isnan(values)]
    return float(present.max()) if len(present) else np.nan


# Per family (a group of domains computed by one set of kinds), kind → maker.
KINDS: dict[str, dict[str, KindMaker]] = {
    "attendance": ATTENDANCE, "grades": GRADES, "enrollment": ENROLLMENT, "events": EVENTS}
# The family of each catalog domain.
FAMILY_OF: dict[str, str] = {
    "attendance": "attendance", "grades": "grades", "enrollment": "enrollment", "context": "enrollment",
    "household": "events", "health": "events", "behaviour": "events", "assistance": "events",
}
