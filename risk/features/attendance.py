"""Attendance features, counted on the school's calendar.

The days that count are the open days of the student's school (from the
calendar) in the current and previous term, up to ``as_of``. A day with no
attendance row is not a present day: it counts as not attended, and the share of
days with a row is a feature of its own. ``present`` and ``late`` count as
attended; ``absent`` is unexcused; ``leave`` and ``sick`` are excused absences.

Compute kinds (``scope`` is ``term`` or ``last_days: N``, N school days back from ``as_of``):

- ``rate``: share of days attended
- ``count``: days with one of ``statuses`` (``missing`` = no row)
- ``reported_share``: share of days with any row
- ``days``: school days in scope
- ``trend``: rate over the last ``recent_days`` minus the rate over the ``before_days`` before them
- ``share_of_absences_on``: share of the term's non-attended days that fall on ``weekdays`` (1 Mon … 5 Fri)
- ``streak``: ``longest`` or ``current`` run of non-attended school days this term
- ``exam_line_margin``: this term's rate minus ``line`` (80%: the exam-eligibility line, มส)

How it is computed: a student's school days are numbered back from ``as_of``
(1 = the latest; this term's days first, then last term's), from the school
calendars. Only the attendance rows are read per student; days without a row are
counted by arithmetic, never materialised, so national attendance (hundreds of
millions of rows) needs no join of every student-day. The counting is numpy over
the rows of whatever the connection holds: the batch path and the online path run
this same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from risk.features.base import AsOf, Part, sql_text
from risk.features.catalog import FeatureSpec

__all__ = ["check", "expression", "parts"]

ATTENDED = ("present", "late")
RECORDED = ("present", "absent", "leave", "sick", "late")  # status codes 0..4, in this order
STATUSES = (*RECORDED, "missing")
KINDS = ("rate", "count", "reported_share", "days", "trend", "share_of_absences_on", "streak", "exam_line_margin")
_ATTENDED_CODES = [RECORDED.index(s) for s in ATTENDED]
_DAY_SLOTS = 100_000  # days since 1970 stay below this until the 2240s


def parts(as_of: AsOf) -> list[Part]:
    terms = f"({sql_text(as_of.term)}, {sql_text(as_of.previous_term)})"
    calendar = Part("att_calendar", f"""
        SELECT CAST(school_id AS BIGINT) AS school_code,
               CASE WHEN term = {sql_text(as_of.term)} THEN 0 ELSE 1 END AS term_index,
               CAST(date AS DATE) - DATE '1970-01-01' AS day, isodow(date) AS weekday,
               row_number() OVER (PARTITION BY school_id, term ORDER BY date DESC) AS back
        FROM calendar WHERE term IN {terms} AND date <= {as_of.sql}
    """, shared=True)
    features = Part("att_features", "", needs=("att_calendar",), compute=_attendance_features)
    return [calendar, features]


def check(spec: FeatureSpec) -> None:
    c = spec.compute
    if c["kind"] not in KINDS:
        raise ValueError(f"compute kind {c['kind']!r} is not one of {', '.join(KINDS)}")
    if c["kind"] in ("rate", "count", "reported_share", "days"):
        _scope_days(c)
    if c["kind"] == "count" and not set(c.get("statuses", ())) <= set(STATUSES) | {None}:
        raise ValueError(f"statuses must be among {', '.join(STATUSES)}")
    if c["kind"] == "count" and not c.get("statuses"):
        raise ValueError("count needs statuses")
    if c["kind"] == "streak" and c.get("which") not in ("longest", "current"):
        raise ValueError("streak needs which: longest or current")
    if c["kind"] == "trend" and not all(isinstance(c.get(k), int) and c[k] > 0 for k in ("recent_days", "before_days")):
        raise ValueError("trend needs recent_days and before_days, positive whole numbers")
    if c["kind"] == "share_of_absences_on" and not set(c.get("weekdays", [])) <= {1, 2, 3, 4, 5, 6, 7}:
        raise ValueError("weekdays are 1 (Monday) to 7 (Sunday)")
    if c["kind"] == "exam_line_margin" and not 0 < c.get("line", 0) < 1:
        raise ValueError("exam_line_margin needs line between 0 and 1")


def _scope_days(c: dict) -> int | None:
    """``None`` for the whole term, N for the last N school days."""
    if c.get("scope") == "term":
        return None
    days = c.get("last_days")
    if isinstance(days, int) and days > 0:
        return days
    raise ValueError("give scope: term, or last_days: a positive whole number")


def expression(spec: FeatureSpec, as_of: AsOf) -> tuple[str, str]:
    """(part, SQL aggregate): attendance features are computed whole in ``att_features``."""
    return "att_features", f"any_value({spec.name})"


@dataclass
class _Days:
    """Per student (sorted by key): days this term and last, and the student's attendance rows."""

    keys: np.ndarray
    n_term: np.ndarray
    n_total: np.ndarray
    weekdays_term: np.ndarray  # shape (students, 8): this term's school days by ISO weekday
    student: np.ndarray        # per row: index into keys
    rank: np.ndarray           # per row: 1 = the latest school day
    in_term: np.ndarray
    status: np.ndarray         # per row: code into RECORDED
    weekday: np.ndarray

    @property
    def attended(self) -> np.ndarray:
        return np.isin(self.status, _ATTENDED_CODES)

    def per_student(self, mask: np.ndarray) -> np.ndarray:
        return np.bincount(self.student[mask], minlength=len(self.keys)).astype(np.float64)

    def days_up_to(self, rank: int | None) -> np.ndarray:
        """School days among the last ``rank`` (``None``: this term)."""
        return self.n_term.astype(np.float64) if rank is None else np.minimum(rank, self.n_total).astype(np.float64)

    def rows_up_to(self, rank: int | None) -> np.ndarray:
        return self.in_term if rank is None else self.rank <= rank


def _attendance_features(con: duckdb.DuckDBPyConnection, as_of: AsOf, specs: list[FeatureSpec],
                         cache: dict[str, Any]) -> pd.DataFrame:
    days = _days(con, as_of, cache)
    columns: dict[str, np.ndarray] = {"student_key": days.keys}
    for spec in specs:
        values = _feature(spec.compute, days)
        # No school day at all (before the first day of school): nothing is known.
        columns[spec.name] = np.where(days.n_total > 0, values, np.nan)
    return pd.DataFrame(columns)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def _rate(days: _Days, rank: int | None) -> np.ndarray:
    return _ratio(days.per_student(days.rows_up_to(rank) & days.attended), days.days_up_to(rank))


def _rate_between(days: _Days, after: int, upto: int) -> np.ndarray:
    attended = days.per_student((days.rank > after) & (days.rank <= upto) & days.attended)
    in_range = np.clip(np.minimum(upto, days.n_total) - after, 0, None).astype(np.float64)
    return _ratio(attended, in_range)


def _feature(c: dict[str, Any], days: _Days) -> np.ndarray:
    kind = c["kind"]
    if kind == "rate":
        return _rate(days, _scope_days(c))
    if kind == "exam_line_margin":
        return _rate(days, None) - float(c["line"])
    if kind in ("count", "reported_share", "days"):
        rank = _scope_days(c)
        in_scope = days.rows_up_to(rank)
        total = days.days_up_to(rank)
        recorded = days.per_student(in_scope)
        if kind == "days":
            return total
        if kind == "reported_share":
            return _ratio(recorded, total)
        codes = [RECORDED.index(s) for s in c["statuses"] if s != "missing"]
        count = days.per_student(in_scope & np.isin(days.status, codes))
        return count + (total - recorded if "missing" in c["statuses"] else 0)
    if kind == "trend":
        recent, before = c["recent_days"], c["before_days"]
        return _rate(days, recent) - _rate_between(days, recent, recent + before)
    if kind == "share_of_absences_on":
        weekdays = [int(d) for d in c["weekdays"]]
        attended_term = days.in_term & days.attended
        missed = days.n_term - days.per_student(attended_term)
        missed_on = (days.weekdays_term[:, weekdays].sum(axis=1)
                     - days.per_student(attended_term & np.isin(days.weekday, weekdays)))
        return _ratio(missed_on, missed)
    if kind == "streak":
        longest, current = _streaks(days)
        return longest if c["which"] == "longest" else current
    raise ValueError(kind)


def _streaks(days: _Days) -> tuple[np.ndarray, np.ndarray]:
    """Longest and current run of non-attended school days this term.

    Runs lie between attended days: before the first (the current run, ending at
    as_of), between two, and after the last (the start of the term).
    """
    term = days.in_term & days.attended
    order = np.lexsort((days.rank[term], days.student[term]))
    student, rank = days.student[term][order], days.rank[term][order]
    n_term = days.n_term.astype(np.int64)
    has_attended = np.zeros(len(days.keys), dtype=bool)
    has_attended[student] = True
    longest = np.where(has_attended, 0, n_term)
    current = n_term.copy()
    if len(student):
        first = np.r_[True, student[1:] != student[:-1]]
        last = np.r_[student[1:] != student[:-1], True]
        current[student[first]] = rank[first] - 1
        gaps = np.where(first, rank - 1, rank - np.r_[0, rank[:-1]] - 1)
        np.maximum.at(longest, student, gaps)
        np.maximum.at(longest, student[last], n_term[student[last]] - rank[last])
    return longest.astype(np.float64), current.astype(np.float64)


def _days(con: duckdb.DuckDBPyConnection, as_of: AsOf, cache: dict[str, Any]) -> _Days:
    calendar = cache.get("att_calendar")
    if calendar is None:
        calendar = cache["att_calendar"] = _calendar_lookup(con)
    keys_sorted, back, day_counts, schools, weekday_counts = calendar
    students = con.execute(f"""
        SELECT c.student_key, CAST(c.school_id AS BIGINT) AS school_code, CAST(p.school_id AS BIGINT) AS previous_code
        FROM cohort c LEFT JOIN enrollments p
          ON p.student_key = c.student_key AND p.term = {sql_text(as_of.previous_term)}
        ORDER BY c.student_key
    """).fetchnumpy()
    rows = con.execute(f"""
        SELECT a.student_key, CAST(a.school_id AS BIGINT) AS school_code, a.term = {sql_text(as_of.term)} AS in_term,
               CAST(a.date AS DATE) - DATE '1970-01-01' AS day, isodow(a.date) AS weekday,
               list_position({list(RECORDED)}, a.status) - 1 AS status
        FROM attendance_daily a
        WHERE a.date <= {as_of.sql} AND a.term IN ({sql_text(as_of.term)}, {sql_text(as_of.previous_term)})
          AND a.student_key IN (SELECT student_key FROM cohort)
    """).fetchnumpy()
    keys = students["student_key"].astype(np.int64)
    n_term = _lookup(day_counts, _school_term(_filled(students["school_code"]), 0))
    previous = np.ma.getdata(students["previous_code"])
    has_previous = ~np.ma.getmaskarray(students["previous_code"])
    n_previous = np.where(has_previous, _lookup(day_counts, _school_term(_filled(previous), 1)), 0)
    position = np.searchsorted(schools, _filled(students["school_code"]))
    found = (position < len(schools)) & (schools[np.minimum(position, len(schools) - 1)] == students["school_code"])
    weekdays_term = np.where(found[:, None], weekday_counts[np.minimum(position, len(schools) - 1)], 0)
    # Each row's place among the student's school days, from its school's calendar.
    in_term = rows["in_term"].astype(bool)
    row_key = _school_term(rows["school_code"].astype(np.int64), np.where(in_term, 0, 1)) * _DAY_SLOTS + rows["day"]
    at = np.searchsorted(keys_sorted, row_key)
    on_calendar = (at < len(keys_sorted)) & (keys_sorted[np.minimum(at, len(keys_sorted) - 1)] == row_key)
    student = np.searchsorted(keys, rows["student_key"])[on_calendar]
    row_back = back[at[on_calendar]]
    in_term = in_term[on_calendar]
    rank = np.where(in_term, row_back, n_term[student] + row_back)
    return _Days(keys=keys, n_term=n_term, n_total=n_term + n_previous, weekdays_term=weekdays_term,
                 student=student, rank=rank, in_term=in_term, status=rows["status"][on_calendar].astype(np.int64),
                 weekday=rows["weekday"][on_calendar].astype(np.int64))


def _calendar_lookup(con: duckdb.DuckDBPyConnection) -> tuple[np.ndarray, ...]:
    """Sorted (school, term, day) keys with each day's rank back from as_of; days per (school, term);
    and, for this term, each school's school days by weekday."""
    cal = con.execute("SELECT school_code, term_index, day, weekday, back FROM att_calendar").fetchnumpy()
    school_term = _school_term(cal["school_code"].astype(np.int64), cal["term_index"].astype(np.int64))
    keys = school_term * _DAY_SLOTS + cal["day"].astype(np.int64)
    order = np.argsort(keys)
    counted = pd.Series(1, index=school_term).groupby(level=0).sum()
    this_term = cal["term_index"] == 0
    schools, school_index = np.unique(cal["school_code"][this_term].astype(np.int64), return_inverse=True)
    weekday_counts = np.zeros((len(schools), 8), dtype=np.int64)
    np.add.at(weekday_counts, (school_index, cal["weekday"][this_term].astype(np.int64)), 1)
    day_counts = (counted.index.to_numpy(np.int64), counted.to_numpy(np.int64))
    return keys[order], cal["back"].astype(np.int64)[order], day_counts, schools, weekday_counts


def _school_term(school_code: np.ndarray, term_index: np.ndarray | int) -> np.ndarray:
    return school_code.astype(np.int64) * 2 + term_index


def _filled(values: np.ndarray) -> np.ndarray:
    return np.ma.filled(np.ma.asarray(values), -1).astype(np.int64)


def _lookup(table: tuple[np.ndarray, np.ndarray], keys: np.ndarray) -> np.ndarray:
    """Value per key from (sorted keys, values); 0 for a key not in the table."""
    known, values = table
    at = np.searchsorted(known, keys)
    hit = (at < len(known)) & (known[np.minimum(at, len(known) - 1)] == keys)
    return np.where(hit, values[np.minimum(at, len(known) - 1)], 0)
