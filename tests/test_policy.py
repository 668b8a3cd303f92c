"""The class policy: thresholds from targets, weighted rows, and thresholds per group (semester)."""

from __future__ import annotations

import numpy as np

from risk.models.policy import ClassPolicy, GroupThresholds, choose_policy, choose_thresholds
from risk.models.settings import PolicySettings

TARGETS = PolicySettings(problem_precision=0.5, at_risk_recall=0.6, at_risk_capacity_share=0.15,
                         thresholds_by="year_end_term", min_group_rows=500, min_group_dropouts=10)
NAMES = ["att_rate_term", "year_end_term"]


def semester(n: int, year_end: int, base: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calibrated probabilities around ``base`` with outcomes drawn from them, and their feature rows."""
    rng = np.random.default_rng(seed)
    p = np.clip(rng.beta(1.0, 1.0 / base - 1.0, n), 0, 1)
    y = (rng.random(n) < p).astype(np.int8)
    X = np.column_stack([rng.uniform(0.85, 1.0, n), np.full(n, float(year_end))])
    return p, y, X


def test_a_weighted_row_counts_as_the_rows_it_stands_for():
    p, y, _ = semester(4_000, 0, 0.05, 1)
    negatives = np.flatnonzero(y == 0)
    kept = np.sort(np.concatenate([np.flatnonzero(y == 1), negatives[::2]]))  # every other negative, weight 2
    doubled = np.concatenate([kept, negatives[::2]])
    weight = np.where(y[kept] == 1, 1.0, 2.0)
    by_weight = choose_thresholds(p[kept], y[kept], TARGETS, weight=weight)
    by_copies = choose_thresholds(p[doubled], y[doubled], TARGETS)
    assert by_weight.at_risk_threshold == by_copies.at_risk_threshold
    assert by_weight.problem_threshold == by_copies.problem_threshold
    assert abs(by_weight.achieved["flagged_share"] - by_copies.achieved["flagged_share"]) < 1e-9


def test_each_semester_flags_about_its_capacity_when_year_end_risk_is_higher():
    p1, y1, X1 = semester(20_000, 0, 0.02, 2)   # semester 1: calibration term
    p2, y2, X2 = semester(20_000, 1, 0.10, 3)   # semester 2: only among the early-stopping rows
    pooled_only = choose_thresholds(p1, y1, TARGETS)
    year_end_flagged_by_one_threshold = (p2 >= pooled_only.at_risk_threshold).mean()
    policy = choose_policy(p1, y1, X1, NAMES, TARGETS, fallback=(p2, y2, X2, None))
    assert set(policy.groups) == {"0", "1"}
    codes, _ = policy.classify(p2, X2, NAMES)
    flagged = (codes > 0).mean()
    assert year_end_flagged_by_one_threshold > 0.3  # the problem this fixes
    assert flagged <= TARGETS.at_risk_capacity_share + 0.01
    codes1, _ = policy.classify(p1, X1, NAMES)
    assert abs((codes1 > 0).mean() - (p1 >= pooled_only.at_risk_threshold).mean()) < 0.01


def test_rows_of_a_group_never_seen_or_with_no_value_get_the_pooled_thresholds():
    policy = ClassPolicy(problem_threshold=0.5, at_risk_threshold=0.2, thresholds_by="year_end_term",
                         groups={"1": GroupThresholds(problem_threshold=0.9, at_risk_threshold=0.6)})
    X = np.array([[0.9, 1.0], [0.9, 0.0], [0.9, np.nan]])
    codes, _ = policy.classify(np.array([0.55, 0.55, 0.55]), X, NAMES)
    assert codes.tolist() == [0, 2, 2]
    # A model package from before groups existed reads and classifies as it did.
    old = ClassPolicy.from_json('{"problem_threshold": 0.5, "at_risk_threshold": 0.2}')
    assert old.classify(np.array([0.3, 0.6]), X[:2], NAMES)[0].tolist() == [1, 2]


def test_a_group_too_small_everywhere_keeps_the_pooled_thresholds():
    p1, y1, X1 = semester(20_000, 0, 0.02, 4)
    p2, y2, X2 = semester(100, 1, 0.10, 5)
    policy = choose_policy(p1, y1, X1, NAMES, TARGETS, fallback=(p2, y2, X2, None))
    assert set(policy.groups) == {"0"}
    problem, at_risk = policy.thresholds(X2, NAMES)
    assert (at_risk == policy.at_risk_threshold).all() and (problem == policy.problem_threshold).all()
