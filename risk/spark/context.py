"""Past dropout rates of each school and district on Spark, as :mod:`risk.features.context_rates` computes them.

The labels of each of the ``history_terms`` terms before ``as_of``'s follow
:func:`risk.labels.dropout_labels` (the outcome rules, and :data:`risk.labels.OUTCOME_LABEL`
for the label of each outcome); the rates are the same smoothed shares:
rate = (dropouts + m × prior) / (students + m), a school toward its district, a
district toward the nation. The parity tests hold both to DuckDB's numbers.
"""

from __future__ import annotations

from risk.config import Settings
from risk.data.contract import next_term, parse_term, previous_term
from risk.features.base import AsOf, sql_text
from risk.labels import OUTCOME_LABEL

__all__ = ["context_rates_sql", "labels_sql", "view_context_rates"]


def labels_sql(term: str, *, m3_is_dropout: bool) -> str:
    """Spark SQL: ``student_key``, ``term``, ``dropped_out`` (1.0, 0.0 or NULL) of every student enrolled in ``term``."""
    year_end = "true" if parse_term(term)[1] == 2 else "false"
    mapping = dict(OUTCOME_LABEL)
    if not m3_is_dropout:
        mapping["no_m4"] = 0
    label = " ".join(f"WHEN {sql_text(k)} THEN {'NULL' if v is None else f'{float(v)}D'}" for k, v in mapping.items())
    return f"""
        SELECT student_key, term, CASE outcome {label} END AS dropped_out FROM (
        SELECT cur.student_key, {sql_text(term)} AS term,
          CASE WHEN (SELECT count(*) FROM enrollments WHERE term = {sql_text(next_term(term))}) = 0 THEN 'no_next_term'
               WHEN nxt.student_key IS NOT NULL THEN 'continued'
               WHEN cur.status = 'deceased' THEN 'deceased'
               WHEN {year_end} AND cur.grade_level = 'M6' THEN 'finished_m6'
               WHEN cur.status = 'transferred' THEN 'transfer_unknown'
               WHEN {year_end} AND cur.grade_level = 'P6' THEN 'no_m1'
               WHEN {year_end} AND cur.grade_level = 'M3' THEN 'no_m4'
               ELSE 'left' END AS outcome
        FROM (SELECT student_key, grade_level, status FROM enrollments WHERE term = {sql_text(term)}) cur
        LEFT JOIN (SELECT DISTINCT student_key FROM enrollments WHERE term = {sql_text(next_term(term))}) nxt
          ON nxt.student_key = cur.student_key)
    """


def context_rates_sql(labels: str, prior_students: float) -> str:
    """Spark SQL over the view ``labels`` (known labels only), ``enrollments`` and ``schools``:
    ``school_id``, ``school_rate``, ``district_rate`` (NULL rates when no label is known)."""
    m = f"{float(prior_students)!r}D"
    return f"""
        WITH lab AS (
            SELECT e.school_id, s.district_code, l.dropped_out
            FROM {labels} l JOIN enrollments e ON e.student_key = l.student_key AND e.term = l.term
            JOIN schools s ON s.school_id = e.school_id),
        national AS (SELECT coalesce(avg(dropped_out), 0D) AS rate FROM lab),
        district AS (
            SELECT district_code, (sum(dropped_out) + {m} * (SELECT rate FROM national))
                                  / (count(*) + {m}) AS district_rate
            FROM lab GROUP BY district_code),
        school AS (SELECT school_id, sum(dropped_out) AS drops, count(*) AS n FROM lab GROUP BY school_id),
        known AS (SELECT count(*) AS n FROM {labels})
        SELECT s.school_id,
               CASE WHEN (SELECT n FROM known) > 0 THEN
               (coalesce(sc.drops, 0D) + {m} * coalesce(d.district_rate, (SELECT rate FROM national)))
                 / (coalesce(sc.n, 0) + {m}) END AS school_rate,
               CASE WHEN (SELECT n FROM known) > 0 THEN
               coalesce(d.district_rate, (SELECT rate FROM national)) END AS district_rate
        FROM schools s LEFT JOIN school sc ON sc.school_id = s.school_id
        LEFT JOIN district d ON d.district_code = s.district_code
    """


def view_context_rates(spark, as_of: AsOf, settings: Settings) -> None:
    """The view ``context_rates`` of ``as_of``'s term, over the session's ``enrollments`` and ``schools`` views."""
    terms, term = [], as_of.term
    for _ in range(settings.features.context_history_terms):
        term = previous_term(term)
        terms.append(term)
    union = " UNION ALL ".join(labels_sql(t, m3_is_dropout=settings.labels.m3_non_continuation_is_dropout)
                               for t in terms)
    spark.sql(f"SELECT * FROM ({union}) WHERE dropped_out IS NOT NULL").createOrReplaceTempView("_risk_labels")
    # Not cached: the feature plan reads it once, and a cached relation is one more plan every later query of the
    # session is matched against.
    spark.sql(context_rates_sql("_risk_labels", settings.features.context_prior_students)).createOrReplaceTempView(
        "context_rates")
