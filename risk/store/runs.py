"""Scoring runs: start one, find one to resume, record its buckets, finish it.

A run scores the register at one ``as_of`` with one model version, bucket by
bucket. A bucket counts as done only once its row is in ``scoring_run_buckets``,
which is written in the same transaction as the bucket's scores
(:func:`risk.store.scores.write_bucket_scores`), so a killed run resumes from
exactly the buckets not recorded there.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import select

from risk.store.db import Store, StoreError
from risk.store.models import ScoringRun, ScoringRunBucket

__all__ = ["done_buckets", "fail_run", "find_unfinished_run", "finish_run", "finished_run", "latest_finished_run",
           "previous_finished_run", "run_record", "start_run", "utc_now"]


def utc_now() -> dt.datetime:
    """Now in UTC, without a zone (how every timestamp is stored)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def start_run(
    store: Store,
    *,
    as_of: dt.date,
    term: str,
    model_name: str,
    model_version: str,
    settings: dict[str, Any],
) -> str:
    """Record a new run as ``running`` and return its id (32 hex characters)."""
    run_id = uuid.uuid4().hex
    with store.session() as session:
        session.add(
            ScoringRun(
                run_id=run_id,
                as_of=as_of,
                term=term,
                model_name=model_name,
                model_version=model_version,
                started_at=utc_now(),
                status="running",
                settings=json.dumps(settings, ensure_ascii=False, default=str, sort_keys=True),
            )
        )
    return run_id


def find_unfinished_run(store: Store, *, as_of: dt.date, model_version: str) -> str | None:
    """The newest ``running`` run of this model version at ``as_of``, to resume; None if there is none."""
    stmt = (
        select(ScoringRun.run_id)
        .where(
            ScoringRun.as_of == as_of,
            ScoringRun.model_version == model_version,
            ScoringRun.status == "running",
        )
        .order_by(ScoringRun.started_at.desc())
        .limit(1)
    )
    with store.session() as session:
        return session.scalar(stmt)


def finish_run(store: Store, run_id: str, *, students: int, drift: dict[str, Any]) -> None:
    """Mark the run ``finished`` with its student count and drift figures (stored as JSON)."""
    with store.session() as session:
        run = _run(session, run_id)
        run.status = "finished"
        run.finished_at = utc_now()
        run.students = students
        run.drift = json.dumps(drift, ensure_ascii=False, default=str, sort_keys=True)


def fail_run(store: Store, run_id: str) -> None:
    """Mark the run ``failed``: it is neither resumed nor used as a previous run."""
    with store.session() as session:
        run = _run(session, run_id)
        run.status = "failed"
        run.finished_at = utc_now()


def done_buckets(store: Store, run_id: str) -> set[int]:
    """The buckets of the run whose scores are stored."""
    with store.session() as session:
        return set(session.scalars(select(ScoringRunBucket.bucket).where(ScoringRunBucket.run_id == run_id)))


def _run(session, run_id: str) -> ScoringRun:
    run = session.get(ScoringRun, run_id)
    if run is None:
        raise StoreError(f"There is no scoring run {run_id} in the store.")
    return run


def previous_finished_run(store: Store, *, before_as_of: dt.date) -> str | None:
    """The latest finished run dated strictly before ``before_as_of`` (the one alerts compare with).

    Strictly before: another run at the same date (a rerun, another model) is never
    its own "previous", so scoring a date again gives the same kinds of alert.
    """
    stmt = (
        select(ScoringRun.run_id)
        .where(ScoringRun.status == "finished", ScoringRun.as_of < before_as_of)
        .order_by(ScoringRun.as_of.desc(), ScoringRun.finished_at.desc())
        .limit(1)
    )
    with store.session() as session:
        return session.scalar(stmt)


def run_record(store: Store, run_id: str) -> dict[str, Any]:
    """A run's columns as a dict, with ``drift``, ``settings`` and ``alerts`` decoded from JSON.

    ``alerts`` counts what writing the run's alerts did, by outcome (new, updated,
    kept_acknowledged, reraised, withdrawn; see :mod:`risk.store.alerts`), or is
    None before they are written.
    """
    with store.session() as session:
        run = _run(session, run_id)
        record = {c.name: getattr(run, c.name) for c in ScoringRun.__table__.columns}
    for name in ("drift", "settings", "alerts"):
        record[name] = json.loads(record[name]) if record[name] else None
    return record


def latest_finished_run(store: Store) -> str | None:
    """The newest finished run (by as_of, then finishing time)."""
    stmt = (select(ScoringRun.run_id).where(ScoringRun.status == "finished")
            .order_by(ScoringRun.as_of.desc(), ScoringRun.finished_at.desc()).limit(1))
    with store.session() as session:
        return session.scalar(stmt)


def finished_run(store: Store, *, as_of: dt.date, model_version: str) -> str | None:
    """A finished run of this model version at ``as_of`` (a term job run again reuses it)."""
    stmt = (select(ScoringRun.run_id)
            .where(ScoringRun.as_of == as_of, ScoringRun.model_version == model_version,
                   ScoringRun.status == "finished")
            .order_by(ScoringRun.finished_at.desc()).limit(1))
    with store.session() as session:
        return session.scalar(stmt)
