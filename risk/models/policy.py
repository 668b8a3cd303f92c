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

A policy keeps its word or says it did not: every target it could not meet, on the
calibration rows or afterwards on the held-out term (:mod:`risk.models.promise`), is a
:class:`MissedTarget` naming the rule used instead, and ``outcomes`` gives each class's
observed dropout rate on the held-out term.
"""

from __future__ import annotations

import json
from typing import Literal

import numpy as np
from pydantic import BaseModel

from risk.models.settings import ClassRule, PolicySettings

__all__ = ["CLASSES", "GRADE_FEATURE", "ClassOutcome", "ClassPolicy", "GroupThresholds", "MissedTarget",
           "choose_policy", "choose_thresholds", "wilson_bounds"]

CLASSES = ("normal", "at_risk", "problem")
_RANK = {name: i for i, name in enumerate(CLASSES)}
# The feature a rule's ``min_grade`` is read against (a category index into ``ClassPolicy.grade_levels``).
GRADE_FEATURE = "grade_level"
# grade_level's categories in configs/features.yaml; a policy stores the catalog's own list
# (``grade_levels``), this is only for a policy written before it did.
_GRADES = ["K1", "K2", "K3", "P1", "P2", "P3", "P4", "P5", "P6", "M1", "M2", "M3", "M4", "M5", "M6"]


class MissedTarget(BaseModel):
    """A target the policy did not meet, where, and what it did instead (plain English)."""

    target: str                 # "problem_precision", "at_risk_capacity_share"
    group: str | None = None    # a value of ``thresholds_by`` ("0", "1"); None: pooled
    wanted: float
    achieved: float
    where: Literal["calibration", "held_out"]
    fallback: str


class ClassOutcome(BaseModel):
    """One class on the held-out term: who was in it and how many of them dropped out.

    A student scored at several points of the term counts once, split evenly over those
    points, so ``students`` sums to the term's students and ``share`` to 1.
    """

    students: int
    dropouts: int
    dropout_rate: float
    share: float
    raised_by_rule: int = 0     # of ``students``: in this class only because a rule raised them


class GroupThresholds(BaseModel):
    """The thresholds of one group of rows (one value of the policy's ``thresholds_by`` feature)."""

    problem_threshold: float
    at_risk_threshold: float
    achieved: dict[str, float] = {}
    rows: int = 0
    held_out: dict[str, float] = {}     # ``achieved``'s figures measured on the held-out term


class ClassPolicy(BaseModel):
    """Thresholds on the calibrated probability and the rules that raise a class.

    ``problem_threshold`` and ``at_risk_threshold`` are the pooled thresholds; ``groups``
    maps a value of the ``thresholds_by`` feature (as text: "0", "1") to its own.
    ``achieved`` holds the calibration rows' figures, ``held_out`` the same figures on
    the held-out term; ``missed`` every target not met, on either; ``outcomes`` each
    class on the held-out term; ``grade_levels`` grade_level's categories (for a rule's
    ``min_grade``). A policy written before these fields reads with them empty.
    """

    problem_threshold: float
    at_risk_threshold: float
    rules: list[ClassRule] = []
    targets: dict[str, float] = {}
    achieved: dict[str, float] = {}
    thresholds_by: str | None = None
    groups: dict[str, GroupThresholds] = {}
    grade_levels: list[str] = []
    held_out: dict[str, float] = {}     # ``achieved``'s figures measured on the held-out term (pooled rows)
    missed: list[MissedTarget] = []
    outcomes: dict[str, ClassOutcome] = {}

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

    def model_codes(self, probability: np.ndarray, X: np.ndarray, names: list[str]) -> np.ndarray:
        """Class codes (n,) int8 from the probability alone, before any rule raises a class."""
        problem, at_risk = self.thresholds(X, names)
        return np.where(probability >= problem, 2, np.where(probability >= at_risk, 1, 0)).astype(np.int8)

    def classify(self, probability: np.ndarray, X: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Class codes (n,) int8 indexing :data:`CLASSES`, and rule hits (n, rules) bool.

        ``X`` is the feature matrix (n, f) in the order of ``names``; a rule whose
        feature is missing (NaN) does not fire, nor does a rule with ``min_grade`` for a
        row below that grade or whose grade is missing.
        """
        codes = self.model_codes(probability, X, names)
        hits = np.zeros((len(probability), len(self.rules)), dtype=bool)
        for j, rule in enumerate(self.rules):
            value = X[:, names.index(rule.feature)]
            with np.errstate(invalid="ignore"):
                hits[:, j] = value < rule.below if rule.below is not None else value > rule.above
            if rule.min_grade is not None:
                hits[:, j] &= self._from_grade(rule.min_grade, X, names)
            codes = np.where(hits[:, j], np.maximum(codes, _RANK[rule.raise_to]), codes).astype(np.int8)
        return codes, hits

    def _from_grade(self, grade: str, X: np.ndarray, names: list[str]) -> np.ndarray:
        """Rows (n,) bool whose grade_level is ``grade`` or above (False where missing or not a column)."""
        levels = self.grade_levels or _GRADES
        if grade not in levels:
            raise ValueError(f"class rule min_grade {grade!r} is not a grade_level category ({', '.join(levels)})")
        if GRADE_FEATURE not in names:
            return np.zeros(len(X), dtype=bool)
        with np.errstate(invalid="ignore"):
            return X[:, names.index(GRADE_FEATURE)] >= levels.index(grade)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> ClassPolicy:
        return cls.model_validate(json.loads(text))


Source = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]


def choose_policy(probability: np.ndarray, y: np.ndarray, X: np.ndarray, names: list[str],
                  targets: PolicySettings, *, weight: np.ndarray | None = None, students: np.ndarray | None = None,
                  fallback: tuple[np.ndarray, ...] | None = None,
                  grade_levels: list[str] | None = None) -> ClassPolicy:
    """The policy from targets: pooled thresholds on the calibration rows, and per group when configured.

    ``probability``, ``y``, ``X`` (and ``weight``, ``students``: each row's student key)
    are the calibration rows. A group (a value of ``targets.thresholds_by``) with too few
    rows or dropouts there takes its thresholds from ``fallback`` = (probability, y, X,
    weight[, students]): rows of that group the booster was not fitted on (the
    early-stopping students of the training terms), when they have enough; otherwise it
    keeps the pooled thresholds. Every target missed is in ``missed`` (``where="calibration"``).
    ``grade_levels``: grade_level's categories in order (the catalog's), for rules' ``min_grade``.
    """
    pooled = choose_thresholds(probability, y, targets, weight=weight, students=students)
    policy = ClassPolicy(problem_threshold=pooled.problem_threshold, at_risk_threshold=pooled.at_risk_threshold,
                         rules=targets.rules, targets=pooled.targets, achieved=pooled.achieved,
                         thresholds_by=targets.thresholds_by, grade_levels=list(grade_levels or []),
                         missed=pooled.missed)
    if not targets.thresholds_by or targets.thresholds_by not in names:
        return policy
    column = names.index(targets.thresholds_by)
    sources: list[Source] = [(probability, y, X, weight, students)]
    if fallback is not None:
        sources.append((*fallback, *([None] * (5 - len(fallback)))))  # type: ignore[arg-type]
    keys = sorted({float(v) for p, _, x, _, _ in sources for v in np.unique(x[:, column]) if np.isfinite(v)})
    for key in keys:
        for p, labels, x, w, keys_of in sources:
            rows = x[:, column] == key
            if rows.sum() >= targets.min_group_rows and labels[rows].sum() >= targets.min_group_dropouts:
                chosen = choose_thresholds(p[rows], labels[rows], targets, weight=None if w is None else w[rows],
                                           students=None if keys_of is None else keys_of[rows])
                group = f"{key:g}"
                policy.groups[group] = GroupThresholds(
                    problem_threshold=chosen.problem_threshold, at_risk_threshold=chosen.at_risk_threshold,
                    achieved=chosen.achieved, rows=int(rows.sum()))
                policy.missed += [m.model_copy(update={"group": group}) for m in chosen.missed]
                break
    return policy


def wilson_bounds(successes: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (lower, upper) of a proportion ``successes / n`` at normal quantile ``z``.

    Arrays broadcast; ``n`` 0 gives (0, 1).
    """
    n = np.asarray(n, dtype=np.float64)
    p = np.asarray(successes, dtype=np.float64) / np.maximum(n, 1e-12)
    centre = p + z * z / (2 * np.maximum(n, 1e-12))
    spread = z * np.sqrt(p * (1 - p) / np.maximum(n, 1e-12) + z * z / (4 * np.maximum(n, 1e-12) ** 2))
    denominator = 1 + z * z / np.maximum(n, 1e-12)
    lower = np.where(n > 0, (centre - spread) / denominator, 0.0)
    upper = np.where(n > 0, (centre + spread) / denominator, 1.0)
    return np.clip(lower, 0.0, 1.0), np.clip(upper, 0.0, 1.0)


def _evidence(seen: np.ndarray, y_sorted: np.ndarray, lower: np.ndarray, last: int) -> str:
    """What the data above the fallback threshold shows, in words: a precision of 1.0 over 3 students is no promise."""
    if not len(seen):
        return "no rows"
    return (f"{int(seen[last])} students, {int(y_sorted[: last + 1].sum())} dropout rows above it; "
            f"lower bound {float(lower[last]):.2f}")


def _capped(ends: np.ndarray, flagged: np.ndarray, cap: float) -> int:
    """The last threshold edge (index into the sorted rows) flagging at most ``cap`` (weighted); the first edge
    when even that flags more (one run of equal probabilities above the cap)."""
    within = np.flatnonzero(ends & (flagged <= cap * (1 + 1e-12)))
    return int(within[-1]) if len(within) else int(np.flatnonzero(ends)[0]) if ends.any() else 0


def _nearest(ends: np.ndarray, flagged: np.ndarray, cap: float) -> int:
    """The threshold edge flagging the share nearest ``cap``: a run of equal probabilities across the cap
    goes in or stays out as a whole, whichever misses the capacity by less (``at_risk`` wants its capacity
    filled; the problem class's fallback wants never to pass it, :func:`_capped`)."""
    edges = np.flatnonzero(ends)
    return int(edges[np.argmin(np.abs(flagged[edges] - cap))]) if len(edges) else 0


def distinct_so_far(students: np.ndarray | None, rows: int) -> np.ndarray:
    """How many distinct students are among the first k rows (k = 1..rows); rows when no keys."""
    if students is None:
        return np.arange(1, rows + 1, dtype=np.float64)
    first = np.zeros(rows, dtype=np.float64)
    first[np.unique(students, return_index=True)[1]] = 1.0
    return np.cumsum(first)


def choose_thresholds(probability: np.ndarray, y: np.ndarray, targets: PolicySettings, *,
                      weight: np.ndarray | None = None, students: np.ndarray | None = None) -> ClassPolicy:
    """Thresholds from targets on calibrated probabilities and outcomes (``weight``: rows' sampling weights).

    ``problem``: the lowest threshold that keeps the precision promise *with a margin*:
    the Wilson lower bound (``targets.precision_z``) of the precision above it reaches
    ``problem_precision``, counted over the distinct students above it (``students``:
    each row's student key; one student is scored at several points of a term, and five
    rows of one child are not five observations), and at least ``min_problem_dropouts``
    dropout rows lie above it. Why a margin: the point estimate over the first ~20
    students above a threshold reaches 0.5 by luck often enough (a demo's semester-1
    threshold chosen so reached 0.037 on the held-out term); the bound keeps the promise
    for what the data can show. When no threshold does, the problem class falls back to
    the highest-scored ``problem_fallback_share`` of students (the top-k capacity) and
    the policy records a :class:`MissedTarget`.
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
    seen = distinct_so_far(None if students is None else students[order], len(p_sorted))
    lower, _ = wilson_bounds(precision * seen, seen, targets.precision_z)
    # A threshold t flags every row with p >= t: only the last row of a run of equal probabilities
    # (isotonic calibration gives long runs) is a threshold's true edge, so shares and precisions are
    # read there; the problem class's fallback never spills over its share on a tie.
    ends = np.r_[p_sorted[1:] != p_sorted[:-1], True] if len(p_sorted) else np.zeros(0, dtype=bool)
    eligible = ends & (lower >= targets.problem_precision) & (np.cumsum(y_sorted) >= targets.min_problem_dropouts)
    fell_back = not eligible.any()
    if fell_back:
        last = _capped(ends, flagged, targets.problem_fallback_share * population)
    else:
        last = int(np.flatnonzero(eligible)[-1])
    problem = float(p_sorted[last]) if len(p_sorted) else 1.0
    total = max(caught[-1], 1.0) if len(caught) else 1.0
    by_recall = int(np.searchsorted(caught / total, targets.at_risk_recall))
    recall_end = int(np.flatnonzero(ends[min(by_recall, len(ends) - 1):])[0]) + min(by_recall, len(ends) - 1) \
        if len(ends) else 0
    cut = min(recall_end, _nearest(ends, flagged, targets.at_risk_capacity_share * population))
    at_risk = min(float(p_sorted[cut]), problem) if len(p_sorted) else problem
    above_problem = probability >= problem
    above_risk = probability >= at_risk
    achieved = {
        "problem_precision": float(np.average(y[above_problem], weights=w[above_problem]))
        if above_problem.any() else float("nan"),
        "problem_share": float(w[above_problem].sum() / population),
        "flagged_recall": float((y * w)[above_risk].sum() / total),
        "flagged_share": float(w[above_risk].sum() / population),
    }
    if len(p_sorted):
        achieved["problem_precision_lower"] = float(lower[last])
    missed = [MissedTarget(
        target="problem_precision", wanted=targets.problem_precision, achieved=achieved["problem_precision"],
        where="calibration",
        fallback=f"no threshold reached precision {targets.problem_precision:.2f} with a margin (Wilson lower "
                 f"bound, at least {targets.min_problem_dropouts} dropouts above it): the problem class is the "
                 f"highest-scored {targets.problem_fallback_share:.0%} of students instead ({_evidence(seen, y_sorted, lower, last)})"
    )] if fell_back else []
    return ClassPolicy(problem_threshold=problem, at_risk_threshold=at_risk, rules=targets.rules,
                       targets={"problem_precision": targets.problem_precision,
                                "at_risk_recall": targets.at_risk_recall,
                                "at_risk_capacity_share": targets.at_risk_capacity_share},
                       achieved=achieved, missed=missed)
