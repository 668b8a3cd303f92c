"""Grade features, from grades entered on or before ``as_of`` (``recorded_on``).

Grades are entered after a term ends, so in the middle of a term the latest
graded term is usually the previous one. Per graded term: ``gpa`` (credit-weighted,
numeric grades only), ``n_zero`` (grade 0), ``n_incomplete`` (ร), ``n_not_eligible``
(มส: attendance under 80%), ``n_activity_failed`` (มผ), ``failed_credits``
(credits graded 0, ร or มส), ``n_subjects``.

Compute kinds: ``term_measure`` (``measure``, ``term_rank``: 1 = latest graded term,
2 = the one before) and ``change`` (``measure`` at rank 1 minus rank 2).
"""

from __future__ import annotations

from risk.features.base import AsOf, Part, sql_text
from risk.features.catalog import Catalog, FeatureSpec
from risk.features.kinds import GRADE_KINDS, GRADE_MEASURES

__all__ = ["KINDS", "MEASURES", "expression", "parts"]

KINDS = GRADE_KINDS  # checked in risk.features.kinds, as the catalog loads
MEASURES = GRADE_MEASURES


def parts(as_of: AsOf, catalog: Catalog) -> list[Part]:
    return [Part("grade_term", f"""
        SELECT student_key, term,
               sum(credits * TRY_CAST(grade AS DOUBLE))
                 / nullif(sum(credits) FILTER (WHERE TRY_CAST(grade AS DOUBLE) IS NOT NULL), 0) AS gpa,
               count(*) FILTER (WHERE grade = '0') AS n_zero,
               count(*) FILTER (WHERE grade = 'ร') AS n_incomplete,
               count(*) FILTER (WHERE grade = 'มส') AS n_not_eligible,
               count(*) FILTER (WHERE grade = 'มผ') AS n_activity_failed,
               coalesce(sum(credits) FILTER (WHERE grade IN ('0', 'ร', 'มส')), 0) AS failed_credits,
               count(*) AS n_subjects,
               dense_rank() OVER (PARTITION BY student_key ORDER BY term DESC) AS term_rank
        FROM grades
        WHERE recorded_on <= {as_of.sql} AND term <= {sql_text(as_of.term)}
          AND student_key IN (SELECT student_key FROM cohort)
        GROUP BY student_key, term
    """)]


def expression(spec: FeatureSpec, as_of: AsOf) -> tuple[str, str]:
    c = spec.compute
    at = lambda rank: f"max(CAST({c['measure']} AS DOUBLE)) FILTER (WHERE term_rank = {rank})"  # noqa: E731
    if c["kind"] == "term_measure":
        return "grade_term", at(c["term_rank"])
    return "grade_term", f"{at(1)} - {at(2)}"
