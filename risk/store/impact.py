"""Impact estimates in the store (issue 30): what ``risk impact --term T`` found, and the term's scores it used.

- :func:`write_impact_estimates` replaces a term's estimates with a new set (one transaction):
  the store holds the latest ``risk impact`` of each term;
- :func:`impact_estimates` reads them back (the report's section, and tests);
- :func:`term_flags` is the per-student view of a term's finished scoring runs the estimate
  needs: the highest probability and whether any run flagged the student.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import case, delete, func, select

from risk.store.bulk import insert_frame
from risk.store.db import Store, StoreError
from risk.store.models import Alert, ImpactEstimate, Score, ScoringRun
from risk.store.pilot import FLAGGED_CLASSES
from risk.store.runs import utc_now

__all__ = ["ESTIMATE_COLUMNS", "alerted_students", "impact_estimates", "last_scoring_date", "term_flags",
           "write_impact_estimates"]

# What a row of estimates holds besides term and created_at (the table's columns).
ESTIMATE_COLUMNS = ("pilot_id", "estimand", "action_code", "method", "estimate", "se", "ci_low", "ci_high",
                    "p_value", "n_students", "n_schools", "evidence")


def write_impact_estimates(store: Store, term: str, estimates: pd.DataFrame) -> int:
    """Replace ``term``'s stored estimates with ``estimates`` (columns :data:`ESTIMATE_COLUMNS`); rows written.

    NaN becomes NULL (an SE a rate does not have, a p-value a method does not give).
    """
    missing = [c for c in ESTIMATE_COLUMNS if c not in estimates.columns]
    if missing:
        raise StoreError(f"Impact estimates lack the column(s) {', '.join(missing)}.")
    rows = estimates[list(ESTIMATE_COLUMNS)].astype(object)
    rows = rows.where(rows.notna(), None)
    with store.writing(f"the impact estimates of term {term}") as conn:
        conn.execute(delete(ImpactEstimate).where(ImpactEstimate.term == term))
        return insert_frame(conn, ImpactEstimate.__table__, rows, {"term": term, "created_at": utc_now()})


def impact_estimates(store: Store, term: str) -> pd.DataFrame:
    """The term's stored estimates in the order written: ``term``, ``created_at`` and :data:`ESTIMATE_COLUMNS`."""
    t = ImpactEstimate.__table__
    columns = ["term", "created_at", *ESTIMATE_COLUMNS]
    with store.engine.connect() as conn:
        rows = conn.execute(select(*(t.c[c] for c in columns)).where(t.c.term == term).order_by(t.c.id)).all()
    return pd.DataFrame.from_records([tuple(r) for r in rows], columns=columns)


def term_flags(store: Store, term: str) -> pd.DataFrame:
    """Per student scored in a finished run of ``term``: ``student_key`` (int64), ``score`` (the highest
    calibrated probability, 0–1) and ``flagged`` (bool: at_risk or problem in any of those runs).

    Any run, as :func:`risk.store.flagged_students` counts them: a term has a run a week, and an
    alert raised in any of them reached the school (in an alert-now school) or would have.
    """
    sc, r = Score.__table__.c, ScoringRun.__table__.c
    flagged = func.max(case((sc.risk_class.in_(FLAGGED_CLASSES), 1), else_=0))
    stmt = (select(sc.student_key, func.max(sc.probability), flagged)
            .join(ScoringRun.__table__, r.run_id == sc.run_id)
            .where(r.status == "finished", sc.term == term).group_by(sc.student_key))
    with store.engine.connect() as conn:
        rows = [tuple(row) for row in conn.execute(stmt)]
    frame = pd.DataFrame.from_records(rows, columns=["student_key", "score", "flagged"])
    return frame.astype({"student_key": "int64", "score": "float64", "flagged": "bool"})


def alerted_students(store: Store, term: str, kinds: tuple[str, ...]) -> pd.DataFrame:
    """``student_key`` (int64) of each student with an alert of one of ``kinds`` raised in a run of ``term``
    (superseded ones too: the school was asked to help once it was raised), and ``alerted`` = 1."""
    a = Alert.__table__.c
    stmt = select(a.student_key).where(a.term == term, a.kind.in_(kinds)).distinct()
    with store.engine.connect() as conn:
        keys = [row[0] for row in conn.execute(stmt)]
    return pd.DataFrame({"student_key": pd.Series(keys, dtype="int64"), "alerted": 1})


def last_scoring_date(store: Store, term: str) -> dt.date | None:
    """``as_of`` of the latest finished scoring run of ``term`` (None: the term was never scored to the end)."""
    r = ScoringRun.__table__.c
    with store.engine.connect() as conn:
        return conn.execute(select(func.max(r.as_of)).where(r.term == term, r.status == "finished")).scalar()
