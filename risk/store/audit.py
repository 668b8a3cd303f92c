"""The audit log: every read of a student's data through the service, by key, pseudonym and time.

An entry names the key (its public id, never its token), the action (``score``,
``student_risk``, ``school_alerts``, ``alert_ack``, ``teacher_page``, or
``refused`` for a key of the wrong role), the student's pseudonym when one student
is concerned, the school when a school is, and a short detail (an alert id, a
count). A read the service refused is kept too: its detail starts ``refused <status>:``
and says the real cause (which the caller was not told). It never holds a raw student ID.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import pandas as pd
from sqlalchemy import insert, select

from risk.store.db import Store
from risk.store.models import AuditEntry
from risk.store.runs import utc_now

__all__ = ["AuditRecord", "audit_entries", "write_audit"]


@dataclass(frozen=True)
class AuditRecord:
    """One entry to write; ``at`` defaults to now (UTC)."""

    key_id: str
    action: str
    student_key: int | None = None
    school_id: str | None = None
    detail: str | None = None
    at: dt.datetime = field(default_factory=utc_now)


def write_audit(store: Store, records: Sequence[AuditRecord]) -> int:
    """Append entries in one transaction; returns how many were written."""
    if not records:
        return 0
    with store.writing(f"{len(records)} audit entries") as conn:
        conn.execute(insert(AuditEntry.__table__), [asdict(r) for r in records])
    return len(records)


def audit_entries(store: Store, *, student_key: int | None = None, key_id: str | None = None,
                  since: dt.datetime | None = None) -> pd.DataFrame:
    """Entries, oldest first, optionally of one pseudonym, one key, or from a time on.

    Returns
    -------
    DataFrame with ``id``, ``at``, ``key_id``, ``action``, ``student_key``, ``school_id``, ``detail``.
    """
    a = AuditEntry.__table__.c
    stmt = select(AuditEntry.__table__).order_by(a.id)
    if student_key is not None:
        stmt = stmt.where(a.student_key == int(student_key))
    if key_id is not None:
        stmt = stmt.where(a.key_id == key_id)
    if since is not None:
        stmt = stmt.where(a.at >= since)
    with store.engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame.from_records([tuple(r) for r in result], columns=list(result.keys()))
