"""Randomised wait-list pilots in the store: the plan of a term, each school's arm, and who sees alerts.

A pilot (issue 30) assigns a term's schools to ``alert_now`` or ``wait_list``
(:mod:`risk.impact.design` draws it; ``risk pilot plan`` stores it here). Both arms are
scored and their alerts are stored as usual, so the impact estimate can compare flagged
students by the same rule. What changes is who sees them:

- while the *current term* is a plan's term, a ``wait_list`` school's alerts are listed
  to no one (:func:`wait_listed_now`, which the alert lists and the service apply);
- from the next term on, everything shows again, its pilot-term alerts included.

The current term is the term of the newest finished scoring run (by ``as_of``): a plan
takes effect with the pilot term's first scoring, and ends with the next term's.

One plan stands per term. Drawing it again (``replace``) marks the old one ``replaced_at``;
it stays in the store as the record of what was drawn.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import ColumnElement, Connection, ScalarSelect, and_, exists, select, update

from risk.store.bulk import insert_frame
from risk.store.db import Store, StoreError
from risk.store.models import PILOT_ARMS, PilotPlan, PilotSchool, Score, ScoringRun
from risk.store.runs import utc_now

__all__ = ["FLAGGED_CLASSES", "PilotExistsError", "PlanRecord", "current_term", "flagged_students", "pilot_arms",
           "pilot_plan", "set_pilot_run", "wait_list_term", "wait_listed_now", "write_pilot"]

# The classes that raise an alert a school should act on: the pilot's flag, the same in both arms.
FLAGGED_CLASSES = ("at_risk", "problem")
# Terms per query (each a handful of runs): far under SQLite's parameter limit.
TERM_CHUNK = 500


class PilotExistsError(StoreError):
    """The term has a standing pilot plan already, and replacing it was not asked for."""

    @classmethod
    def of(cls, standing: PlanRecord) -> PilotExistsError:
        """The error naming the standing plan."""
        return cls(f"Term {standing.term} has a pilot plan already ({standing.pilot_id}, made "
                   f"{standing.created_at:%Y-%m-%d %H:%M} UTC, seed {standing.seed}); a second plan would change "
                   "which schools see alerts: replace it on purpose (--replace) or keep it.")


@dataclass(frozen=True)
class PlanRecord:
    """A pilot plan as stored (without its schools: :func:`pilot_arms`).

    ``strata`` are the column names it was stratified by; ``outcome_basis`` ('flagged' or
    'enrolled'), ``base_rate`` (0..1), ``icc`` and ``mde_relative`` (−0.2: a fifth fewer
    dropouts) are what its minimum detectable effect was computed from and came to (None
    when no past term had a known outcome).
    """

    pilot_id: str
    term: str
    share: float
    strata: list[str]
    seed: int
    created_at: dt.datetime
    outcome_basis: str | None = None
    base_rate: float | None = None
    icc: float | None = None
    mde_relative: float | None = None
    mlflow_run_id: str | None = None
    replaced_at: dt.datetime | None = None


def write_pilot(store: Store, plan: PlanRecord, assignment: pd.DataFrame, *, replace: bool = False) -> None:
    """Store ``plan`` and its schools (``assignment``: ``school_id``, ``arm``, ``stratum``), in one transaction.

    Raises
    ------
    PilotExistsError
        When the term has a standing plan and ``replace`` is false (nothing is written).
    StoreError
        When an arm is unknown, a school appears twice, or the database refuses.
    """
    missing = {"school_id", "arm", "stratum"} - set(assignment.columns)
    if missing:
        raise StoreError(f"A pilot assignment needs the column(s) {', '.join(sorted(missing))}.")
    unknown = set(assignment["arm"]) - set(PILOT_ARMS)
    if unknown:
        raise StoreError(f"Pilot arm {sorted(unknown)[0]!r} is not one of {', '.join(PILOT_ARMS)}.")
    if assignment["school_id"].duplicated().any():
        raise StoreError("A school appears twice in the pilot assignment; each school has one arm.")
    with store.writing(f"the pilot plan of term {plan.term}") as conn:
        standing = _standing_plan(conn, plan.term)
        if standing is not None and not replace:
            raise PilotExistsError.of(standing)
        if standing is not None:
            conn.execute(update(PilotPlan).where(PilotPlan.pilot_id == standing.pilot_id)
                         .values(replaced_at=utc_now()))
        values = {**plan.__dict__, "strata": json.dumps(list(plan.strata)), "replaced_at": None}
        conn.execute(PilotPlan.__table__.insert().values(**values))
        insert_frame(conn, PilotSchool.__table__, assignment[["school_id", "arm", "stratum"]],
                     {"pilot_id": plan.pilot_id})


def _standing_plan(conn: Connection, term: str) -> PlanRecord | None:
    row = conn.execute(select(PilotPlan.__table__)
                       .where(PilotPlan.term == term, PilotPlan.replaced_at.is_(None))).mappings().first()
    if row is None:
        return None
    return PlanRecord(**{**row, "strata": json.loads(row["strata"])})


def set_pilot_run(store: Store, pilot_id: str, mlflow_run_id: str) -> None:
    """Note the MLflow run that logged the plan."""
    with store.writing(f"the MLflow run of pilot {pilot_id}") as conn:
        conn.execute(update(PilotPlan).where(PilotPlan.pilot_id == pilot_id).values(mlflow_run_id=mlflow_run_id))


def pilot_plan(store: Store, term: str) -> PlanRecord | None:
    """The term's standing plan, or None when it has none."""
    with store.engine.connect() as conn:
        return _standing_plan(conn, term)


def pilot_arms(store: Store, term: str) -> pd.DataFrame:
    """``school_id``, ``arm``, ``stratum`` of the term's standing plan, by school (no rows without a plan)."""
    p, s = PilotPlan.__table__.c, PilotSchool.__table__.c
    stmt = (select(s.school_id, s.arm, s.stratum).join(PilotPlan.__table__, p.pilot_id == s.pilot_id)
            .where(p.term == term, p.replaced_at.is_(None)).order_by(s.school_id))
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return pd.DataFrame.from_records([tuple(r) for r in rows], columns=["school_id", "arm", "stratum"])


def current_term() -> ScalarSelect:
    """A scalar subquery: the term of the newest finished scoring run (NULL before any)."""
    r = ScoringRun.__table__.c
    return (select(r.term).where(r.status == "finished")
            .order_by(r.as_of.desc(), r.finished_at.desc()).limit(1).scalar_subquery())


def wait_listed_now(school_id: ColumnElement) -> ColumnElement[bool]:
    """True where ``school_id`` (a column, or a bound value) is on the wait-list of the current term's plan.

    Put ``~wait_listed_now(alerts.c.school_id)`` in a query that lists alerts: the wait-list
    schools' alerts are then left out while their pilot term runs, and come back after it.
    """
    p, s = PilotPlan.__table__.c, PilotSchool.__table__.c
    return exists().where(s.pilot_id == p.pilot_id, s.school_id == school_id, s.arm == "wait_list",
                          and_(p.replaced_at.is_(None), p.term == current_term()))


def wait_list_term(store: Store, school_id: str) -> str | None:
    """The pilot term when the school is on its wait-list now (the current term), else None."""
    p, s = PilotPlan.__table__.c, PilotSchool.__table__.c
    stmt = (select(p.term).join(PilotSchool.__table__, s.pilot_id == p.pilot_id)
            .where(s.school_id == school_id, s.arm == "wait_list", p.replaced_at.is_(None),
                   p.term == current_term()))
    with store.engine.connect() as conn:
        return conn.execute(stmt).scalar()


def flagged_students(store: Store, terms: list[str]) -> pd.DataFrame:
    """Students flagged (at_risk or problem) in any finished run of each of ``terms``.

    Returns ``term``, ``student_key`` (int64), ``school_id`` (a school that flagged them in
    the term), one row per student and term. Distinct in SQL: a term has a run a week.
    """
    sc, r = Score.__table__.c, ScoringRun.__table__.c
    parts = []
    for start in range(0, len(terms), TERM_CHUNK):
        stmt = (select(sc.term, sc.student_key, sc.school_id).distinct()
                .join(ScoringRun.__table__, r.run_id == sc.run_id)
                .where(r.status == "finished", sc.term.in_(terms[start:start + TERM_CHUNK]),
                       sc.risk_class.in_(FLAGGED_CLASSES)))
        with store.engine.connect() as conn:
            parts.extend(tuple(row) for row in conn.execute(stmt))
    frame = pd.DataFrame.from_records(parts, columns=["term", "student_key", "school_id"])
    frame = frame.astype({"student_key": "int64"}).sort_values(["term", "student_key", "school_id"], kind="stable")
    return frame.drop_duplicates(["term", "student_key"], keep="last").reset_index(drop=True)
