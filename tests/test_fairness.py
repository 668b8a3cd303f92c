"""Per-group rates and disparity ratios on two hand-built groups of 100 students."""

import math

import numpy as np
import pytest

from risk.models.fairness import fairness_table


def _group(name, *, rows, positives, flagged_pos, flagged_neg, p):
    """Arrays for one group: dropouts first, the first flagged_* of each kind flagged."""
    y = np.array([1] * positives + [0] * (rows - positives))
    flagged = np.zeros(rows, dtype=bool)
    flagged[:flagged_pos] = True
    flagged[positives : positives + flagged_neg] = True
    return y, np.full(rows, p), flagged, np.array([name] * rows, dtype=object)


def _table(*groups, **kwargs):
    y, p, flagged, values = (np.concatenate(parts) for parts in zip(*groups, strict=True))
    return fairness_table(y, p, flagged, {"region": values}, **kwargs).set_index("group")


# A: 10 dropouts of 100, 8 of them flagged, 2 false alarms; mean probability 0.10.
GROUP_A = dict(rows=100, positives=10, flagged_pos=8, flagged_neg=2, p=0.10)
# B: 10 dropouts of 100, 4 flagged, 4 false alarms; mean probability 0.125.
GROUP_B = dict(rows=100, positives=10, flagged_pos=4, flagged_neg=4, p=0.125)


def test_group_rates_match_hand_counts():
    t = _table(_group("A", **GROUP_A), _group("B", **GROUP_B))
    assert t.loc["A", "recall"] == pytest.approx(8 / 10)
    assert t.loc["A", "fpr"] == pytest.approx(2 / 90)
    assert t.loc["A", "precision"] == pytest.approx(8 / 10)
    assert t.loc["B", "precision"] == pytest.approx(4 / 8)
    assert t.loc["B", "observed_rate"] == pytest.approx(0.10)
    assert t.loc["B", "calibration"] == pytest.approx(0.10 / 0.125)


def test_ratios_are_to_the_best_group_of_the_attribute():
    t = _table(_group("A", **GROUP_A), _group("B", **GROUP_B))
    assert t.loc["B", "recall_ratio"] == pytest.approx(0.4 / 0.8)  # best: highest recall (A)
    assert t.loc["B", "fpr_ratio"] == pytest.approx((4 / 90) / (2 / 90))  # best: lowest fpr (A)
    assert t.loc["B", "precision_ratio"] == pytest.approx(0.5 / 0.8)
    assert t.loc["B", "calibration_ratio"] == pytest.approx(0.8 / 1.0)  # A is exactly 1
    assert t.loc["A", ["recall_ratio", "fpr_ratio", "precision_ratio"]].tolist() == [1, 1, 1]


def test_disparity_is_flagged_with_its_reasons():
    t = _table(_group("A", **GROUP_A), _group("B", **GROUP_B))
    assert t.loc["B", "flagged_disparity"]
    reasons = t.loc["B", "disparity_reasons"]
    assert "recall" in reasons and "fpr" in reasons and "precision" in reasons
    # A calibration ratio of exactly 0.8 lies on the band's edge: fair.
    assert "calibration" not in reasons
    assert not t.loc["A", "flagged_disparity"]
    assert t.loc["A", "disparity_reasons"] == ""


def test_parity_is_not_flagged():
    t = _table(_group("A", **GROUP_A), _group("B", **GROUP_A))
    assert not t["flagged_disparity"].any()
    assert (t[["recall_ratio", "fpr_ratio", "precision_ratio", "calibration_ratio"]] == 1).all().all()


def test_group_without_dropouts_has_nan_recall_and_is_not_flagged_for_it():
    no_dropouts = dict(rows=100, positives=0, flagged_pos=0, flagged_neg=2, p=0.10)
    t = _table(_group("A", **GROUP_A), _group("C", **no_dropouts))
    assert math.isnan(t.loc["C", "recall"])
    assert math.isnan(t.loc["C", "recall_ratio"])
    assert "recall" not in t.loc["C", "disparity_reasons"]
    assert t.loc["A", "recall_ratio"] == 1.0  # best among the groups that have dropouts


def test_false_alarms_against_a_best_group_with_none_are_flagged():
    clean = dict(rows=100, positives=10, flagged_pos=8, flagged_neg=0, p=0.10)
    t = _table(_group("A", **GROUP_A), _group("D", **clean))
    assert t.loc["D", "fpr_ratio"] == 1.0
    assert math.isinf(t.loc["A", "fpr_ratio"])
    assert "fpr" in t.loc["A", "disparity_reasons"]


def test_groups_below_min_rows_are_left_out():
    small = dict(rows=49, positives=1, flagged_pos=0, flagged_neg=0, p=0.10)
    t = _table(_group("A", **GROUP_A), _group("E", **small))
    assert t.index.tolist() == ["A"]
    t = _table(_group("A", **GROUP_A), _group("E", **small), min_rows=10)
    assert t.index.tolist() == ["A", "E"]
