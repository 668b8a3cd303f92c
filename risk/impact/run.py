"""``risk impact --term T``'s work: the estimates from a term's outcomes, written to the store and MLflow.

Steps, on :class:`risk.impact.outcomes.TermOutcomes`:

1. :func:`estimate_impact` — with a stored plan: the arms' dropout among flagged students, the
   intention-to-treat effect (OLS with school-clustered SE, relative, and randomisation
   inference), and the effect in schools that acted (IV: assignment instruments whether the
   school acted on any flagged student in the term). Always, when actions are stored: per
   action code, the naive acted-vs-not difference beside a doubly robust one (observational,
   weaker evidence), among flagged students of the schools that saw alerts (all schools
   without a plan) who had an alert asking for help raised in T or an action (when the store
   holds T's alerts; otherwise every flagged student). An estimate the data cannot give is skipped with a note, not an error.
2. :func:`record_impact` — one MLflow run in the pilots experiment (metrics, the estimates
   as CSV, and the CIs as a forest plot), then the estimates in the store.

Every estimate is a proportion (−0.02: two points fewer dropouts) unless the estimand is
``itt_relative`` (−0.2: a fifth fewer).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from risk.errors import ContractError
from risk.impact.actions import per_action_effects
from risk.impact.design import ALERT_NOW, ARMS
from risk.impact.effects import RANDOMISED, EffectEstimate
from risk.impact.estimate import complier_effect, intention_to_treat
from risk.impact.outcomes import FEATURES, TermOutcomes
from risk.impact.plan import PILOT_EXPERIMENT, _experiment_id
from risk.models.tracking import TrackingError
from risk.scoring.report_impact import forest_png
from risk.store import ESTIMATE_COLUMNS, Store, write_impact_estimates

__all__ = ["MIN_ACTED", "ImpactResult", "estimate_impact", "record_impact"]

# An action given to fewer flagged students than this is not estimated: its CI would say nothing.
MIN_ACTED = 10


@dataclass(frozen=True)
class ImpactResult:
    """The term's estimates (one row each, :data:`risk.store.ESTIMATE_COLUMNS`), the counts behind
    them (``flagged_by_arm``: flagged students with a known outcome per arm), and notes on what
    was skipped and why."""

    term: str
    pilot_id: str | None
    estimates: pd.DataFrame
    flagged_by_arm: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    mlflow_run_id: str | None = None


def _row(pilot_id: str | None, estimand: str, effect: EffectEstimate, code: str | None = None) -> dict:
    values = {f.name: getattr(effect, f.name) for f in fields(EffectEstimate)}
    return {**values, "pilot_id": pilot_id, "estimand": estimand, "action_code": code}


def _rate_row(pilot_id: str, arm: str, flagged: pd.DataFrame) -> dict:
    """An arm's dropout among its flagged students, as a row (no SE: the effect rows carry the inference)."""
    rows = flagged[flagged["arm"] == arm]
    return {"pilot_id": pilot_id, "estimand": "dropout_rate", "action_code": arm,
            "method": "share of the arm's flagged students not in the next term's register",
            "estimate": float(rows["dropped_out"].mean()) if len(rows) else math.nan, "se": math.nan,
            "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan, "n_students": len(rows),
            "n_schools": int(rows["school_id"].nunique()), "evidence": RANDOMISED}


def _pilot_rows(outcomes: TermOutcomes, permutations: int, seed: int, notes: list[str]) -> list[dict]:
    """The arms' rates, the ITT estimates and the complier effect (module docstring, step 1)."""
    pilot_id = outcomes.plan.pilot_id
    frame = outcomes.frame[outcomes.frame["arm"].isin(ARMS)]
    flagged = frame[frame["flagged"]]
    outside = int(outcomes.frame["flagged"].sum()) - len(flagged)
    if outside:
        notes.append(f"{outside:,} flagged students are in schools the plan did not draw (opened or first "
                     "enrolling after it) and are left out of the pilot's estimates")
    rows = [_rate_row(pilot_id, arm, flagged) for arm in ARMS]
    try:
        itt = intention_to_treat(frame, permutations=permutations, seed=seed)
    except ContractError as exc:
        notes.append(f"pilot effect not estimated: {exc}")
        return rows
    rows += [_row(pilot_id, "itt", itt.absolute), _row(pilot_id, "itt_relative", itt.relative),
             _row(pilot_id, "itt_randomisation", itt.randomisation)]
    acted_school = flagged.groupby("school_id")["acted"].max()
    try:
        complier = complier_effect(frame.assign(acted_school=frame["school_id"].map(acted_school).fillna(0)))
        rows.append(_row(pilot_id, "complier_iv", complier))
    except ContractError as exc:
        notes.append(f"effect in schools that acted not estimated: {exc}")
    return rows


def _adjustment(outcomes: TermOutcomes, seen: pd.DataFrame, notes: list[str]) -> tuple[list[str], str]:
    """The columns the per-action estimate adjusts for besides the score, and how the method text names them:
    the scored features when the frame has them, else the grade flags (with a note saying why)."""
    if outcomes.features:
        return outcomes.features, f"the score, the {len(outcomes.features)} features it was computed from ({outcomes.feature_note})"
    notes.append("per-action estimates adjust for the score and the transition-grade flags only: "
                 + (outcomes.feature_note or "no feature matrix was read"))
    return [f for f in FEATURES if seen[f].nunique() > 1], "the score and the transition-grade flags"


def _action_rows(outcomes: TermOutcomes, seed: int, notes: list[str], learner: str) -> list[dict]:
    """Naive and AIPW rows per action code with at least :data:`MIN_ACTED` flagged students acted on."""
    frame = outcomes.frame
    seen = frame[frame["flagged"] & (frame["arm"] == ALERT_NOW)] if outcomes.plan else frame[frame["flagged"]]
    seen = seen[seen["score"].notna()]
    if seen["alerted"].any():
        # Only children a school was asked to help (or helped) could get an action: a flagged child with no
        # alert this term (flagged last term too, so no new alert) is never acted on, and as a control would
        # set the action against children unlike those teachers chose (the closed loop showed the adjusted
        # estimate further from the truth than the naive one with them in).
        asked = seen[(seen["alerted"] == 1) | (seen["acted"] == 1)]
        notes.append(f"per-action estimates among the {len(asked):,} flagged students asked for help (an alert "
                     f"raised in {outcomes.term}) or helped, of {len(seen):,} flagged")
        seen = asked
    codes = [c for c in outcomes.action_codes if MIN_ACTED <= seen[c].sum() <= len(seen) - MIN_ACTED]
    skipped = sorted(set(outcomes.action_codes) - set(codes))
    if skipped:
        notes.append(f"per-action estimate skipped for {', '.join(skipped)}: fewer than {MIN_ACTED} flagged "
                     "students got it (or did not)")
    features, adjusted_for = _adjustment(outcomes, seen, notes)
    pilot_id = outcomes.plan.pilot_id if outcomes.plan else None
    try:
        effects = per_action_effects(seen, codes, features, folds=min(5, seen["school_id"].nunique()),
                                     learner=learner, seed=seed, adjusted_for=adjusted_for) if codes else []
    except ContractError as exc:
        notes.append(f"per-action estimates not made: {exc}")
        return []
    return [row for e in effects for row in (_row(pilot_id, "action_naive", e.naive, e.action),
                                            _row(pilot_id, "action_adjusted", e.adjusted, e.action))]


def estimate_impact(outcomes: TermOutcomes, *, permutations: int = 2000, seed: int = 0,
                    learner: str = "logistic") -> ImpactResult:
    """Every estimate the term's outcomes allow (module docstring); nothing is written. ``learner``: the per-action
    estimate's nuisance models (:data:`risk.impact.actions.LEARNERS`)."""
    notes: list[str] = []
    rows: list[dict] = []
    counts: dict[str, int] = {}
    if outcomes.plan is None:
        notes.append(f"term {outcomes.term} has no pilot plan: no randomised estimate (risk pilot plan makes one "
                     "before a term); only the per-action, observational estimates are made")
    else:
        rows += _pilot_rows(outcomes, permutations, seed, notes)
        flagged = outcomes.frame[outcomes.frame["flagged"]]
        counts = {arm: int((flagged["arm"] == arm).sum()) for arm in ARMS}
    rows += _action_rows(outcomes, seed, notes, learner)
    estimates = pd.DataFrame(rows, columns=list(ESTIMATE_COLUMNS))
    return ImpactResult(term=outcomes.term, pilot_id=outcomes.plan.pilot_id if outcomes.plan else None,
                        estimates=estimates, flagged_by_arm=counts, notes=notes)


def _metrics(estimates: pd.DataFrame) -> dict[str, float]:
    """MLflow metrics: ``<estimand>[.<code>].<estimate|ci_low|ci_high|p_value>``, finite values only."""
    metrics = {}
    for row in estimates.itertuples(index=False):
        name = row.estimand + (f".{row.action_code}" if isinstance(row.action_code, str) else "")
        for part in ("estimate", "ci_low", "ci_high", "p_value"):
            value = getattr(row, part)
            if value is not None and math.isfinite(value):
                metrics[f"{name}.{part}"] = float(value)
    return metrics


def record_impact(store: Store, result: ImpactResult, *, tracking_dir: Path,
                  experiment: str = PILOT_EXPERIMENT) -> ImpactResult:
    """Log the estimates as one MLflow run (tracking already configured), then store them; returns the
    result with its run id. No student-level data is logged."""
    try:
        with mlflow.start_run(experiment_id=_experiment_id(experiment, tracking_dir),
                              run_name=f"impact-{result.term}") as run:
            mlflow.log_params({"term": result.term, "pilot_id": result.pilot_id or "none",
                               **{f"flagged_{arm}": n for arm, n in result.flagged_by_arm.items()}})
            mlflow.log_metrics(_metrics(result.estimates))
            mlflow.set_tags({"kind": "impact", "pilot_id": result.pilot_id or ""})
            mlflow.log_text(result.estimates.to_csv(index=False), "impact_estimates.csv")
            with tempfile.TemporaryDirectory() as folder:
                path = forest_png(result.estimates, Path(folder) / "impact_ci.png")
                mlflow.log_artifact(str(path))
    except MlflowException as exc:
        raise TrackingError(f"MLflow at {mlflow.get_tracking_uri()} cannot record the estimates: "
                            f"{exc.message}") from exc
    write_impact_estimates(store, result.term, result.estimates)
    return ImpactResult(**{**result.__dict__, "mlflow_run_id": run.info.run_id})
