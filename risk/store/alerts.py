"""Alerts for schools, and what the schools did about them.

An alert frame has one row per alert (shape (n_alerts, ~16)): ``student_key``,
``school_id``, ``as_of``, ``kind`` (one of :data:`ALERT_KINDS`), the previous and
current class (None where the student has none), ``probability``, the display
hint and reasons and suggested actions as lists of text. The store adds the
run, the time and the status ``open``.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import delete, exists, func, select

from risk.store.bulk import check_frame, insert_frame
from risk.store.db import Store, StoreError
from risk.store.models import ALERT_KINDS, Acknowledgement, Alert
from risk.store.runs import utc_now
from risk.store.scores import check_id_hints, decode_lists

__all__ = ["acknowledge", "alert_counts", "open_alerts", "write_alerts"]

ALERT_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in Alert.__table__.columns if c.name not in ("id", "run_id", "created_at", "status")
)


def write_alerts(store: Store, run_id: str, frame: pd.DataFrame) -> int:
    """Store the run's alerts as ``open``, replacing any written before for the run; returns the count.

    Raises
    ------
    StoreError
        When a column is missing, a kind is unknown, a hint shows a raw ID, or
        one of the run's earlier alerts was already acknowledged (those are kept
        as the school's record, so the run's alerts are not replaced).
    """
    required = [c.name for c in Alert.__table__.columns if c.name in ALERT_COLUMNS and not c.nullable]
    check_frame(frame, "alerts", required, "kind", ALERT_KINDS, "Alert kind")
    if "id_hint" in frame:
        check_id_hints(frame["id_hint"])
    alert, ack = Alert.__table__, Acknowledgement.__table__
    with store.writing(f"the alerts of run {run_id}") as conn:
        acted = conn.scalar(
            select(exists().where(ack.c.alert_id == alert.c.id, alert.c.run_id == run_id))
        )
        if acted:
            raise StoreError(f"Run {run_id} has acknowledged alerts already; its alerts are not replaced.")
        conn.execute(delete(alert).where(alert.c.run_id == run_id))
        columns = [c for c in ALERT_COLUMNS if c in frame.columns]
        constants = {"run_id": run_id, "created_at": utc_now(), "status": "open"}
        return insert_frame(conn, alert, frame[columns], constants)


def open_alerts(store: Store, school_id: str) -> pd.DataFrame:
    """The school's open alerts, newest first (columns: id, run_id, created_at and the alert columns)."""
    a = Alert.__table__.c
    stmt = (
        select(a.id, a.run_id, a.created_at, *(a[c] for c in ALERT_COLUMNS))
        .where(a.school_id == school_id, a.status == "open")
        .order_by(a.as_of.desc(), a.id.desc())
    )
    with store.engine.connect() as conn:
        result = conn.execute(stmt)
        frame = pd.DataFrame.from_records([tuple(row) for row in result], columns=list(result.keys()))
    return decode_lists(frame)


def acknowledge(
    store: Store,
    alert_id: int,
    action_taken: str,
    acted_on: dt.date,
    recorded_by: str | None = None,
) -> int:
    """Record what was done about an alert and mark it ``acknowledged``; returns the acknowledgement id.

    Raises
    ------
    StoreError
        When there is no alert ``alert_id``, or ``action_taken`` is empty.
    """
    if not action_taken or not action_taken.strip():
        raise StoreError("Say what was done about the alert: action_taken is empty.")
    with store.session() as session:
        alert = session.get(Alert, int(alert_id))
        if alert is None:
            raise StoreError(f"There is no alert {alert_id} in the store.")
        alert.status = "acknowledged"
        record = Acknowledgement(
            alert_id=alert.id,
            action_taken=action_taken.strip(),
            acted_on=acted_on,
            recorded_at=utc_now(),
            recorded_by=recorded_by,
        )
        session.add(record)
        session.flush()
        return record.id


def alert_counts(store: Store, run_id: str) -> dict[str, int]:
    """How many alerts of each kind the run raised."""
    alert = Alert.__table__
    stmt = select(alert.c.kind, func.count()).where(alert.c.run_id == run_id).group_by(alert.c.kind)
    with store.engine.connect() as conn:
        return {kind: int(n) for kind, n in conn.execute(stmt)}
