"""Area summaries count rule-raised students apart: of each area's at-risk and problem students, how many a rule raised.

Issue 28: a student a class policy rule (the 80% attendance exam line) raised is marked
wherever a class is shown, the area counts too. Hand-made score parts, counts by eye.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from risk.scoring.summaries import area_summaries


def part(path: Path, rows: list[tuple[str, str, str | None]], marks: bool = True) -> Path:
    """A score part of (school_id, risk_class, raised_by) rows in district 4001, province 40, the northeast."""
    frame = pd.DataFrame(rows, columns=["school_id", "risk_class", "raised_by"]).assign(
        district_code="4001", province_code="40", region="northeast")
    (frame if marks else frame.drop(columns="raised_by")).to_parquet(path)
    return path


def counts(frame: pd.DataFrame, level: str) -> dict[str, tuple[int, int, int, int]]:
    rows = frame[frame["level"] == level]
    return {r.area_code: (r.at_risk, r.at_risk_by_rule, r.problem, r.problem_by_rule) for r in rows.itertuples()}


def test_each_area_counts_the_flagged_students_a_rule_raised(tmp_path):
    files = [part(tmp_path / "bucket=0.parquet", [
        ("A", "normal", None), ("A", "at_risk", "exam_line"), ("A", "at_risk", None), ("A", "problem", "exam_line"),
    ]), part(tmp_path / "bucket=1.parquet", [("B", "at_risk", "exam_line"), ("B", "problem", None)])]
    frame = area_summaries(files)
    # (at_risk, of them by a rule, problem, of them by a rule)
    assert counts(frame, "school") == {"A": (2, 1, 1, 1), "B": (1, 1, 1, 0)}
    assert counts(frame, "nation") == {"TH": (3, 2, 2, 1)}
    assert counts(frame, "province") == {"40": (3, 2, 2, 1)} and counts(frame, "region") == {"northeast": (3, 2, 2, 1)}
    assert frame.loc[frame["level"] == "nation", "flagged_rate"].item() == 5 / 6


def test_a_bucket_where_no_rule_fired_or_written_before_rule_marks_counts_none(tmp_path):
    none_fired = part(tmp_path / "bucket=0.parquet", [("A", "at_risk", None), ("A", "problem", None)])
    before_marks = part(tmp_path / "bucket=1.parquet", [("B", "at_risk", "exam_line")], marks=False)
    assert counts(area_summaries([before_marks]), "nation") == {"TH": (1, 0, 0, 0)}
    assert counts(area_summaries([none_fired, before_marks]), "school") == {"A": (1, 0, 1, 0), "B": (1, 0, 0, 0)}
