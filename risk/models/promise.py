"""Does the class policy keep its word on the held-out term? Outcomes, missed targets, and their record.

The policy's thresholds are set on the calibration rows (:mod:`risk.models.policy`);
here they meet a term they never saw. :func:`held_out_check` measures each class
(students, dropouts, observed dropout rate, share, how many a rule raised) and each
target per group of ``thresholds_by``:

* ``problem_precision``: the share of the problem class (the model's class, before
  rules) that dropped out. Missed when even the Wilson *upper* bound over the distinct
  students in the class lies under the target: a miss the data shows beyond noise, not
  a near miss of a few students.
* ``at_risk_capacity_share``: the share of students the model flags (at_risk or
  problem). Missed when it passes the capacity by more than ``held_out_capacity_slack``
  (relative): a list a school was promised to be able to follow up, and cannot.

:func:`target_metrics` flattens a record into MLflow metrics
(``<prefix>.target.<target>.<group>.met`` 1/0 and ``.achieved``), which ``risk
promote`` compares (:func:`promise_reasons`): a challenger that misses a target the
champion met on the same held-out term, or on its own calibration record, is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from risk.models.policy import CLASSES, ClassOutcome, ClassPolicy, MissedTarget, wilson_bounds
from risk.models.settings import PolicySettings

# The figure (a key of the policy's ``achieved`` and ``held_out``) each target is judged by.
FIGURE = {"problem_precision": "problem_precision", "at_risk_capacity_share": "flagged_share"}

__all__ = ["FIGURE", "HeldOutCheck", "apply_check", "calibration_metrics", "class_metrics", "held_out_check",
           "promise_reasons", "target_metrics"]

POOLED = "pooled"


@dataclass
class HeldOutCheck:
    """A policy measured on held-out rows: figures per group (None: pooled; keys as the policy's ``achieved``:
    problem_precision, flagged_share, flagged_recall), misses, class outcomes."""

    achieved: dict[str | None, dict[str, float]] = field(default_factory=dict)
    missed: list[MissedTarget] = field(default_factory=list)
    outcomes: dict[str, ClassOutcome] = field(default_factory=dict)


def _student_weight(students: np.ndarray | None, weight: np.ndarray) -> np.ndarray:
    """Each row's weight divided by its student's number of rows (a student counts once a term)."""
    if students is None:
        return weight
    _, inverse, counts = np.unique(students, return_inverse=True, return_counts=True)
    return weight / counts[inverse]


def held_out_check(policy: ClassPolicy, probability: np.ndarray, y: np.ndarray, X: np.ndarray, names: list[str],
                   settings: PolicySettings, *, weight: np.ndarray | None = None,
                   students: np.ndarray | None = None) -> HeldOutCheck:
    """``policy`` on held-out rows: ``probability`` (n,) calibrated, ``y`` (n,) outcomes, ``X`` (n, f) in ``names``.

    ``students`` (n,) the rows' student keys (distinct students, not rows, are the
    observations behind a precision); ``weight`` the rows' sampling weights.
    """
    w = np.ones(len(y)) if weight is None else weight.astype(np.float64)
    per_student = _student_weight(students, w)
    model = policy.model_codes(probability, X, names)
    codes, _ = policy.classify(probability, X, names)
    check = HeldOutCheck(outcomes=_outcomes(codes, model, y, per_student))
    for group, rows in _group_rows(policy, X, names):
        check.achieved[group] = achieved = {}
        wanted = policy.targets
        problem = rows & (model == 2)
        if problem.any() and "problem_precision" in wanted:
            precision = float(np.average(y[problem], weights=w[problem]))
            n = len(np.unique(students[problem])) if students is not None else int(problem.sum())
            _, upper = wilson_bounds(np.array(precision * n), np.array(n), settings.precision_z)
            achieved["problem_precision"] = precision
            if float(upper) < wanted["problem_precision"]:
                threshold = _threshold(policy, group)[0]
                check.missed.append(MissedTarget(
                    target="problem_precision", group=group, wanted=wanted["problem_precision"],
                    achieved=precision, where="held_out",
                    fallback=f"none can be chosen on the held-out term: the calibration threshold {threshold:.4f} "
                             f"stands, and its problem class is the highest-scored students, of whom "
                             f"{precision:.1%} dropped out"))
        dropouts = float((w * y)[rows].sum())   # _group_rows gives groups with rows only
        achieved["flagged_share"] = float(w[rows & (model > 0)].sum() / w[rows].sum())
        achieved["flagged_recall"] = float((w * y)[rows & (model > 0)].sum() / dropouts) if dropouts else math.nan
        if "at_risk_capacity_share" in wanted:
            share = achieved["flagged_share"]
            capacity = wanted["at_risk_capacity_share"]
            if share > capacity * (1 + settings.held_out_capacity_slack):
                check.missed.append(MissedTarget(
                    target="at_risk_capacity_share", group=group, wanted=capacity, achieved=share,
                    where="held_out",
                    fallback=f"none can be chosen on the held-out term: the calibration threshold "
                             f"{_threshold(policy, group)[1]:.4f} stands and flags {share:.1%} of students"))
    return check


def apply_check(policy: ClassPolicy, check: HeldOutCheck) -> None:
    """Write ``check`` into ``policy`` (stored with the model): outcomes, held-out achieved, misses."""
    policy.outcomes = check.outcomes
    policy.held_out = check.achieved.get(None, {})
    for group, values in check.achieved.items():
        if group is not None:
            policy.groups[group].held_out = values
    policy.missed = [m for m in policy.missed if m.where != "held_out"] + check.missed


def _group_rows(policy: ClassPolicy, X: np.ndarray, names: list[str]) -> list[tuple[str | None, np.ndarray]]:
    """(group, rows) for each group of the policy seen in ``X``, then the pooled thresholds' rows (None)."""
    pooled = np.ones(len(X), dtype=bool)
    out: list[tuple[str | None, np.ndarray]] = []
    if policy.thresholds_by and policy.groups and policy.thresholds_by in names:
        value = X[:, names.index(policy.thresholds_by)]
        for key in policy.groups:
            rows = value == float(key)
            pooled &= ~rows
            if rows.any():
                out.append((key, rows))
    if pooled.any():
        out.append((None, pooled))
    return out


def _threshold(policy: ClassPolicy, group: str | None) -> tuple[float, float]:
    chosen = policy.groups[group] if group is not None else policy
    return chosen.problem_threshold, chosen.at_risk_threshold


def _outcomes(codes: np.ndarray, model: np.ndarray, y: np.ndarray, weight: np.ndarray) -> dict[str, ClassOutcome]:
    """Per class: students, dropouts, rate, share and rule-raised students (weighted, see ClassOutcome)."""
    total = float(weight.sum())
    out = {}
    for code, name in enumerate(CLASSES):
        rows = codes == code
        students = float(weight[rows].sum())
        dropouts = float((weight * y)[rows].sum())
        out[name] = ClassOutcome(
            students=round(students), dropouts=round(dropouts),
            dropout_rate=dropouts / students if students > 0 else math.nan,
            share=students / total if total > 0 else math.nan,
            raised_by_rule=round(float(weight[rows & (model < code)].sum())))
    return out


def _key(group: str | None) -> str:
    return POOLED if group is None else f"group_{group}"


def target_metrics(achieved: dict[str | None, dict[str, float]], missed: list[MissedTarget], where: str,
                   prefix: str) -> dict[str, float]:
    """``<prefix>.target.<target>.<group>.met`` (1 or 0) and ``.achieved`` for each target measured."""
    out: dict[str, float] = {}
    failed = {(m.target, m.group) for m in missed if m.where == where}
    for group, values in achieved.items():
        for target, figure in FIGURE.items():
            value = values.get(figure, math.nan)
            if math.isnan(value):
                continue
            out[f"{prefix}.target.{target}.{_key(group)}.met"] = 0.0 if (target, group) in failed else 1.0
            out[f"{prefix}.target.{target}.{_key(group)}.achieved"] = value
    return out


def calibration_metrics(policy: ClassPolicy) -> dict[str, float]:
    """The calibration record of the problem-precision promise as ``policy.target.*`` metrics."""
    achieved: dict[str | None, dict[str, float]] = {None: {"problem_precision": policy.achieved.get(
        "problem_precision", math.nan)}}
    achieved.update({key: {"problem_precision": g.achieved.get("problem_precision", math.nan)}
                     for key, g in policy.groups.items()})
    return target_metrics(achieved, policy.missed, "calibration", "policy")


def class_metrics(outcomes: dict[str, ClassOutcome]) -> dict[str, float]:
    """``class.<name>.<field>`` per class on the held-out term (NaN fields left out)."""
    return {f"class.{name}.{key}": float(value) for name, outcome in outcomes.items()
            for key, value in outcome.model_dump().items() if not math.isnan(float(value))}


def promise_reasons(challenger: dict[str, float], champion_run: dict[str, float], by: str | None = None) -> list[str]:
    """One sentence per target the challenger misses and the champion met; empty when none.

    ``challenger``: the challenger run's metrics, which hold ``test.model.target.*`` and
    the champion scored on the same held-out term (``test.champion.target.*``), and its
    own calibration record (``policy.target.*``); ``champion_run``: the champion's own
    run's metrics (its ``policy.target.*``); ``by`` the policy's ``thresholds_by`` (to name
    a group). A model from before these records met nothing.
    """
    reasons = []
    pairs = [("test.model.target.", challenger, "test.champion.target.", challenger, "on the same held-out term"),
             ("policy.target.", challenger, "policy.target.", champion_run, "on its own calibration term")]
    for mine, ours, theirs, source, where in pairs:
        for key, value in sorted(ours.items()):
            if not (key.startswith(mine) and key.endswith(".met")) or value >= 1:
                continue
            name = key.removeprefix(mine).removesuffix(".met")
            if source.get(theirs + name + ".met", 0.0) < 1:
                continue
            target, _, group = name.rpartition(".")
            new = ours.get(f"{mine}{name}.achieved", math.nan)
            old = source.get(f"{theirs}{name}.achieved", math.nan)
            value = group.removeprefix("group_")
            rows = "all rows" if group == POOLED else f"rows with {by} = {value}" if by else f"rows of group {value}"
            reasons.append(f"REFUSED: the challenger misses its {target} target ({rows}; achieved {new:.3f}) "
                           f"{where}, which the champion met ({old:.3f})")
    return reasons
