"""The class policy: calibrated probability → normal / at-risk / problem (DESIGN.md "Classes").

The one place that knows the thresholds. ``problem`` at or above the problem
threshold, ``at_risk`` at or above the at-risk threshold, else ``normal``; then
config rules may raise a class (attendance under the 80% exam line, for example),
and each rule that fires is a reason of its own. Stored in the model package as JSON.

Thresholds may differ by the value of one feature (``thresholds_by``; the config
uses ``year_end_term``): dropout after semester 2, when students finish P6 or M3,
is several times as common as after semester 1, so one absolute threshold set on a
semester-1 term flagged 40% of a semester-2 term against a capacity of 15%. Each
group's thresholds come from the same targets on that group's rows; a row whose
group was not seen (or whose value is missing) gets the pooled thresholds.
"""

from __future__ import annotations

import json

import numpy as np
from pydantic import BaseModel

from risk.models.settings import ClassRule, PolicySettings

__all__ = ["CLASSES", "ClassPolicy", "GroupThresholds", "choose_policy", "choose_thresholds"]

CLASSES = ("normal", "at_risk", "problem")
_RANK = {name: i for i, name in enumerate(CLASSES)}


class GroupThresholds(BaseModel):
    """The thresholds of one group of rows (one value of the policy's ``thresholds_by`` feature)."""

    problem_threshold: float
    at_risk_threshold: float
    achieved: dict[str, float] = {}
    rows: int = 0


class ClassPolicy(BaseModel):
    """Thresholds on the calibrated probability and the rules that raise a class.

    ``problem_threshold`` and ``at_risk_threshold`` are the pooled thresholds; ``groups``
    maps a value of the ``thresholds_by`` feature (as text: "0", "1") to its own.
    """

    problem_threshold: float
    at_risk_threshold: float
    rules: list[ClassRule] = []
    targets: dict[str, float] = {}
    achieved: dict[str, float] = {}
    thresholds_by: str | None = None
    groups: dict[str, GroupThresholds] = {}

    def thresholds(self, X: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Each row's (problem, at-risk) thresholds, shape (n,) each."""
        n = len(X)
        problem = np.full(n, self.problem_threshold)
        at_risk = np.full(n, self.at_risk_threshold)
        if self.thresholds_by and self.groups and self.thresholds_by in names:
            value = X[:, names.index(self.thresholds_by)]
            for key, group in self.groups.items():
                rows = value == float(key)
                problem[rows], at_risk[rows] = group.problem_threshold, group.at_risk_threshold
        return problem, at_risk

    def classify(self, probability: np.ndarray, X: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Class codes (n,) int8 indexing :data:`CLASSES`, and rule hits (n, rules) bool.

        ``X`` is the feature matrix (n, f) in the order of ``names``; a rule whose
        feature is missing (NaN) does not fire.
        """
        problem, at_risk = self.thresholds(X, names)
        codes = np.where(probability >= problem, 2, np.where(probability >= at_risk, 1, 0)).astype(np.int8)
        hits = np.zeros((len(probability), len(self.rules)), dtype=bool)
        for j, rule in enumerate(self.rules):
            value = X[:, names.index(rule.feature)]
            with np.errstate(invalid="ignore"):
                hits[:, j] = value < rule.below if rule.below is not None else value > rule.above
            codes = np.where(hits[:, j], np.maximum(codes, _RANK[rule.raise_to]), codes).astype(np.int8)
        return codes, hits

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> ClassPolicy:
        return cls.model_validate(json.loads(text))


def choose_policy(probability: np.ndarray, y: np.ndarray, X: np.ndarray, names: list[str],
                  targets: PolicySettings, *, weight: np.ndarray | None = None,
                  fallback: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None) -> ClassPolicy:
    """The policy from targets: pooled thresholds on the calibration rows, and per group when configured.

    ``probability``, ``y``, ``X`` (and ``weight``) are the calibration rows. A group
    (a value of ``targets.thresholds_by``) with too few rows or dropouts there takes
    its thresholds from ``fallback`` = (probability, y, X, weight): rows of that group
    the booster was not fitted on (the early-stopping students of the training terms),
    when they have enough; otherwise it keeps the pooled thresholds.
    """
    pooled = choose_thresholds(probability, y, targets, weight=weight)
    policy = ClassPolicy(problem_threshold=pooled.problem_threshold, at_risk_threshold=pooled.at_risk_threshold,
                         rules=targets.rules, targets=pooled.targets, achieved=pooled.achieved,
                         thresholds_by=targets.thresholds_by)
    if not targets.thresholds_by or targets.thresholds_by not in names:
        return policy
    column = names.index(targets.thresholds_by)
    sources = [(probability, y, X, weight), *([fallback] if fallback is not None else [])]
    keys = sorted({float(v) for p, _, x, _ in sources for v in np.unique(x[:, column]) if np.isfinite(v)})
    for key in keys:
        for p, labels, x, w in sources:
            rows = x[:, column] == key
            if rows.sum() >= targets.min_group_rows and labels[rows].sum() >= targets.min_group_dropouts:
                chosen = choose_thresholds(p[rows], labels[rows], targets, weight=None if w is None else w[rows])
                policy.groups[f"{key:g}"] = GroupThresholds(
                    problem_threshold=chosen.problem_threshold, at_risk_threshold=chosen.at_risk_threshold,
                    achieved=chosen.achieved, rows=int(rows.sum()))
                break
    return policy


def choose_thresholds(probability: np.ndarray, y: np.ndarray, targets: PolicySettings, *,
                      weight: np.ndarray | None = None) -> ClassPolicy:
    """Thresholds from targets on calibrated probabilities and outcomes (``weight``: rows' sampling weights).

    ``problem``: the lowest threshold whose precision reaches ``problem_precision``
    (at least 20 students above it); when none does, the highest-scored 1% of students.
    ``at_risk``: the highest threshold that still catches ``at_risk_recall`` of the
    dropouts, or flags ``at_risk_capacity_share`` of students, whichever flags fewer;
    never above the problem threshold. Shares and counts are weighted, so rows kept
    from a down-sampled population count for the rows they stand for.
    """
    w = np.ones(len(probability)) if weight is None else weight.astype(np.float64)
    order = np.argsort(-probability, kind="stable")
    p_sorted, y_sorted, w_sorted = probability[order], y[order].astype(np.float64), w[order]
    caught = np.cumsum(y_sorted * w_sorted)
    flagged = np.cumsum(w_sorted)
    population = flagged[-1] if len(flagged) else 0.0
    precision = caught / np.maximum(flagged, 1e-12)
    eligible = (precision >= targets.problem_precision) & (np.arange(1, len(p_sorted) + 1) >= 20)
    if eligible.any():
        last = int(np.flatnonzero(eligible)[-1])
    else:
        last = max(int(np.searchsorted(flagged, 0.01 * population)), 0)
    last = min(last, len(p_sorted) - 1)
    problem = float(p_sorted[last])
    total = max(caught[-1], 1.0)
    by_recall = int(np.searchsorted(caught / total, targets.at_risk_recall))
    by_capacity = int(np.searchsorted(flagged, targets.at_risk_capacity_share * population))
    cut = max(min(by_recall, by_capacity, len(p_sorted) - 1), 0)
    at_risk = min(float(p_sorted[cut]), problem)
    above_problem = probability >= problem
    above_risk = probability >= at_risk
    achieved = {
        "problem_precision": float(np.average(y[above_problem], weights=w[above_problem]))
        if above_problem.any() else float("nan"),
        "problem_share": float(w[above_problem].sum() / population),
        "flagged_recall": float((y * w)[above_risk].sum() / total),
        "flagged_share": float(w[above_risk].sum() / population),
    }
    return ClassPolicy(problem_threshold=problem, at_risk_threshold=at_risk, rules=targets.rules,
                       targets={"problem_precision": targets.problem_precision,
                                "at_risk_recall": targets.at_risk_recall,
                                "at_risk_capacity_share": targets.at_risk_capacity_share},
                       achieved=achieved)
