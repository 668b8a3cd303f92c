"""Dropout labels: what happened to each student after a term (DESIGN.md, "Label").

A student enrolled in a term who is enrolled nowhere in the following term
dropped out, whether the school recorded ``dropped_out`` or the child is simply
gone. Compulsory school runs to M3: finishing P6 and not starting M1 is dropout,
and so, by a switch that is on by default, is finishing M3 and not going on.
Finishing M6 is not dropout, nor is death. A transfer out that is found nowhere
next term is unknown: left out of the labels and counted.
"""

from __future__ import annotations

import duckdb
import pandas as pd

# The policy is a settings section, so its model is with the settings (the bottom layer), not here.
from risk.config import LabelPolicy
from risk.data.contract import next_term, parse_term

__all__ = ["LabelPolicy", "OUTCOME_LABEL", "dropout_labels"]

# outcome -> label (1 dropout, 0 not, None unknown / not a case)
OUTCOME_LABEL: dict[str, int | None] = {
    "continued": 0,
    "finished_m6": 0,
    "left": 1,
    "no_m1": 1,
    "no_m4": 1,
    "deceased": None,
    "transfer_unknown": None,
    "no_next_term": None,
}


def dropout_labels(con: duckdb.DuckDBPyConnection, term: str, policy: LabelPolicy) -> pd.DataFrame:
    """Outcome of every student enrolled in ``term``, from a view ``enrollments`` (validated layout).

    Returns
    -------
    labels : DataFrame with ``student_key`` (int64), ``term``, ``outcome`` (a key of
        :data:`OUTCOME_LABEL`) and ``dropped_out`` (nullable Int8: 1, 0 or missing).
    """
    _, semester = parse_term(term)
    year_end = semester == 2
    frame = con.execute(
        """
        WITH cur AS (SELECT student_key, grade_level, status FROM enrollments WHERE term = $term),
             nxt AS (SELECT DISTINCT student_key FROM enrollments WHERE term = $next)
        SELECT cur.student_key, $term AS term,
          CASE WHEN (SELECT count(*) FROM nxt) = 0 THEN 'no_next_term'
               WHEN nxt.student_key IS NOT NULL THEN 'continued'
               WHEN cur.status = 'deceased' THEN 'deceased'
               WHEN $year_end AND cur.grade_level = 'M6' THEN 'finished_m6'
               WHEN cur.status = 'transferred' THEN 'transfer_unknown'
               WHEN $year_end AND cur.grade_level = 'P6' THEN 'no_m1'
               WHEN $year_end AND cur.grade_level = 'M3' THEN 'no_m4'
               ELSE 'left' END AS outcome
        FROM cur LEFT JOIN nxt USING (student_key)
        """,
        {"term": term, "next": next_term(term), "year_end": year_end},
    ).df()
    mapping = dict(OUTCOME_LABEL)
    if not policy.m3_non_continuation_is_dropout:
        mapping["no_m4"] = 0
    frame["dropped_out"] = frame["outcome"].map(mapping).astype("Int8")
    return frame
