"""Quality of a dropout score on a held-out term, beside its baselines.

Dropout is rare inside a term (a few percent), so accuracy says nothing: a model
that flags nobody is 97% accurate. What a school can act on is a short list, so
the headline figures are precision and recall among the top 5/10/20% of
students by score, next to ranking quality (ROC AUC, average precision) and,
for scores that are probabilities, calibration (Brier score, ECE).

Inputs everywhere:

* ``y`` — array of shape (n_rows,), 1 where the student dropped out, else 0.
* ``p`` — array of shape (n_rows,), the score; a probability in [0, 1] for
  models, or any number that ranks (a rule count) for baselines.

A metric that is undefined on the rows given (ROC AUC with one class only,
recall with no positives) is NaN; nothing here raises on such data.

**Top share.** The top ``share`` of rows is the first ``k = ceil(share · n)``
rows (at least one) when sorted by descending score with a *stable* sort, so
tied scores keep their input order and the result is reproducible.

**ECE** (expected calibration error) uses equal-frequency bins: rows sorted by
score (stable) are split into ``bins`` groups of as-equal-as-possible size, and
ECE = Σ_b (n_b / n) · |mean(y_b) − mean(p_b)|, in probability units (0 is
perfect). Equal-frequency bins keep every bin populated where a rare outcome
leaves equal-width bins above 0.3 nearly empty.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "TOP_SHARES",
    "calibration_curve_table",
    "evaluation_table",
    "group_values",
    "lead_time_table",
    "score_metrics",
    "top_k_rows",
]

TOP_SHARES: tuple[float, ...] = (0.05, 0.10, 0.20)

# Metrics that only mean something for a probability; NaN for ranking-only scores.
PROBABILITY_METRICS: tuple[str, ...] = ("brier", "ece")


def top_k_rows(n_rows: int, share: float) -> int:
    """Rows in the top ``share`` of ``n_rows``: ceil(share · n), at least 1 (0 if no rows)."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"top share must be in (0, 1], not {share}")
    if n_rows == 0:
        return 0
    # The small epsilon keeps float noise (0.07 * 100 = 7.000000000000001) from adding a row.
    return max(1, math.ceil(share * n_rows - 1e-9))


def score_metrics(
    y: ArrayLike,
    p: ArrayLike,
    *,
    top_shares: Sequence[float] = TOP_SHARES,
    ece_bins: int = 10,
) -> dict[str, float]:
    """Ranking, top-share and calibration metrics of one score.

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        Outcome, 0 or 1.
    p : array-like of shape (n_rows,)
        Score; higher means more at risk. No NaN.
    top_shares : sequence of float
        Shares of rows (0–1) for precision and recall at the top; 0.10 gives
        ``precision_top10`` and ``recall_top10``.
    ece_bins : int
        Number of equal-frequency bins for ``ece``.

    Returns
    -------
    dict of str to float
        ``rows``, ``positives``, ``base_rate``, ``roc_auc``, ``pr_auc`` (average
        precision), ``brier``, ``ece``, then ``precision_topN`` and
        ``recall_topN`` for each share. NaN where undefined.
    """
    y_arr, p_arr = _check_inputs(y, p)
    n = len(y_arr)
    positives = int(y_arr.sum())
    order = _descending_order(p_arr)
    roc_auc, pr_auc = _ranking_areas(y_arr[order], p_arr[order]) if 0 < positives < n else (math.nan, math.nan)
    out: dict[str, float] = {
        "rows": float(n),
        "positives": float(positives),
        "base_rate": positives / n if n else math.nan,
        "roc_auc": roc_auc,
        "pr_auc": pr_auc,
        # Not sklearn's brier_score_loss: it refuses scores outside [0, 1], and a
        # ranking-only score (a rule count) still gets a number the caller may drop.
        "brier": float(np.mean((p_arr - y_arr) ** 2)) if n else math.nan,
        "ece": _ece(y_arr, p_arr, ece_bins),
    }
    for share in top_shares:
        k = top_k_rows(n, share)
        hits = int(y_arr[order[:k]].sum())
        name = _share_name(share)
        out[f"precision_{name}"] = hits / k if k else math.nan
        out[f"recall_{name}"] = hits / positives if positives else math.nan
    return out


def calibration_curve_table(y: ArrayLike, p: ArrayLike, bins: int = 10) -> pd.DataFrame:
    """Reliability table with equal-frequency bins (see module doc).

    Returns
    -------
    DataFrame
        One row per bin, lowest scores first: ``bin`` (0-based),
        ``mean_predicted``, ``observed_rate``, ``rows``. Fewer than ``bins`` rows
        when there are fewer rows than bins; empty when ``y`` is empty.
    """
    y_arr, p_arr = _check_inputs(y, p)
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    records = [
        {
            "bin": i,
            "mean_predicted": float(p_arr[idx].mean()),
            "observed_rate": float(y_arr[idx].mean()),
            "rows": len(idx),
        }
        for i, idx in enumerate(_equal_frequency_bins(p_arr, bins))
    ]
    return pd.DataFrame(records, columns=["bin", "mean_predicted", "observed_rate", "rows"])


def evaluation_table(
    y: ArrayLike,
    scores: Mapping[str, ArrayLike],
    *,
    reference: str | None = "oracle",
    groups: Mapping[str, ArrayLike] | None = None,
    calibrated: set[str] | None = None,
    top_shares: Sequence[float] = TOP_SHARES,
    ece_bins: int = 10,
) -> pd.DataFrame:
    """One row per (slice, model): every model scored on the same rows, side by side.

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        Outcome, 0 or 1.
    scores : mapping of model name to array-like of shape (n_rows,)
        Each model's score on the same rows, e.g. ``{"oracle": ..., "lightgbm":
        ..., "abc_rule": ...}``. Rows of the table follow this order.
    reference : str or None
        Model the others are compared with (``auc_ratio_to_<reference>``,
        ``recall_top10_ratio_to_<reference>``). The ratio columns are NaN when
        the reference is not among ``scores``, and absent when ``reference`` is
        None. The ratios need 0.10 among ``top_shares``.
    groups : mapping of name to array-like of shape (n_rows,), optional
        Slicing attributes; every distinct non-missing value becomes a slice
        named ``"<name>=<value>"`` (``week=6``, ``grade=P6``), after the slice
        ``"overall"``. Restrict an array beforehand (set other values to None)
        to slice only where it means something.
    calibrated : set of str, optional
        Models whose score is a probability. The others (a rule count is not a
        probability) get NaN ``brier`` and ``ece``. None means every model.

    Returns
    -------
    DataFrame
        Columns ``slice``, ``group`` (``"overall"`` or the group name),
        ``value`` (None for overall), ``model``, ``rows``, ``positives``,
        ``base_rate``, the metrics of :func:`score_metrics`, then the ratio columns.
    """
    y_arr = np.asarray(y)
    score_arrays = {name: np.asarray(s) for name, s in scores.items()}
    for name, p in score_arrays.items():
        if p.shape != y_arr.shape:
            raise ValueError(f"score {name!r} has shape {p.shape}, y has {y_arr.shape}")
    slices = [("overall", "overall", None, np.ones(len(y_arr), dtype=bool))]
    for group, values in (groups or {}).items():
        values_arr = np.asarray(values, dtype=object)
        if len(values_arr) != len(y_arr):
            raise ValueError(f"group {group!r} has {len(values_arr)} rows, y has {len(y_arr)}")
        for value in group_values(values_arr):
            value = value.item() if isinstance(value, np.generic) else value
            slices.append((f"{group}={value}", group, value, values_arr == value))

    records = []
    for slice_name, group, value, mask in slices:
        for model, p in score_arrays.items():
            metrics = score_metrics(y_arr[mask], p[mask], top_shares=top_shares, ece_bins=ece_bins)
            if calibrated is not None and model not in calibrated:
                metrics.update({name: math.nan for name in PROBABILITY_METRICS})
            metrics["rows"] = int(metrics["rows"])
            metrics["positives"] = int(metrics["positives"])
            records.append(
                {"slice": slice_name, "group": group, "value": value, "model": model, **metrics}
            )
    table = pd.DataFrame(records)
    # Object dtype keeps week 6 an int beside the overall row's None (not 6.0 beside NaN).
    table["value"] = pd.Series([r["value"] for r in records], dtype=object)
    if reference is not None and not table.empty:
        _add_reference_ratios(table, reference)
    return table


def lead_time_table(evaluation: pd.DataFrame, group: str = "week") -> pd.DataFrame:
    """Recall at the top 10% per school week and model, from :func:`evaluation_table`.

    Returns
    -------
    DataFrame
        Columns ``week`` (the slice value), ``model``, ``rows``, ``positives``,
        ``recall_top10``, ``precision_top10``, sorted by week then model order.
    """
    rows = evaluation[evaluation["group"] == group]
    out = rows.rename(columns={"value": "week"})[
        ["week", "model", "rows", "positives", "recall_top10", "precision_top10"]
    ]
    return out.reset_index(drop=True)


def group_values(values: ArrayLike) -> list[object]:
    """Distinct non-missing values of a group array, sorted (numbers numerically, else as text)."""
    present = [v for v in pd.unique(np.asarray(values, dtype=object)) if not pd.isna(v)]
    try:
        return sorted(present)
    except TypeError:
        return sorted(present, key=str)


def _add_reference_ratios(table: pd.DataFrame, reference: str) -> None:
    """Add ``auc_ratio_to_<ref>`` and ``recall_top10_ratio_to_<ref>`` in place."""
    for metric, column in (
        ("roc_auc", f"auc_ratio_to_{reference}"),
        ("recall_top10", f"recall_top10_ratio_to_{reference}"),
    ):
        ref = table.loc[table["model"] == reference].set_index("slice")[metric]
        ref_value = table["slice"].map(ref).astype(float)
        # A zero reference gives no meaningful ratio; NaN rather than inf.
        ref_value = ref_value.where(ref_value > 0)
        table[column] = table[metric].astype(float) / ref_value


def _check_inputs(y: ArrayLike, p: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    y_arr = np.asarray(y)
    p_arr = np.asarray(p, dtype=np.float64)
    if y_arr.ndim != 1 or p_arr.ndim != 1 or len(y_arr) != len(p_arr):
        raise ValueError(
            f"y and p must be 1-D and the same length, not shapes {y_arr.shape} and {p_arr.shape}"
        )
    if not np.isin(y_arr, (0, 1)).all():
        raise ValueError(f"y must hold only 0 and 1; found {sorted(set(y_arr.tolist()) - {0, 1})[:5]}")
    if np.isnan(p_arr).any():
        raise ValueError(f"p has {int(np.isnan(p_arr).sum())} NaN scores; score every row")
    return y_arr.astype(np.int64), p_arr


def _descending_order(p: NDArray[np.float64]) -> NDArray[np.intp]:
    """Row indices by descending score; ties keep input order (stable sort on -p)."""
    return np.argsort(-p, kind="stable")


def _ranking_areas(y: NDArray[np.int64], p: NDArray[np.float64]) -> tuple[float, float]:
    """ROC AUC and average precision of rows already sorted by descending score, both classes present.

    The definitions of scikit-learn's ``roc_auc_score`` (trapezoids between the ROC points, so
    tied scores count half) and ``average_precision_score`` (sum over thresholds of the recall
    gained times the precision there), from the one sort the top shares use instead of one each.
    """
    last_of_tie = np.r_[np.flatnonzero(np.diff(p)), len(p) - 1]  # each distinct score's last row
    true_positives = np.cumsum(y)[last_of_tie].astype(np.float64)
    false_positives = (last_of_tie + 1) - true_positives
    tp = np.r_[0.0, true_positives]
    fp = np.r_[0.0, false_positives]
    roc_auc = float(np.sum(np.diff(fp) * (tp[1:] + tp[:-1])) / (2.0 * tp[-1] * fp[-1]))
    precision = true_positives / (true_positives + false_positives)
    pr_auc = float(np.sum(np.diff(tp) / tp[-1] * precision))
    return roc_auc, pr_auc


def _equal_frequency_bins(p: NDArray[np.float64], bins: int) -> list[NDArray[np.intp]]:
    """Row indices of each equal-frequency bin, lowest scores first; no empty bins."""
    if len(p) == 0:
        return []
    order = np.argsort(p, kind="stable")
    return np.array_split(order, min(bins, len(p)))


def _ece(y: NDArray[np.int64], p: NDArray[np.float64], bins: int) -> float:
    n = len(y)
    if n == 0:
        return math.nan
    return float(
        sum(len(idx) / n * abs(y[idx].mean() - p[idx].mean()) for idx in _equal_frequency_bins(p, bins))
    )


def _share_name(share: float) -> str:
    """0.10 -> 'top10'; 0.025 -> 'top2.5'."""
    percent = round(share * 100, 6)
    return f"top{int(percent)}" if percent == int(percent) else f"top{percent:g}"

