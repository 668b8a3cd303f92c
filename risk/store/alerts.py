"""Alerts for schools, and what the schools did about them.

An alert frame has one row per alert (shape (n_alerts, ~16)): ``student_key``,
``school_id``, ``as_of``, ``kind`` (one of :data:`ALERT_KINDS`), the previous and
current class (None where the student has none), ``probability``, the display
hint and reasons and suggested actions as lists of text, and ``raised_by``: the
class policy rule (``exam_line``) that set the current class above the model's, copied
from the score, or None when the model's class stands. A teacher must see a
rule-flagged child apart from a model-flagged one, so the mark goes wherever the alert
goes; it is updated with the alert, and an acknowledged alert keeps the mark it was
acknowledged with. (School context is about the school, not the child: it is no part
of an alert, see :mod:`risk.store.context`.) The store adds the run, its term, the
times and the status.

An alert is one per student, term and ``as_of`` (DESIGN.md "Reasons, roles and
alerts"). Scoring a date again, by any run or model version, meets the alerts
already stored for that date:

- an open (or withdrawn) alert is updated in place, keeping its id, and is open;
- an acknowledged alert stays as it is, acknowledgement and all, unless the
  child's situation got worse (:func:`severity`): then a new open alert is made
  that names it in ``supersedes_alert_id``, and the old one is marked
  ``superseded_at`` (still acknowledged);
- an open alert the new scoring no longer supports is ``withdrawn``, not deleted;
  an acknowledged one stays, as the school's record;
- a student with no alert of that date yet gets a new open one.

The counts of each outcome are returned and kept with the run (``alerts`` in
:func:`risk.store.runs.run_record`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import pandas as pd
from sqlalchemy import Connection, func, select, update

from risk.store.actions import check_codes
from risk.store.bulk import check_frame, insert_frame, update_frame
from risk.store.db import Store, StoreError
from risk.store.models import ALERT_KINDS, Acknowledgement, Alert, AlertAction, ScoringRun
from risk.store.pilot import wait_listed_now
from risk.store.runs import utc_now
from risk.store.scores import check_id_hints, decode_lists

__all__ = ["ALERT_OUTCOMES", "AcknowledgementDateError", "acknowledge", "alert_counts", "open_alerts", "severity",
           "write_alerts"]

# Columns the store fills in itself; an alert frame brings the others.
STORE_COLUMNS = ("id", "run_id", "term", "created_at", "status", "updated_at", "supersedes_alert_id", "superseded_at")
ALERT_COLUMNS: tuple[str, ...] = tuple(c.name for c in Alert.__table__.columns if c.name not in STORE_COLUMNS)
ALERT_OUTCOMES = ("new", "updated", "kept_acknowledged", "reraised", "withdrawn")
# How serious the situation an alert describes is: leaving the register is what the
# whole system exists to prevent, so it ranks above any class.
SEVERITY = {None: 0, "normal": 1, "at_risk": 2, "problem": 3}
LEFT_REGISTER_SEVERITY = 4
# Ids per statement when withdrawing or superseding (SQLite allows 32,766 parameters).
ID_CHUNK = 10_000


class AcknowledgementDateError(StoreError):
    """An acknowledgement's date is before its alert's date or after today."""


def severity(kind: pd.Series, current_class: pd.Series) -> pd.Series:
    """0..4 per alert: its current class (normal 1, at-risk 2, problem 3), or 4 for a child who left the register."""
    ranks = current_class.map(lambda c: SEVERITY.get(None if pd.isna(c) else c, 0)).astype("int64")
    return ranks.where(kind != "left_register", LEFT_REGISTER_SEVERITY)


def write_alerts(store: Store, run_id: str, frame: pd.DataFrame) -> dict[str, int]:
    """Store the run's alerts, one per student at the run's term and ``as_of``; returns counts by outcome.

    The outcomes (:data:`ALERT_OUTCOMES`) are described in the module docstring;
    they are also kept with the run as JSON.

    Raises
    ------
    StoreError
        When the run is unknown, a column is missing, a kind is unknown, a hint
        shows a raw ID, a student appears twice, or an alert is dated otherwise
        than the run.
    """
    required = [c.name for c in Alert.__table__.columns if c.name in ALERT_COLUMNS and not c.nullable]
    check_frame(frame, "alerts", required, "kind", ALERT_KINDS, "Alert kind")
    if "id_hint" in frame:
        check_id_hints(frame["id_hint"])
    twice = frame["student_key"][frame["student_key"].duplicated()]
    if len(twice):
        raise StoreError(f"Student {twice.iloc[0]} has two alerts in one run; an alert is one per student and date.")
    with store.writing(f"the alerts of run {run_id}") as conn:
        _hold_other_writers(conn, run_id)
        term, as_of = _run_date(conn, run_id)
        dates = set(pd.to_datetime(frame["as_of"]).dt.date)
        if dates - {as_of}:
            raise StoreError(f"Run {run_id} scored {as_of}, but its alerts are dated {min(dates - {as_of})}.")
        counts = _merge_alerts(conn, run_id, term, as_of, frame)
        conn.execute(update(ScoringRun).where(ScoringRun.run_id == run_id).values(alerts=json.dumps(counts)))
    return counts


def _hold_other_writers(conn: Connection, run_id: str) -> None:
    """Keep acknowledgements and other runs from changing alerts until this transaction ends.

    Otherwise an acknowledgement made between reading the date's alerts and
    rewriting them would be overwritten as open, and two runs of one date could
    both insert. Reads (the service's lists) go on meanwhile.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE alerts IN EXCLUSIVE MODE")
    # On SQLite the transaction's first write takes the database's write lock.
    conn.execute(update(ScoringRun).where(ScoringRun.run_id == run_id).values(alerts=None))


def _run_date(conn: Connection, run_id: str) -> tuple[str, dt.date]:
    row = conn.execute(select(ScoringRun.term, ScoringRun.as_of).where(ScoringRun.run_id == run_id)).first()
    if row is None:
        raise StoreError(f"There is no scoring run {run_id} in the store.")
    return row[0], row[1]


def _merge_alerts(conn: Connection, run_id: str, term: str, as_of: dt.date, frame: pd.DataFrame) -> dict[str, int]:
    """Meet the date's stored alerts with the run's (see the module docstring); returns counts by outcome."""
    a = Alert.__table__
    stored = conn.execute(select(a.c.id, a.c.student_key, a.c.status, a.c.kind, a.c.current_class)
                          .where(a.c.term == term, a.c.as_of == as_of, a.c.superseded_at.is_(None)))
    existing = pd.DataFrame.from_records([tuple(r) for r in stored], columns=["alert_id", "student_key", "status",
                                                                               "old_kind", "old_class"])
    existing["student_key"] = existing["student_key"].astype("int64")
    columns = [c for c in ALERT_COLUMNS if c in frame.columns]
    rows = frame[columns].astype({"student_key": "int64"}).merge(existing, on="student_key", how="outer",
                                                                  indicator=True)
    ours, theirs = rows["_merge"] != "right_only", rows["_merge"] != "left_only"
    acked = rows["status"] == "acknowledged"
    current = rows["current_class"] if "current_class" in rows else pd.Series(None, index=rows.index, dtype=object)
    worse = severity(rows["kind"], current) > severity(rows["old_kind"], rows["old_class"])
    new = rows[ours & ~theirs]
    updated = rows[ours & theirs & rows["status"].isin(["open", "withdrawn"])]
    reraised = rows[ours & theirs & acked & worse]
    withdrawn = rows[~ours & (rows["status"] == "open")]
    now = utc_now()
    constants = {"run_id": run_id, "term": term, "created_at": now, "status": "open"}
    # In the unique index's order (term and as_of are one value here): appending beats inserting at random.
    insert_frame(conn, a, new[columns].sort_values("student_key"), constants)
    _set_by_ids(conn, reraised["alert_id"], superseded_at=now)
    insert_frame(conn, a, reraised[columns].assign(supersedes_alert_id=reraised["alert_id"].astype("int64")),
                 constants)
    _update_alerts(conn, updated[[*columns, "alert_id"]], run_id, now)
    _set_by_ids(conn, withdrawn["alert_id"], status="withdrawn", run_id=run_id, updated_at=now)
    return {"new": len(new), "updated": len(updated), "kept_acknowledged": int((theirs & acked).sum()) - len(reraised),
            "reraised": len(reraised), "withdrawn": len(withdrawn)}


def _update_alerts(conn: Connection, rows: pd.DataFrame, run_id: str, now: dt.datetime) -> None:
    """Rewrite stored alerts (``alert_id``) with the run's values, open again, keeping their ids."""
    values = rows.drop(columns=["student_key", "as_of"]).rename(columns={"alert_id": "id"})
    values = values.astype({"id": "int64"}).sort_values("id")  # in the table's order: fewer pages touched
    update_frame(conn, Alert.__table__, values, "id", {"run_id": run_id, "updated_at": now, "status": "open"})


def _set_by_ids(conn: Connection, ids: pd.Series, **values: object) -> None:
    a = Alert.__table__
    ids = [int(i) for i in ids]
    for start in range(0, len(ids), ID_CHUNK):
        conn.execute(update(a).where(a.c.id.in_(ids[start:start + ID_CHUNK])).values(**values))


def open_alerts(store: Store, school_id: str) -> pd.DataFrame:
    """The school's open alerts, newest first; none while the school is on its pilot term's wait-list.

    The wait-list school's alerts are stored all the same (both arms are scored), and are
    listed again once the next term is scored (:mod:`risk.store.pilot`).

    Columns: id, run_id, term, created_at, updated_at, supersedes_alert_id and the alert columns.
    """
    a = Alert.__table__.c
    stmt = (
        select(a.id, a.run_id, a.term, a.created_at, a.updated_at, a.supersedes_alert_id,
               *(a[c] for c in ALERT_COLUMNS))
        .where(a.school_id == school_id, a.status == "open", ~wait_listed_now(a.school_id))
        .order_by(a.as_of.desc(), a.id.desc())
    )
    with store.engine.connect() as conn:
        result = conn.execute(stmt)
        frame = pd.DataFrame.from_records([tuple(row) for row in result], columns=list(result.keys()))
    return decode_lists(frame)


def acknowledge(
    store: Store,
    alert_id: int,
    action_taken: str | None,
    acted_on: dt.date,
    recorded_by: str | None = None,
    *,
    codes: Sequence[str] = (),
    source: str = "api",
) -> int:
    """Record what was done about an alert and mark it ``acknowledged``; returns the acknowledgement id.

    What was done is said in words (``action_taken``), as action codes (``codes``, one
    ``alert_actions`` row each, carrying the words as their note), or both. ``acted_on`` is
    the day it was done: on or after the alert's ``as_of`` and not after today. The codes
    are checked for form here; that they are configured is the caller's check (the store
    knows no config). ``source`` is 'api' or 'page'.

    Raises
    ------
    AcknowledgementDateError
        When ``acted_on`` lies before the alert's date or after today.
    StoreError
        When there is no alert ``alert_id``, it is not open, or neither words nor codes say what was done.
    """
    note = action_taken.strip() if action_taken and action_taken.strip() else None
    codes = check_codes(codes)
    if source not in ("api", "page"):
        raise StoreError(f"An acknowledgement comes from the API or the teacher page, not {source!r}.")
    if note is None and not codes:
        raise StoreError("Say what was done about the alert: action_taken is empty and no action code is given.")
    with store.session() as session:
        alert = session.get(Alert, int(alert_id), with_for_update=True)
        if alert is None:
            raise StoreError(f"There is no alert {alert_id} in the store.")
        if alert.status != "open":
            raise StoreError(f"Alert {alert_id} is {alert.status}, not open: there is nothing to acknowledge.")
        _check_acted_on(acted_on, alert.as_of)
        alert.status = "acknowledged"
        now = utc_now()
        record = Acknowledgement(alert_id=alert.id, action_taken=note, acted_on=acted_on, recorded_at=now,
                                 recorded_by=recorded_by)
        session.add(record)
        session.flush()
        session.add_all(AlertAction(alert_id=alert.id, acknowledgement_id=record.id, student_key=alert.student_key,
                                    school_id=alert.school_id, code=code, acted_on=acted_on, note=note,
                                    recorded_by=recorded_by, recorded_at=now, source=source) for code in codes)
        return record.id


def _check_acted_on(acted_on: dt.date, as_of: dt.date) -> None:
    """Refuse a date before the alert existed or in the future (a typo such as 1900 or 5338)."""
    today = dt.date.today()
    if not as_of <= acted_on <= today:
        raise AcknowledgementDateError(
            f"The date it was done, {acted_on.isoformat()}, must lie between the alert's date "
            f"{as_of.isoformat()} and today {today.isoformat()}.")


def alert_counts(store: Store, run_id: str, *, raised_only: bool = False) -> dict[str, int]:
    """How many alerts of each kind stand at the run's term and date: open or acknowledged, not withdrawn or superseded.

    Alerts are one per student and date, so a date scored again shows the same
    counts whichever of its runs is asked about. ``raised_only`` counts only those
    whose class a policy rule set (``raised_by`` not NULL), which the term report shows apart.
    """
    alert, run = Alert.__table__, ScoringRun.__table__
    date = select(run.c.term, run.c.as_of).where(run.c.run_id == run_id).subquery()
    stmt = (select(alert.c.kind, func.count())
            .join(date, (alert.c.term == date.c.term) & (alert.c.as_of == date.c.as_of))
            .where(alert.c.status != "withdrawn", alert.c.superseded_at.is_(None))
            .group_by(alert.c.kind))
    if raised_only:
        stmt = stmt.where(alert.c.raised_by.is_not(None))
    with store.engine.connect() as conn:
        return {kind: int(n) for kind, n in conn.execute(stmt)}
