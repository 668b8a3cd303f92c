"""Area summaries: class counts per school, district, province, region and the nation.

A summary frame has one row per area (shape (n_areas, 9)): ``level`` (one of
:data:`SUMMARY_LEVELS`), ``area_code`` (school id, district or province code,
region name, or ``"TH"`` for the nation), ``students``, ``normal``, ``at_risk``,
``problem`` (counts), ``flagged_rate`` ((at_risk + problem) / students, 0..1), and
``at_risk_by_rule``, ``problem_by_rule``: how many of the at-risk and problem
students a class policy rule raised (``scores.raised_by``), not the model (issue 28).
A frame without the two rule counts (built before rule marks) stores them as NULL;
they read back as 0, as do the rows of runs stored before rule marks: then the
model's class stood for every student.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import delete, select

from risk.store.bulk import check_frame, insert_frame
from risk.store.db import Store, StoreError
from risk.store.models import SUMMARY_LEVELS, AreaSummary

__all__ = ["SUMMARY_COLUMNS", "summaries", "write_summaries"]

SUMMARY_COLUMNS: tuple[str, ...] = (
    "level", "area_code", "students", "normal", "at_risk", "problem", "flagged_rate",
    "at_risk_by_rule", "problem_by_rule",
)  # fmt: skip
RULE_COUNTS = ("at_risk_by_rule", "problem_by_rule")


def write_summaries(store: Store, run_id: str, frame: pd.DataFrame) -> int:
    """Store the run's summaries, replacing any written before for the run; returns the row count.

    Raises
    ------
    StoreError
        When a column is missing or a level is unknown.
    """
    required = [c for c in SUMMARY_COLUMNS if c not in RULE_COUNTS]
    check_frame(frame, "summaries", required, "level", SUMMARY_LEVELS, "Summary level")
    table = AreaSummary.__table__
    with store.writing(f"the summaries of run {run_id}") as conn:
        conn.execute(delete(table).where(table.c.run_id == run_id))
        return insert_frame(conn, table, frame[[c for c in SUMMARY_COLUMNS if c in frame.columns]],
                            {"run_id": run_id})


def summaries(store: Store, run_id: str, level: str) -> pd.DataFrame:
    """The run's summaries at one level, by area code (columns: :data:`SUMMARY_COLUMNS`)."""
    if level not in SUMMARY_LEVELS:
        raise StoreError(f"Summary level {level!r} is not one of {', '.join(SUMMARY_LEVELS)}.")
    t = AreaSummary.__table__.c
    stmt = (
        select(*(t[c] for c in SUMMARY_COLUMNS))
        .where(t.run_id == run_id, t.level == level)
        .order_by(t.area_code)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=list(SUMMARY_COLUMNS))
    for column in RULE_COUNTS:  # NULL: a run stored before rule marks, where no rule raised a class
        frame[column] = frame[column].fillna(0).astype("int64")
    return frame
