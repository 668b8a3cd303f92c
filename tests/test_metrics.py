"""Score metrics, the evaluation table and calibration bins on hand-made arrays."""

import math

import numpy as np
import pytest

from risk.models.metrics import (
    calibration_curve_table,
    evaluation_table,
    lead_time_table,
    score_metrics,
    top_k_rows,
)

# Ten students, scores 0.9, 0.8, ..., 0.0; the 1st and the 4th dropped out.
Y10 = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0])
P10 = np.round(np.linspace(0.9, 0.0, 10), 10)


def test_top_share_is_ceil_of_share_times_rows_and_at_least_one():
    assert top_k_rows(10, 0.10) == 1
    assert top_k_rows(10, 0.05) == 1  # half a row rounds up to one
    assert top_k_rows(10, 0.20) == 2
    assert top_k_rows(100, 0.07) == 7  # 0.07 * 100 is 7.000000000000001 in floats
    assert top_k_rows(0, 0.10) == 0


def test_top10_of_ten_rows_is_the_single_highest_score():
    m = score_metrics(Y10, P10)
    assert m["precision_top10"] == 1.0  # row 0 (0.9) dropped out
    assert m["recall_top10"] == 0.5  # 1 of 2 dropouts
    assert m["precision_top5"] == 1.0


def test_top20_of_ten_rows_is_two_rows():
    m = score_metrics(Y10, P10)
    assert m["precision_top20"] == 0.5  # rows 0 (dropout) and 1 (not)
    assert m["recall_top20"] == 0.5


def test_ranking_metrics_match_hand_counts():
    m = score_metrics(Y10, P10)
    # 0.9 beats all 8 non-dropouts, 0.6 beats 6 of them: 14 of 16 pairs.
    assert m["roc_auc"] == pytest.approx(14 / 16)
    # Dropouts at ranks 1 and 4: precision 1/1 and 2/4, averaged.
    assert m["pr_auc"] == pytest.approx((1 + 0.5) / 2)
    # (0.1² + 0.8² + 0.7² + 0.4² + 0.5² + 0.4² + 0.3² + 0.2² + 0.1² + 0²) / 10
    assert m["brier"] == pytest.approx(1.85 / 10)
    assert (m["rows"], m["positives"], m["base_rate"]) == (10, 2, 0.2)


def test_tied_scores_keep_input_order():
    tied = np.full(10, 0.5)
    first_is_dropout = np.array([1] + [0] * 9)
    second_is_dropout = np.array([0, 1] + [0] * 8)
    assert score_metrics(first_is_dropout, tied)["precision_top10"] == 1.0
    assert score_metrics(second_is_dropout, tied)["precision_top10"] == 0.0


def test_ece_is_zero_when_every_bin_is_calibrated():
    p = np.array([0.0, 0.0, 0.5, 0.5, 1.0, 1.0])
    y = np.array([0, 0, 1, 0, 1, 1])
    assert score_metrics(y, p, ece_bins=3)["ece"] == pytest.approx(0.0)


def test_ece_weights_each_bins_gap_by_its_share_of_rows():
    p = np.array([0.1, 0.1, 0.9, 0.9])
    y = np.array([0, 0, 0, 1])
    # Bin 1: |0 - 0.1| = 0.1; bin 2: |0.5 - 0.9| = 0.4; each half of the rows.
    assert score_metrics(y, p, ece_bins=2)["ece"] == pytest.approx(0.5 * 0.1 + 0.5 * 0.4)


def test_one_class_gives_nan_not_an_error():
    m = score_metrics(np.zeros(5, dtype=int), np.array([0.1, 0.2, 0.3, 0.4, 0.5]))
    assert math.isnan(m["roc_auc"])
    assert math.isnan(m["pr_auc"])
    assert math.isnan(m["recall_top10"])
    assert m["precision_top10"] == 0.0
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.09 + 0.16 + 0.25) / 5)


def test_rule_count_above_one_is_still_ranked():
    counts = np.array([3, 0, 1, 2, 0, 0, 0, 0, 0, 0])
    m = score_metrics(Y10, counts)
    assert m["recall_top20"] == 1.0  # rows 0 (3) and 3 (2) are the two dropouts


def test_scores_with_nan_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        score_metrics(Y10, np.where(np.arange(10) == 3, np.nan, P10))


def test_calibration_curve_has_equal_frequency_bins():
    table = calibration_curve_table(Y10, P10, bins=5)
    assert table["rows"].tolist() == [2, 2, 2, 2, 2]
    # Lowest scores first: (0.0, 0.1), ..., (0.8, 0.9).
    np.testing.assert_allclose(table["mean_predicted"], [0.05, 0.25, 0.45, 0.65, 0.85])
    np.testing.assert_allclose(table["observed_rate"], [0, 0, 0, 0.5, 0.5])


def test_evaluation_table_has_one_row_per_slice_and_model():
    week = np.array([2] * 5 + [6] * 5)
    table = evaluation_table(
        Y10, {"oracle": P10, "rule": P10[::-1]}, groups={"week": week}
    )
    assert list(zip(table["slice"], table["model"], strict=True)) == [
        ("overall", "oracle"), ("overall", "rule"),
        ("week=2", "oracle"), ("week=2", "rule"),
        ("week=6", "oracle"), ("week=6", "rule"),
    ]
    assert table["rows"].tolist() == [10, 10, 5, 5, 5, 5]
    assert table["positives"].tolist() == [2, 2, 2, 2, 0, 0]


def test_ratios_compare_each_model_with_the_reference_on_the_same_slice():
    table = evaluation_table(Y10, {"oracle": P10, "rule": P10[::-1]}).set_index("model")
    # The reversed score ranks the dropouts 10th and 7th: 2 of 16 pairs.
    assert table.loc["rule", "auc_ratio_to_oracle"] == pytest.approx((2 / 16) / (14 / 16))
    assert table.loc["oracle", "auc_ratio_to_oracle"] == 1.0
    assert table.loc["rule", "recall_top10_ratio_to_oracle"] == 0.0


def test_missing_reference_gives_nan_ratios_and_none_drops_them():
    table = evaluation_table(Y10, {"model": P10})
    assert table["auc_ratio_to_oracle"].isna().all()
    assert "auc_ratio_to_oracle" not in evaluation_table(Y10, {"model": P10}, reference=None)


def test_models_outside_calibrated_get_no_brier_or_ece():
    table = evaluation_table(Y10, {"oracle": P10, "rule": P10}, calibrated={"oracle"})
    by_model = table.set_index("model")
    assert by_model.loc["oracle", "brier"] == pytest.approx(0.185)
    assert math.isnan(by_model.loc["rule", "brier"])
    assert math.isnan(by_model.loc["rule", "ece"])
    assert by_model.loc["rule", "roc_auc"] == pytest.approx(0.875)


def test_missing_group_values_make_no_slice():
    grade = np.array(["P6"] * 4 + [None] * 6, dtype=object)
    table = evaluation_table(Y10, {"m": P10}, groups={"grade": grade})
    assert table["slice"].tolist() == ["overall", "grade=P6"]


def test_lead_time_table_keeps_week_slices_only():
    week = np.array([2] * 5 + [6] * 5)
    lead = lead_time_table(evaluation_table(Y10, {"m": P10}, groups={"week": week}))
    assert lead["week"].tolist() == [2, 6]
    # Week 2 holds both dropouts, the top row (0.9) one of them.
    assert lead["recall_top10"].iloc[0] == 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_and_average_precision_are_scikit_learns_with_ties(seed):
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(seed)
    y = (rng.random(5_000) < 0.05).astype(int)
    # a rule count (heavy ties), a rounded probability (some ties) and a continuous score
    for p in (rng.integers(0, 4, 5_000).astype(float) + y, np.round(rng.random(5_000) + 0.3 * y, 2),
              rng.random(5_000) + 0.2 * y):
        m = score_metrics(y, p)
        assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p), rel=1e-12)
        assert m["pr_auc"] == pytest.approx(average_precision_score(y, p), rel=1e-12)
