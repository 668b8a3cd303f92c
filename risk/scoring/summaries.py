"""Counts and rates of each class by school, district, province, region and nation."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

__all__ = ["LEVELS", "area_summaries", "class_mix_by_grade"]

# level -> the score column that names the area (the nation is one area, "TH").
LEVELS = {"school": "school_id", "district": "district_code", "province": "province_code", "region": "region",
          "nation": "'TH'"}


def area_summaries(files: list[Path]) -> pd.DataFrame:
    """One row per (level, area): students, normal, at_risk, problem, the flagged rate (at-risk + problem),
    and at_risk_by_rule, problem_by_rule: of those, how many a class policy rule raised (``raised_by`` set).

    A teacher reads a rule-raised child apart from a model-flagged one (issue 28), so an area's
    counts say how many of its flagged students are there only because of a rule.
    """
    # Parts written before rule marks existed have no raised_by: the model's class stood for each of them.
    marked = any("raised_by" in pq.read_schema(f).names for f in files)
    scores = f"(SELECT *{'' if marked else ', NULL::VARCHAR AS raised_by'} " \
             f"FROM read_parquet($files, union_by_name = true))"
    con = duckdb.connect()
    parts = []
    for level, column in LEVELS.items():
        parts.append(con.execute(f"""
            SELECT '{level}' AS level, coalesce(CAST({column} AS VARCHAR), 'unknown') AS area_code,
                   count(*) AS students,
                   count(*) FILTER (WHERE risk_class = 'normal') AS normal,
                   count(*) FILTER (WHERE risk_class = 'at_risk') AS at_risk,
                   count(*) FILTER (WHERE risk_class = 'problem') AS problem,
                   count(*) FILTER (WHERE risk_class = 'at_risk' AND raised_by IS NOT NULL) AS at_risk_by_rule,
                   count(*) FILTER (WHERE risk_class = 'problem' AND raised_by IS NOT NULL) AS problem_by_rule
            FROM {scores} GROUP BY ALL ORDER BY area_code""", {"files": [str(f) for f in files]}).df())
    frame = pd.concat(parts, ignore_index=True)
    frame["flagged_rate"] = (frame["at_risk"] + frame["problem"]) / frame["students"]
    return frame


def class_mix_by_grade(files: list[Path]) -> pd.DataFrame:
    """grade_level, normal, at_risk, problem (counts)."""
    return duckdb.connect().execute("""
        SELECT grade_level,
               count(*) FILTER (WHERE risk_class = 'normal') AS normal,
               count(*) FILTER (WHERE risk_class = 'at_risk') AS at_risk,
               count(*) FILTER (WHERE risk_class = 'problem') AS problem
        FROM read_parquet($files) GROUP BY grade_level ORDER BY grade_level""",
        {"files": [str(f) for f in files]}).df()
