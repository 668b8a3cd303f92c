"""School context: the context reasons of each school in a run, kept once per school (issue 28).

Context features (grade, transition year, the school's and district's past dropout
rates) are about the school, not the child, so they never appear in a child's list of
reasons. The batch scorer counts, bucket by bucket, how many of each school's
explained students each context reason pushed up; a teacher's page and the term
report read it back once per school. A frame to write has one row per (school, code)
of a bucket: ``school_id``, ``code``, ``students`` (int), ``en``, ``th``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection, delete, func, select

from risk.store.bulk import insert_frame
from risk.store.db import Store
from risk.store.models import SchoolContext

__all__ = ["ContextLine", "forget_bucket_context", "school_context", "write_bucket_context"]

CONTEXT_COLUMNS = ("school_id", "code", "students", "en", "th")


@dataclass(frozen=True, slots=True)
class ContextLine:
    """One context reason of a school: its code, texts, and how many explained students it applied to."""

    code: str
    en: str
    th: str
    students: int


def forget_bucket_context(conn: Connection, run_id: str, bucket: int) -> None:
    """Delete a bucket's context rows, so a bucket written again is counted once."""
    table = SchoolContext.__table__
    conn.execute(delete(table).where(table.c.run_id == run_id, table.c.bucket == bucket))


def write_bucket_context(conn: Connection, run_id: str, bucket: int, frame: pd.DataFrame) -> int:
    """Replace one bucket's context rows inside the caller's transaction; returns the rows written."""
    missing = [c for c in CONTEXT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"school context frame lacks columns {', '.join(missing)}")
    forget_bucket_context(conn, run_id, bucket)
    return insert_frame(conn, SchoolContext.__table__, frame[list(CONTEXT_COLUMNS)],
                        {"run_id": run_id, "bucket": bucket})


def school_context(store: Store, run_id: str, school_id: str) -> list[ContextLine]:
    """The school's context reasons in a run, the most widely applying first (summed over buckets)."""
    table = SchoolContext.__table__
    students = func.sum(table.c.students).label("students")
    query = (select(table.c.code, func.min(table.c.en), func.min(table.c.th), students)
             .where(table.c.run_id == run_id, table.c.school_id == school_id)
             .group_by(table.c.code).order_by(students.desc(), table.c.code))
    with store.engine.connect() as conn:
        return [ContextLine(code, en, th, int(n)) for code, en, th, n in conn.execute(query)]
