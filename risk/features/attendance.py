"""Attendance features, counted on the school's calendar.

The days that count are the open days of the student's school (from the
calendar) in the current and previous term, up to ``as_of``. A day with no
attendance row is not a present day: it counts as not attended, and the share of
days with a row is a feature of its own. ``present`` and ``late`` count as
attended; ``absent`` is unexcused; ``leave`` and ``sick`` are excused absences.

Last term counts only through the windows that reach back past this term's first
day (``last_days`` scopes and ``trend``: :func:`horizon` school days back from
``as_of``), so only those of its days are part of ``att_day`` (``att_prev_days``, at
least its last day). The batch path reads them from per-term aggregates instead of
rows (:mod:`risk.features.aggregates`); online reads them from the payload.

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
from risk.features.catalog import Catalog, FeatureSpec
from risk.features.kinds import (
    ATTENDANCE_KINDS,
    ATTENDANCE_STATUSES,
    SCOPED_KINDS,
    attendance_scope,
)

__all__ = ["ATTENDED", "KINDS", "PREVIOUS_DAYS", "STATUSES", "expression", "horizon", "parts", "previous_days_sql"]

ATTENDED = ("present", "late")
STATUSES = ATTENDANCE_STATUSES
KINDS = ATTENDANCE_KINDS  # checked in risk.features.kinds, as the catalog loads
_SCOPED = SCOPED_KINDS
# The part holding last term's days: from rows, or from the stored per-term aggregates (batch).
PREVIOUS_DAYS = "att_prev_days"


def horizon(catalog: Catalog) -> int:
    """The most school days back from ``as_of`` any enabled attendance entry reads (0: this term only).

    Only ``last_days`` scopes and ``trend`` windows reach into the previous term, and only
    within this many days of ``as_of``: the rest of that term changes no feature.
    """
    days = [0]
    for spec in catalog.by_domain("attendance"):
        c = spec.compute
        if c["kind"] == "trend":
            days.append(int(c["recent_days"]) + int(c["before_days"]))
        elif c["kind"] in _SCOPED:
            days.append(attendance_scope(c) or 0)
    return max(days)


def parts(as_of: AsOf, catalog: Catalog) -> list[Part]:
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
    # Each cohort student's school days this term so far (n), and how many of last term's
    # days, counted back from its end, any feature can reach (at least one: a student with a
    # day of last term and none of this one still has days, as before).
    span = Part("att_span", f"""
        SELECT c.student_key, coalesce(k.days_in_term, 0) AS n,
               greatest(1, {horizon(catalog)} - coalesce(k.days_in_term, 0)) AS reach
        FROM cohort c LEFT JOIN (SELECT DISTINCT school_id, days_in_term FROM att_calendar
                                 WHERE term = {sql_text(as_of.term)}) k USING (school_id)
    """, needs=("att_calendar",))
    previous = Part(PREVIOUS_DAYS, previous_days_sql(as_of, students="att_span", reach="s.reach"),
                    needs=("att_span",))
    day = Part("att_day", f"""
        WITH days AS (
            SELECT e.student_key, c.date, c.back
            FROM enrollments e JOIN att_calendar c ON c.school_id = e.school_id AND c.term = e.term
            WHERE e.term = {sql_text(as_of.term)} AND e.student_key IN (SELECT student_key FROM cohort)),
        att AS (
            SELECT student_key, date, status FROM attendance_daily
            WHERE date <= {as_of.sql} AND term IN {terms})
        SELECT days.student_key, days.date, true AS in_term, days.back AS day_rank,
               coalesce(att.status, 'missing') AS status,
               coalesce(att.status IN {tuple(ATTENDED)}, false) AS attended,
               isodow(days.date) AS weekday
        FROM days LEFT JOIN att ON att.student_key = days.student_key AND att.date = days.date
        UNION ALL
        SELECT p.student_key, CAST(NULL AS DATE), false, s.n + p.back, p.status, p.status IN {tuple(ATTENDED)},
               CAST(NULL AS BIGINT)
        FROM {PREVIOUS_DAYS} p JOIN att_span s USING (student_key)
    """, needs=("att_calendar", "att_span", PREVIOUS_DAYS))
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
    return [ranked, span, previous, day, streak]


def previous_days_sql(as_of: AsOf, *, students: str | None, reach: str | None,
                      calendar: str = "att_calendar") -> str:
    """Last term's school days of each student, counted back from the term's end (``back`` 1 = its
    last day), with their status (``missing``: no row).

    ``students``: a relation whose ``student_key`` (aliased ``s``) limits the students (None: every
    student enrolled last term); ``reach``: an SQL bound on ``back`` (None: every day of the term);
    ``calendar``: a relation like ``att_calendar`` (``school_id``, ``term``, ``date``, ``back``).
    The per-term aggregates (:mod:`risk.features.aggregates`) are this relation, stored once.
    """
    join = f"JOIN {students} s ON s.student_key = e.student_key" if students else ""
    bound = f" AND c.back <= {reach}" if reach else ""
    terms = f"({sql_text(as_of.term)}, {sql_text(as_of.previous_term)})"
    return f"""
        SELECT e.student_key, c.back, coalesce(a.status, 'missing') AS status
        FROM enrollments e {join}
        JOIN {calendar} c ON c.school_id = e.school_id AND c.term = e.term{bound}
        LEFT JOIN attendance_daily a ON a.student_key = e.student_key AND a.date = c.date
             AND a.date <= {as_of.sql} AND a.term IN {terms}
        WHERE e.term = {sql_text(as_of.previous_term)}
    """


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
