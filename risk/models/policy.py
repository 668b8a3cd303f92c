"""The class policy: calibrated probability → normal / at-risk / problem (DESIGN.md "Classes").

The one place that knows the thresholds. ``problem`` at or above the problem
threshold, ``at_risk`` at or above the at-risk threshold, else ``normal``; then
config rules may raise a class (attendance under the 80% exam line, for example),
and each rule that fires is a reason of its own. Stored in the model package as JSON.
"""

from __future__ import annotations

import json

import numpy as np
from pydantic import BaseModel

from risk.models.settings import ClassRule, PolicySettings

__all__ = ["CLASSES", "ClassPolicy", "choose_thresholds"]

CLASSES = ("normal", "at_risk", "problem")
_RANK = {name: i for i, name in enumerate(CLASSES)}


class ClassPolicy(BaseModel):
    """Thresholds on the calibrated probability and the rules that raise a class."""

    problem_threshold: float
    at_risk_threshold: float
    rules: list[ClassRule] = []
    targets: dict[str, float] = {}
    achieved: dict[str, float] = {}

    def classify(self, probability: np.ndarray, X: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Class codes (n,) int8 indexing :data:`CLASSES`, and rule hits (n, rules) bool.

        ``X`` is the feature matrix (n, f) in the order of ``names``; a rule whose
        feature is missing (NaN) does not fire.
        """
        codes = np.where(probability >= self.problem_threshold, 2,
                         np.where(probability >= self.at_risk_threshold, 1, 0)).astype(np.int8)
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


def choose_thresholds(probability: np.ndarray, y: np.ndarray, targets: PolicySettings) -> ClassPolicy:
    """Thresholds from targets on the calibration term's calibrated probabilities and outcomes.

    ``problem``: the lowest threshold whose precision reaches ``problem_precision``
    (at least 20 students above it); when none does, the highest-scored 1% of students.
    ``at_risk``: the highest threshold that still catches ``at_risk_recall`` of the
    dropouts, or flags ``at_risk_capacity_share`` of students, whichever flags fewer;
    never above the problem threshold.
    """
    order = np.argsort(-probability, kind="stable")
    p_sorted, y_sorted = probability[order], y[order].astype(np.float64)
    caught = np.cumsum(y_sorted)
    flagged = np.arange(1, len(p_sorted) + 1)
    precision = caught / flagged
    eligible = (precision >= targets.problem_precision) & (flagged >= 20)
    if eligible.any():
        last = int(np.flatnonzero(eligible)[-1])
    else:
        last = max(int(0.01 * len(p_sorted)) - 1, 0)
    problem = float(p_sorted[last])
    total = max(caught[-1], 1.0)
    by_recall = int(np.searchsorted(caught / total, targets.at_risk_recall))
    by_capacity = int(targets.at_risk_capacity_share * len(p_sorted)) - 1
    cut = max(min(by_recall, by_capacity, len(p_sorted) - 1), 0)
    at_risk = min(float(p_sorted[cut]), problem)
    above_problem = probability >= problem
    above_risk = probability >= at_risk
    achieved = {
        "problem_precision": float(y[above_problem].mean()) if above_problem.any() else float("nan"),
        "problem_share": float(above_problem.mean()),
        "flagged_recall": float(y[above_risk].sum() / total),
        "flagged_share": float(above_risk.mean()),
    }
    return ClassPolicy(problem_threshold=problem, at_risk_threshold=at_risk, rules=targets.rules,
                       targets={"problem_precision": targets.problem_precision,
                                "at_risk_recall": targets.at_risk_recall,
                                "at_risk_capacity_share": targets.at_risk_capacity_share},
                       achieved=achieved)
