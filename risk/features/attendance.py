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
"""

from __future__ import annotations

from risk.features.base import AsOf, Part, sql_list, sql_text
from risk.features.catalog import FeatureSpec
from risk.features.kinds import ATTENDANCE_KINDS, ATTENDANCE_STATUSES, attendance_scope

__all__ = ["ATTENDED", "KINDS", "STATUSES", "expression", "parts"]

ATTENDED = ("present", "late")
STATUSES = ATTENDANCE_STATUSES
KINDS = ATTENDANCE_KINDS  # checked in risk.features.kinds, as the catalog loads


def parts(as_of: AsOf) -> list[Part]:
    terms = f"({sql_text(as_of.term)}, {sql_text(as_of.previous_term)})"
    # A day's rank among the student's school days (1 = the latest) comes from the
    # school calendars, ranked once per school, not from a window over every student-day:
    # this term's days count back from as_of, then last term's continue the count.
    ranked = Part("att_calendar", f"""
        SELECT school_id, term, date,
               row_number() OVER (PARTITION BY school_id, term ORDER BY date DESC) AS back,
               count(*) OVER (PARTITION BY school_id, term) AS days_in_term
        FROM calendar WHERE term IN {terms} AND date <= {as_of.sql}
    """, shared=True)
    day = Part("att_day", f"""
        WITH enr AS (
            SELECT e.student_key, e.term, e.school_id FROM enrollments e
            WHERE e.term IN {terms} AND e.student_key IN (SELECT student_key FROM cohort)),
        current_days AS (
            SELECT enr.student_key, c.days_in_term AS n FROM enr
            JOIN (SELECT DISTINCT school_id, days_in_term FROM att_calendar
                  WHERE term = {sql_text(as_of.term)}) c ON c.school_id = enr.school_id
            WHERE enr.term = {sql_text(as_of.term)}),
        days AS (
            SELECT enr.student_key, c.date, c.term = {sql_text(as_of.term)} AS in_term,
                   CASE WHEN c.term = {sql_text(as_of.term)} THEN c.back ELSE coalesce(cd.n, 0) + c.back END AS day_rank
            FROM enr JOIN att_calendar c ON c.school_id = enr.school_id AND c.term = enr.term
            LEFT JOIN current_days cd ON cd.student_key = enr.student_key),
        att AS (
            SELECT student_key, date, status FROM attendance_daily
            WHERE date <= {as_of.sql} AND term IN {terms})
        SELECT days.student_key, days.date, days.in_term, days.day_rank,
               coalesce(att.status, 'missing') AS status,
               coalesce(att.status IN {tuple(ATTENDED)}, false) AS attended,
               isodow(days.date) AS weekday
        FROM days LEFT JOIN att ON att.student_key = days.student_key AND att.date = days.date
    """, needs=("att_calendar",))
    # Runs of non-attended days: within a run, day_rank minus the row's position is constant.
    streak = Part("att_streak", """
        SELECT student_key, max(n) AS longest, coalesce(max(n) FILTER (WHERE first_rank = 1), 0) AS current
        FROM (
            SELECT student_key, grp, count(*) AS n, min(day_rank) AS first_rank FROM (
                SELECT student_key, day_rank,
                       day_rank - row_number() OVER (PARTITION BY student_key ORDER BY day_rank) AS grp
                FROM att_day WHERE in_term AND NOT attended)
            GROUP BY student_key, grp)
        GROUP BY student_key
        UNION ALL
        SELECT student_key, 0, 0 FROM att_day GROUP BY student_key HAVING bool_and(attended OR NOT in_term)
    """, needs=("att_day",))
    return [ranked, day, streak]


def _scope(c: dict) -> str:
    """The SQL condition on ``att_day`` rows of an entry's scope (see :func:`attendance_scope`)."""
    days = attendance_scope(c)
    return "in_term" if days is None else f"day_rank <= {days}"


def _rate(where: str) -> str:
    return f"avg(CASE WHEN attended THEN 1.0 ELSE 0.0 END) FILTER (WHERE {where})"


def expression(spec: FeatureSpec, as_of: AsOf) -> tuple[str, str]:
    """(part, SQL aggregate) for one attendance feature."""
    c = spec.compute
    kind = c["kind"]
    if kind == "streak":
        return "att_streak", f"CAST(max({c['which']}) AS DOUBLE)"
    if kind == "rate":
        return "att_day", _rate(_scope(c))
    if kind == "count":
        return "att_day", f"CAST(count(*) FILTER (WHERE {_scope(c)} AND status IN {_tuple(c['statuses'])}) AS DOUBLE)"
    if kind == "reported_share":
        return "att_day", f"avg(CASE WHEN status <> 'missing' THEN 1.0 ELSE 0.0 END) FILTER (WHERE {_scope(c)})"
    if kind == "days":
        return "att_day", f"CAST(count(*) FILTER (WHERE {_scope(c)}) AS DOUBLE)"
    if kind == "trend":
        recent, before = c["recent_days"], c["before_days"]
        return "att_day", (f"{_rate(f'day_rank <= {recent}')} - "
                           f"{_rate(f'day_rank > {recent} AND day_rank <= {recent + before}')}")
    if kind == "share_of_absences_on":
        days = ", ".join(str(int(d)) for d in c["weekdays"])
        return "att_day", (f"avg(CASE WHEN weekday IN ({days}) THEN 1.0 ELSE 0.0 END) "
                           "FILTER (WHERE in_term AND NOT attended)")
    if kind == "exam_line_margin":
        return "att_day", f"{_rate('in_term')} - {float(c['line'])}"
    raise ValueError(kind)


def _tuple(values: list[str]) -> str:
    return "(" + sql_list(values)[1:-1] + ")"
