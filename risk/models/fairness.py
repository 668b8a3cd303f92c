"""Error rates and calibration by group, and where they differ too much.

For each attribute (sex, region, nationality, disability, school size, ...)
and each of its groups, :func:`fairness_table` reports how the flagged list
treats that group:

* ``recall`` — share of the group's dropouts that were flagged (NaN with no dropouts);
* ``fpr`` — share of the group's non-dropouts that were flagged (NaN with none);
* ``precision`` — share of the group's flagged students who dropped out (NaN if
  nobody was flagged);
* ``observed_rate`` / ``predicted_rate`` — dropout rate and mean probability;
  ``calibration`` is their quotient (1 is calibrated, below 1 over-predicts;
  NaN when the mean probability is 0).

Each metric is divided by the value of the *best* group of the same attribute,
the reference group in the aequitas sense, chosen per metric:
highest recall, lowest false-positive rate, highest precision, and calibration
closest to 1 measured as |log(calibration)|, so 0.8 and 1.25 count as equally
far. A ratio outside 0.8–1.25 (aequitas' default band, the "four-fifths rule"
and its inverse) flags the group, and ``disparity_reasons`` names the metrics.

Equal values give a ratio of 1, also when both are 0; a positive false-positive
rate against a best group with none gives an infinite ratio (flagged). NaN
metrics give NaN ratios and never flag. Groups smaller than ``min_rows`` are
left out: their rates are too noisy to compare; with a rare outcome even
groups of a few hundred rows hold few dropouts, so read ratios beside
``positives``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from risk.models.metrics import group_values

__all__ = ["DISPARITY_HIGH", "DISPARITY_LOW", "fairness_table"]

DISPARITY_LOW = 0.8
DISPARITY_HIGH = 1.25
_TOLERANCE = 1e-9

# Which way is better, per metric: the reference group is the best one.
_BEST = {
    "recall": "max",
    "fpr": "min",
    "precision": "max",
    "calibration": "closest_to_1",
}

COLUMNS: tuple[str, ...] = (
    "attribute", "group", "rows", "positives", "flagged",
    "recall", "fpr", "precision", "observed_rate", "predicted_rate", "calibration",
    "recall_ratio", "fpr_ratio", "precision_ratio", "calibration_ratio",
    "flagged_disparity", "disparity_reasons",
)


def fairness_table(
    y: ArrayLike,
    p: ArrayLike,
    flagged: ArrayLike,
    groups: Mapping[str, ArrayLike],
    *,
    min_rows: int = 50,
) -> pd.DataFrame:
    """Per-group error rates, calibration and disparity ratios (see module doc).

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        Outcome, 0 or 1.
    p : array-like of shape (n_rows,)
        Calibrated dropout probability, 0–1.
    flagged : array-like of bool, shape (n_rows,)
        True where the policy puts the student on the list (e.g. class
        ``at_risk`` or ``problem``).
    groups : mapping of attribute name to array-like of shape (n_rows,)
        Group of each row per attribute; missing values (None, NaN) belong to no group.
    min_rows : int
        Smallest group reported.

    Returns
    -------
    DataFrame
        One row per (attribute, group) with at least ``min_rows`` rows, in
        attribute order then sorted group value; columns as in ``COLUMNS``.
    """
    y_arr = np.asarray(y).astype(np.int64)
    p_arr = np.asarray(p, dtype=np.float64)
    flag_arr = np.asarray(flagged, dtype=bool)
    if not (y_arr.shape == p_arr.shape == flag_arr.shape) or y_arr.ndim != 1:
        raise ValueError(
            f"y, p and flagged must be 1-D and the same length, not shapes "
            f"{y_arr.shape}, {p_arr.shape} and {flag_arr.shape}"
        )
    frames = []
    for attribute, values in groups.items():
        values_arr = np.asarray(values, dtype=object)
        if values_arr.shape != y_arr.shape:
            raise ValueError(f"group {attribute!r} has shape {values_arr.shape}, y has {y_arr.shape}")
        records = [
            {"attribute": attribute, "group": value, **_group_rates(y_arr[m], p_arr[m], flag_arr[m])}
            for value in group_values(values_arr)
            if (m := values_arr == value).sum() >= min_rows
        ]
        if records:
            frames.append(_with_ratios(pd.DataFrame(records)))
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(COLUMNS)]


def _group_rates(
    y: NDArray[np.int64], p: NDArray[np.float64], flagged: NDArray[np.bool_]
) -> dict[str, float | int]:
    rows = len(y)
    positives = int(y.sum())
    negatives = rows - positives
    n_flagged = int(flagged.sum())
    true_flags = int((flagged & (y == 1)).sum())
    observed = positives / rows
    predicted = float(p.mean())
    return {
        "rows": rows,
        "positives": positives,
        "flagged": n_flagged,
        "recall": true_flags / positives if positives else math.nan,
        "fpr": (n_flagged - true_flags) / negatives if negatives else math.nan,
        "precision": true_flags / n_flagged if n_flagged else math.nan,
        "observed_rate": observed,
        "predicted_rate": predicted,
        "calibration": observed / predicted if predicted > 0 else math.nan,
    }


def _with_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``<metric>_ratio`` to the best group, the flag and its reasons, for one attribute."""
    reasons: list[list[str]] = [[] for _ in range(len(table))]
    for metric, rule in _BEST.items():
        values = table[metric].to_numpy(dtype=np.float64)
        ratio = _ratio(values, _best_value(values, rule))
        table[f"{metric}_ratio"] = ratio
        # The band's ends are fair (aequitas: 0.8 <= ratio <= 1.25); the tolerance keeps
        # float noise (0.4 / 0.5 = 0.7999...) from flagging a ratio on the line.
        # NaN compares False both ways, so an undefined metric never flags.
        outside = (ratio < DISPARITY_LOW - _TOLERANCE) | (ratio > DISPARITY_HIGH + _TOLERANCE)
        for i in np.flatnonzero(outside):
            reasons[i].append(f"{metric} {ratio[i]:.2f}x best")
    table["flagged_disparity"] = [bool(r) for r in reasons]
    table["disparity_reasons"] = ["; ".join(r) for r in reasons]
    return table


def _best_value(values: NDArray[np.float64], rule: str) -> float:
    defined = values[~np.isnan(values)]
    if len(defined) == 0:
        return math.nan
    if rule == "max":
        return float(defined.max())
    if rule == "min":
        return float(defined.min())
    with np.errstate(divide="ignore"):
        distance = np.abs(np.log(defined))  # 0 is infinitely far from 1, never best unless alone
    return float(defined[np.argmin(distance)])


def _ratio(values: NDArray[np.float64], best: float) -> NDArray[np.float64]:
    """values / best, with equal values (0 and 0 included) giving exactly 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = values / best
    ratio[values == best] = 1.0
    return ratio

