"""Structured actions: what schools did for which students, as action codes (table ``alert_actions``).

An action is one configured code (``home_visit``, ``cct_referral``, ...: ``action_codes`` in
configs/scoring.yaml) taken for one student (pseudonym ``student_key``) of one school on
one day (``acted_on``). Actions come from two places:

- an acknowledgement of an alert (API or teacher page, :func:`risk.store.alerts.acknowledge`),
  which writes one row per code it names;
- actions recorded in another system and brought in by ``risk actions import``: a frame of
  pseudonymised rows (:mod:`risk.data.actions_import`) that :func:`import_actions` links to
  each student's alert when there is one and stores.

Which codes exist is config, which this layer does not read: it checks only their form
(:func:`check_codes`); the service and the import check them against the configuration.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Connection, select

from risk.store.db import Store, StoreError
from risk.store.models import Alert, AlertAction, Score
from risk.store.runs import utc_now

__all__ = ["ACTION_FRAME_COLUMNS", "CODE_PATTERN", "ImportedActions", "check_codes", "import_actions",
           "stored_actions"]

CODE_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}")
# What an imported frame brings: ``row`` (its line in the source file, for the quarantine) and the action.
ACTION_FRAME_COLUMNS = ("row", "student_key", "school_id", "code", "acted_on", "note")
# Student keys per query (SQLite allows 32,766 parameters).
KEY_CHUNK = 10_000


def check_codes(codes: Iterable[str]) -> tuple[str, ...]:
    """The codes once each, in the order given; StoreError naming a code that is not a lower_snake_case word."""
    out: list[str] = []
    for code in codes:
        if not isinstance(code, str) or not CODE_PATTERN.fullmatch(code):
            raise StoreError(f"Action code {code!r} is not a lower_snake_case word (such as home_visit).")
        if code not in out:
            out.append(code)
    return tuple(out)


@dataclass(frozen=True)
class ImportedActions:
    """What :func:`import_actions` did: rows stored, and rows refused with their rule.

    ``refused`` has columns ``row``, ``rule`` and ``detail``: ``unknown_student`` (the store
    never scored or alerted that student: a wrong ID, or a pseudonym made with another key)
    or ``duplicate`` (the same student, code and day is stored already, or came earlier in
    the file). ``stored + len(refused)`` is the number of rows given.
    """

    stored: int
    linked: int  # of the stored rows, how many point at an alert
    refused: pd.DataFrame


def import_actions(store: Store, frame: pd.DataFrame) -> ImportedActions:
    """Link each action to its student's alert and school, and store the new ones (``source`` 'import').

    ``frame`` has :data:`ACTION_FRAME_COLUMNS` (``school_id`` may be missing per row;
    ``acted_on`` a date). A row is linked to the student's latest alert dated on or before
    ``acted_on`` that was not withdrawn (of the row's school, when it names one); its school
    is the row's, else the alert's, else the school that scored the student last on or before
    that day (or first after it). The alert is linked, not acknowledged: a teacher still sees it.
    """
    missing = [c for c in ACTION_FRAME_COLUMNS if c not in frame.columns]
    if missing:
        raise StoreError(f"The actions to import lack column(s) {', '.join(missing)}.")
    check_codes(frame["code"].unique())
    rows = frame.reset_index(drop=True).assign(student_key=lambda f: f["student_key"].astype("int64"),
                                               acted_on=lambda f: pd.to_datetime(f["acted_on"]).dt.date)
    with store.writing("the imported actions") as conn:
        keys = rows["student_key"].unique()
        alerts = _alerts_of(conn, keys)
        rows["alert_id"] = _linked_alerts(rows, alerts)
        rows["school_id"] = _schools(rows, alerts, _scored_schools(conn, keys))
        unknown = rows["school_id"].isna()
        duplicate = ~unknown & _already_there(rows, _stored_keys(conn, keys))
        keep = rows[~unknown & ~duplicate]
        _insert(conn, keep)
    refused = pd.concat([
        pd.DataFrame({"row": rows.loc[unknown, "row"], "rule": "unknown_student",
                      "detail": "no score or alert of this student in the store"}),
        pd.DataFrame({"row": rows.loc[duplicate, "row"], "rule": "duplicate",
                      "detail": "the same student, code and date is recorded already"}),
    ], ignore_index=True)
    return ImportedActions(stored=len(keep), linked=int(keep["alert_id"].notna().sum()), refused=refused)


def _chunks(keys: np.ndarray) -> Iterable[list[int]]:
    values = [int(k) for k in keys]
    return (values[i:i + KEY_CHUNK] for i in range(0, len(values), KEY_CHUNK))


def _alerts_of(conn: Connection, keys: np.ndarray) -> pd.DataFrame:
    """The students' alerts that were not withdrawn: id, student_key, school_id, as_of."""
    a = Alert.__table__.c
    records = [tuple(r) for chunk in _chunks(keys) for r in conn.execute(
        select(a.id, a.student_key, a.school_id, a.as_of).where(a.student_key.in_(chunk), a.status != "withdrawn"))]
    return pd.DataFrame.from_records(records, columns=["alert_id", "student_key", "alert_school", "as_of"])


def _scored_schools(conn: Connection, keys: np.ndarray) -> pd.DataFrame:
    """Each date a student was scored, and the school: student_key, scored_school, as_of."""
    s = Score.__table__.c
    records = [tuple(r) for chunk in _chunks(keys) for r in conn.execute(
        select(s.student_key, s.school_id, s.as_of).where(s.student_key.in_(chunk)).distinct())]
    return pd.DataFrame.from_records(records, columns=["student_key", "scored_school", "as_of"])


def _stored_keys(conn: Connection, keys: np.ndarray) -> pd.DataFrame:
    t = AlertAction.__table__.c
    records = [tuple(r) for chunk in _chunks(keys) for r in conn.execute(
        select(t.student_key, t.code, t.acted_on).where(t.student_key.in_(chunk)))]
    return pd.DataFrame.from_records(records, columns=["student_key", "code", "acted_on"])


def _pairs(rows: pd.DataFrame, found: pd.DataFrame) -> pd.DataFrame:
    """Each row (``index``: its position) beside each of its student's entries in ``found`` dated on or before acted_on."""
    pairs = rows[["student_key", "acted_on", "school_id"]].reset_index().merge(
        found.astype({"student_key": "int64"}), on="student_key")
    return pairs[pairs["as_of"] <= pairs["acted_on"]]


def _last(pairs: pd.DataFrame, order: list[str], value: str, index: pd.Index) -> pd.Series:
    """Per row, ``value`` of its last pair by ``order``; NA for a row without one."""
    return pairs.sort_values(order).drop_duplicates("index", keep="last").set_index("index")[value].reindex(index)


def _linked_alerts(rows: pd.DataFrame, alerts: pd.DataFrame) -> pd.Series:
    """The alert each action belongs to (see :func:`import_actions`), NA when none."""
    pairs = _pairs(rows, alerts)
    # A row that names its school is linked to an alert of that school only.
    pairs = pairs[pairs["school_id"].isna() | (pairs["school_id"] == pairs["alert_school"])]
    return _last(pairs, ["as_of", "alert_id"], "alert_id", rows.index).astype("Int64")


def _schools(rows: pd.DataFrame, alerts: pd.DataFrame, scored: pd.DataFrame) -> pd.Series:
    """The row's school, else its alert's, else where it was scored last by acted_on (or first after); NA: unknown."""
    school = rows["school_id"].astype(object).where(rows["school_id"].notna(), None)
    if rows["alert_id"].notna().any():
        by_alert = rows["alert_id"].map(alerts.set_index("alert_id")["alert_school"])
        school = school.where(school.notna(), by_alert)
    if not scored.empty:
        before = _last(_pairs(rows, scored), ["as_of"], "scored_school", rows.index)
        first = rows["student_key"].map(scored.sort_values("as_of").drop_duplicates("student_key")
                                        .set_index("student_key")["scored_school"])
        school = school.where(school.notna(), before).where(lambda s: s.notna(), first)
    return school.where(school.notna(), None)


def _already_there(rows: pd.DataFrame, stored: pd.DataFrame) -> pd.Series:
    """True for a row whose (student, code, day) is stored, or came earlier in ``rows``."""
    key = ["student_key", "code", "acted_on"]
    seen = rows[key].merge(stored.astype({"student_key": "int64"}).drop_duplicates(), on=key, how="left",
                           indicator=True)["_merge"].eq("both").to_numpy()
    return pd.Series(seen, index=rows.index) | rows.duplicated(key)


def _insert(conn: Connection, rows: pd.DataFrame) -> None:
    if rows.empty:
        return
    now = utc_now()
    records = [{"alert_id": None if pd.isna(r.alert_id) else int(r.alert_id), "acknowledgement_id": None,
                "student_key": int(r.student_key), "school_id": str(r.school_id), "code": r.code,
                "acted_on": r.acted_on, "note": None if pd.isna(r.note) or not str(r.note).strip() else str(r.note),
                "recorded_by": None, "recorded_at": now, "source": "import"}
               for r in rows.itertuples(index=False)]
    conn.execute(AlertAction.__table__.insert(), records)


def stored_actions(store: Store, *, school_id: str | None = None, since: dt.date | None = None) -> pd.DataFrame:
    """The stored actions, oldest first: every column of ``alert_actions``; of one school, from a day on, if asked."""
    t = AlertAction.__table__
    stmt = select(t).order_by(t.c.acted_on, t.c.id)
    if school_id is not None:
        stmt = stmt.where(t.c.school_id == school_id)
    if since is not None:
        stmt = stmt.where(t.c.acted_on >= since)
    with store.engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame.from_records([tuple(r) for r in result], columns=list(result.keys()))
