"""Enrollment history and the student's context at ``as_of``.

Parts:

- ``cohort`` (made by the builder): one row per student enrolled in the term of
  ``as_of`` who had not left by then; columns of that term's enrollment.
- ``context``: the cohort joined to its school (the version in force at ``as_of``: a
  school that grew is small before its new version's ``valid_from`` and medium after)
  and to the past dropout rates of school and district (``context_rates``, computed
  from earlier terms only).
- ``enr_history``: every enrollment of a cohort student up to this term.

Compute kinds:

- ``code`` over a context column (``column``: grade_level, sex, nationality,
  disability, size, area, region, affiliation): its position in ``categories``
- ``in``: 1 when ``column`` is one of ``values`` (e.g. grade_level in P6, M3: a transition year)
- ``age_years``: age at ``as_of``; ``over_age_years``: age at term start minus the usual
  age of the grade (P1 at 6, M1 at 12)
- ``rate``: ``school`` or ``district`` past dropout rate (``column``: school_rate, district_rate)
- ``repeated_grade``: 1 when the student was in the same grade in an earlier academic year
- ``schools_attended``: distinct schools over the history; ``terms_enrolled``: terms on record
- ``year_end``: 1 in semester 2, the term that ends the school year (the P6 and M3
  transitions happen after it)
"""

from __future__ import annotations

from risk.data.contract import GRADE_LEVELS, term_start
from risk.features.base import AsOf, Part, sql_list, sql_text
from risk.features.catalog import Catalog, FeatureSpec
from risk.features.kinds import CODE_COLUMNS, ENROLLMENT_KINDS

__all__ = ["CODE_COLUMNS", "KINDS", "LEFT", "USUAL_AGE", "cohort_sql", "expression", "parts"]

KINDS = ENROLLMENT_KINDS  # checked in risk.features.kinds, as the catalog loads
# The usual age at the start of each grade: K1 at 3 … P1 at 6 … M6 at 17.
USUAL_AGE = {grade: 3 + i for i, grade in enumerate(GRADE_LEVELS)}
# Statuses that take a student out of the school's cohort once dated on or before as_of.
# ``graduated`` is not among them: a P6 or M3 graduate is exactly who may not start M1 or M4.
LEFT = ("dropped_out", "deceased", "transferred")


def cohort_sql(as_of: AsOf) -> str:
    """Students enrolled in the term of ``as_of`` who had not left by then.

    A status counts only once it is known: a departure dated after ``as_of``, or
    not dated at all (known only at term end), does not remove the student.
    Graduates stay: the transition after P6 and M3 is when most students are lost.
    """
    return f"""
        SELECT student_key, term, school_id, grade_level, sex, birth_date, nationality, disability
        FROM enrollments
        WHERE term = {sql_text(as_of.term)}
          AND NOT (status IN {LEFT} AND status_date IS NOT NULL AND status_date <= {as_of.sql})
    """


def parts(as_of: AsOf, catalog: Catalog) -> list[Part]:
    usual = "map(" + sql_list(list(USUAL_AGE)) + ", [" + ", ".join(map(str, USUAL_AGE.values())) + "])"
    context = Part("context", f"""
        SELECT c.student_key, c.grade_level, c.sex, c.nationality, c.disability,
               s.size, s.area, s.region, s.affiliation,
               date_diff('day', c.birth_date, {as_of.sql}) / 365.25 AS age_years,
               date_diff('day', c.birth_date, {_term_start(as_of)}) / 365.25 - {usual}[c.grade_level] AS over_age_years,
               r.school_rate, r.district_rate
        FROM cohort c
        LEFT JOIN schools s USING (school_id)
        LEFT JOIN context_rates r ON r.school_id = c.school_id
    """)
    history = Part("enr_history", f"""
        SELECT e.student_key, e.term, e.school_id, e.grade_level,
               e.grade_level = c.grade_level AND substr(e.term, 1, 4) < substr(c.term, 1, 4) AS same_grade_before
        FROM enrollments e JOIN cohort c USING (student_key)
        WHERE e.term <= {sql_text(as_of.term)}
    """)
    return [context, history]


def _term_start(as_of: AsOf) -> str:
    return f"DATE '{term_start(as_of.term).isoformat()}'"


def expression(spec: FeatureSpec, as_of: AsOf) -> tuple[str, str]:
    c = spec.compute
    kind = c["kind"]
    if kind == "code":
        return "context", f"CAST(list_position({sql_list(spec.categories or [])}, any_value({c['column']})) - 1 AS DOUBLE)"
    if kind == "in":
        return "context", f"CAST(any_value({c['column']}) IN ({sql_list(c['values'])[1:-1]}) AS DOUBLE)"
    if kind in ("age_years", "over_age_years"):
        return "context", f"any_value({kind})"
    if kind == "rate":
        return "context", f"any_value({c['column']})"
    if kind == "year_end":
        return "context", f"CAST(any_value({int(as_of.term.endswith('-2'))}) AS DOUBLE)"
    if kind == "repeated_grade":
        return "enr_history", "CAST(bool_or(same_grade_before) AS DOUBLE)"
    if kind == "schools_attended":
        return "enr_history", "CAST(count(DISTINCT school_id) AS DOUBLE)"
    return "enr_history", "CAST(count(DISTINCT term) AS DOUBLE)"
