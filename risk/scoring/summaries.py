"""Counts and rates of each class by school, district, province, region and nation."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

__all__ = ["LEVELS", "area_summaries", "class_mix_by_grade"]

# level -> the score column that names the area (the nation is one area, "TH").
LEVELS = {"school": "school_id", "district": "district_code", "province": "province_code", "region": "region",
          "nation": "'TH'"}


def area_summaries(files: list[Path]) -> pd.DataFrame:
    """One row per (level, area): students, normal, at_risk, problem and the flagged rate (at-risk + problem)."""
    con = duckdb.connect()
    parts = []
    for level, column in LEVELS.items():
        parts.append(con.execute(f"""
            SELECT '{level}' AS level, coalesce(CAST({column} AS VARCHAR), 'unknown') AS area_code,
                   count(*) AS students,
                   count(*) FILTER (WHERE risk_class = 'normal') AS normal,
                   count(*) FILTER (WHERE risk_class = 'at_risk') AS at_risk,
                   count(*) FILTER (WHERE risk_class = 'problem') AS problem
            FROM read_parquet($files) GROUP BY ALL ORDER BY area_code""", {"files": [str(f) for f in files]}).df())
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
