"""What happened to each student of a pilot term: the frame ``risk impact --term T`` estimates from.

One row per student enrolled in term T whose outcome is known (the next term's register is
in the validated data), columns:

* ``student_key`` (pseudonym), ``school_id``, ``grade_level`` — the term's enrollment;
* ``arm``, ``stratum`` — the school's, from the stored plan (missing: no plan, or a school
  the plan did not draw);
* ``flagged`` — at_risk or problem in any finished scoring run of T (the same rule in both
  arms: both were scored); ``score`` — the highest probability of those runs (NaN: never scored);
* ``dropped_out`` — 0/1, :func:`risk.labels.dropout_labels` of T;
* ``alerted`` — 0/1: an alert asking for help (newly at risk, escalated to problem) was raised
  for the student in a scoring run of T (stored in both arms alike; shown in alert-now schools);
* ``acted`` — 0/1, any stored action for the student dated in T's window (term start to the
  next term's start); one 0/1 column per action code seen;
* ``transition_p6``, ``transition_m3`` — 0/1: the grade ends a school stage (the DESIGN's
  dropout peaks);
* ``feature:<name>`` — given the settings, the numeric features of the matrix the term was scored
  on (:mod:`risk.impact.features`; NaN: not measured, or a student the matrix does not hold).

The per-action estimate adjusts for ``score`` and the ``feature:`` columns
(:attr:`TermOutcomes.features`); with none (no settings, or no point could be built) for
``score`` and the two grade flags (:data:`FEATURES`), the store keeping no feature values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
import pandas as pd

from risk.config import Settings
from risk.data.contract import next_term, parse_term, term_start
from risk.errors import ConfigError, ContractError
from risk.features.sources import connect, view_validated
from risk.impact.features import scored_features
from risk.labels import LabelPolicy, dropout_labels
from risk.models.treated import HELP_KINDS
from risk.store import (
    PlanRecord,
    Store,
    alerted_students,
    pilot_arms,
    pilot_plan,
    stored_actions,
    term_flags,
)

__all__ = ["FEATURES", "OutcomeNotKnownError", "TermOutcomes", "check_term", "term_outcomes"]

FEATURES = ["transition_p6", "transition_m3"]


class OutcomeNotKnownError(ContractError):
    """The next term's register is not in the validated data, so no outcome of the term is known."""


@dataclass(frozen=True)
class TermOutcomes:
    """The frame (module docstring), the term's standing plan (None: no pilot), the action codes
    seen, how many enrolled students had no known outcome (death, a transfer found nowhere), the ``feature:``
    columns of the scored matrix joined (empty: none) and a note on them (what was read, or why nothing)."""

    term: str
    frame: pd.DataFrame
    plan: PlanRecord | None
    action_codes: list[str] = field(default_factory=list)
    unknown_outcome: int = 0
    features: list[str] = field(default_factory=list)
    feature_note: str = ""


def _enrolled(con: duckdb.DuckDBPyConnection, term: str, validated: Path) -> pd.DataFrame:
    """``student_key``, ``school_id``, ``grade_level`` of the term; errors when T or T+1 is missing."""
    count = "SELECT count(*) FROM enrollments WHERE term = $term"
    following = next_term(term)
    if con.execute(count, {"term": term}).fetchone()[0] == 0:
        raise ContractError(f"No student is enrolled in term {term} in {validated}.")
    if con.execute(count, {"term": following}).fetchone()[0] == 0:
        raise OutcomeNotKnownError(f"the outcome of {term} is not known yet: {following}'s register is not in "
                                   f"{validated}")
    return con.execute("""
        SELECT student_key, any_value(school_id) AS school_id, any_value(grade_level) AS grade_level
        FROM enrollments WHERE term = $term GROUP BY student_key""", {"term": term}).df()


def _actions(store: Store, term: str) -> pd.DataFrame:
    """One row per student acted on in T's window: ``student_key`` and a 0/1 column per code."""
    start, end = term_start(term), term_start(next_term(term))
    stored = stored_actions(store, since=start)
    stored = stored[stored["acted_on"] < end] if len(stored) else stored
    if stored.empty:
        return pd.DataFrame({"student_key": pd.Series(dtype="int64")})
    wide = pd.crosstab(stored["student_key"].astype("int64"), stored["code"]).clip(upper=1)
    return wide.rename_axis(columns=None).reset_index()


def check_term(term: str) -> None:
    """ConfigError with the contract's words when ``term`` is not a term (``2569-1``)."""
    try:
        parse_term(term)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def term_outcomes(store: Store, validated: Path, term: str, policy: LabelPolicy, *,
                  settings: Settings | None = None) -> TermOutcomes:
    """Assemble the frame of ``term`` from the validated folder and the store (module docstring).

    ``settings`` (the feature settings and catalog path) joins the features the term was scored on;
    None joins none. Raises ConfigError for a malformed term, OutcomeNotKnownError when T+1's register is not
    in ``validated``, ContractError when no student is enrolled in T.
    """
    check_term(term)
    con = connect()
    try:
        view_validated(con, validated, as_of=term_start(term))
        enrolled = _enrolled(con, term, validated)
        labels = dropout_labels(con, term, policy)[["student_key", "dropped_out"]]
    finally:
        con.close()
    frame = enrolled.astype({"student_key": "int64"}).merge(labels.astype({"student_key": "int64"}),
                                                            on="student_key")
    unknown = int(frame["dropped_out"].isna().sum())
    frame = frame[frame["dropped_out"].notna()].astype({"dropped_out": "int64"})
    outcomes = _joined(store, term, frame, unknown)
    if settings is None:
        return outcomes
    scored = scored_features(store, validated, term, settings)
    if scored.frame is None:
        return replace(outcomes, feature_note=scored.note)
    joined = outcomes.frame.merge(scored.frame, on="student_key", how="left")
    return replace(outcomes, frame=joined, features=[c for c in scored.frame.columns if c != "student_key"],
                   feature_note=scored.note)


def _joined(store: Store, term: str, frame: pd.DataFrame, unknown: int) -> TermOutcomes:
    """The enrollment-and-outcome frame joined to the plan's arms, the scores and the actions."""
    frame = frame.merge(pilot_arms(store, term), on="school_id", how="left")
    frame = frame.merge(term_flags(store, term), on="student_key", how="left")
    frame["flagged"] = frame["flagged"].fillna(False).astype(bool)
    frame = frame.merge(alerted_students(store, term, HELP_KINDS), on="student_key", how="left")
    frame["alerted"] = frame["alerted"].fillna(0).astype("int64")
    actions = _actions(store, term)
    codes = sorted(c for c in actions.columns if c != "student_key")
    frame = frame.merge(actions, on="student_key", how="left")
    frame[codes] = frame[codes].fillna(0).astype("int64")
    frame["acted"] = (frame[codes].sum(axis=1) > 0).astype("int64") if codes else 0
    frame["transition_p6"] = (frame["grade_level"] == "P6").astype("int64")
    frame["transition_m3"] = (frame["grade_level"] == "M3").astype("int64")
    return TermOutcomes(term=term, frame=frame.reset_index(drop=True), plan=pilot_plan(store, term),
                        action_codes=codes, unknown_outcome=unknown)
