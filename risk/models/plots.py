"""PNG figures for the model card: reliability, lead time and SHAP summary.

Every function draws on its own ``matplotlib.figure.Figure`` (rendered by Agg),
never through ``pyplot``: no display is needed, no global figure state is left
behind, and nothing here changes the backend of a caller's process. Labels are
English only, since Thai fonts may be missing where the card is built. Each
function writes one PNG and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from numpy.typing import NDArray

__all__ = ["calibration_plot", "lead_time_plot", "shap_summary_plot"]

_DPI = 110
# Dots in the SHAP summary are drawn for at most this many rows (a fixed sample):
# more only blur the picture and slow the card down.
_MAX_DOTS = 2000


def calibration_plot(curves: Mapping[str, pd.DataFrame], path: str | Path) -> Path:
    """Reliability diagram of several models against the diagonal.

    Parameters
    ----------
    curves : mapping of model name to DataFrame
        Each as from :func:`risk.models.metrics.calibration_curve_table`
        (columns ``mean_predicted`` and ``observed_rate``, one row per bin).
    path : str or Path
        PNG to write; its folder must exist.
    """
    fig = Figure(figsize=(5.5, 5), dpi=_DPI)
    ax = fig.add_subplot()
    top = 0.0
    for name, curve in curves.items():
        ax.plot(curve["mean_predicted"], curve["observed_rate"], marker="o", label=name)
        top = max(top, float(curve["mean_predicted"].max()), float(curve["observed_rate"].max()))
    # Dropout probabilities are mostly small: zoom to the range used, not 0–1.
    top = min(1.0, top * 1.05) if top > 0 else 1.0
    ax.plot([0, top], [0, top], linestyle="--", color="grey", label="perfect")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("Mean predicted probability (bin)")
    ax.set_ylabel("Observed dropout rate (bin)")
    ax.set_title("Calibration (equal-frequency bins)")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def lead_time_plot(table: pd.DataFrame, path: str | Path) -> Path:
    """Recall at the top 10% by school week, one line per model (oracle included).

    Parameters
    ----------
    table : DataFrame
        Columns ``week``, ``model``, ``recall_top10`` (as from
        :func:`risk.models.metrics.lead_time_table`).
    path : str or Path
        PNG to write.
    """
    fig = Figure(figsize=(6.5, 4), dpi=_DPI)
    ax = fig.add_subplot()
    for model, rows in table.groupby("model", sort=False):
        rows = rows.sort_values("week")
        style = "--" if model == "oracle" else "-"
        ax.plot(rows["week"], rows["recall_top10"], linestyle=style, marker="o", label=str(model))
    ax.set_xlabel("School week of the term")
    ax.set_ylabel("Recall at top 10%")
    ax.set_ylim(0, 1)
    ax.set_title("Lead time: how early the list finds dropouts")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def shap_summary_plot(
    contribs: NDArray[np.float64],
    X: NDArray[np.float64],
    feature_names: Sequence[str],
    path: str | Path,
    max_features: int = 20,
) -> Path:
    """Mean |SHAP| bar chart beside a beeswarm-like dot plot of the top features.

    Parameters
    ----------
    contribs : array of shape (n_rows, n_features)
        SHAP contributions (log-odds units), without the bias column that
        LightGBM's ``pred_contrib`` appends.
    X : array of shape (n_rows, n_features)
        Feature values of the same rows; NaN allowed (drawn grey).
    feature_names : sequence of str, length n_features
        English names or codes (no Thai: fonts may be missing).
    path : str or Path
        PNG to write.
    max_features : int
        Features shown, by mean |SHAP|, largest on top.
    """
    contribs = np.asarray(contribs, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    if contribs.shape != X.shape or contribs.ndim != 2 or contribs.shape[1] != len(feature_names):
        raise ValueError(
            f"contribs {contribs.shape}, X {X.shape} and {len(feature_names)} feature names "
            "must agree as (n_rows, n_features)"
        )
    importance = np.abs(contribs).mean(axis=0)
    top = np.argsort(-importance, kind="stable")[:max_features][::-1]  # largest drawn last = on top
    rows = _dot_rows(len(contribs))
    names = [feature_names[j] for j in top]
    y_pos = np.arange(len(top))

    fig = Figure(figsize=(11, 0.35 * len(top) + 1.8), dpi=_DPI)
    bar_ax, dot_ax = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1, 2]})
    bar_ax.barh(y_pos, importance[top], color="#4c72b0")
    bar_ax.set_yticks(y_pos, names)
    bar_ax.set_xlabel("Mean |SHAP| (log-odds)")
    bar_ax.set_title("Feature importance")

    rng = np.random.default_rng(0)  # fixed jitter: the same data draws the same picture
    points = None
    for pos, j in zip(y_pos, top, strict=True):
        colour = _percentile_ranks(X[rows, j])
        jitter = rng.uniform(-0.3, 0.3, size=len(rows))
        missing = np.isnan(colour)
        dot_ax.scatter(contribs[rows, j][missing], (pos + jitter)[missing], s=6, c="lightgrey")
        points = dot_ax.scatter(
            contribs[rows, j][~missing], (pos + jitter)[~missing], s=6,
            c=colour[~missing], cmap="coolwarm", vmin=0, vmax=1,
        )
    dot_ax.axvline(0, color="grey", linewidth=0.8)
    dot_ax.set_xlabel("SHAP value (log-odds; right raises risk)")
    dot_ax.set_title("Contribution by row")
    if points is not None:
        bar = fig.colorbar(points, ax=dot_ax, fraction=0.04)
        bar.set_label("Feature value percentile (grey: missing)")
    fig.tight_layout()
    return _save(fig, path)


def _dot_rows(n_rows: int) -> NDArray[np.intp]:
    """All rows, or a fixed evenly spaced sample of ``_MAX_DOTS`` of them."""
    if n_rows <= _MAX_DOTS:
        return np.arange(n_rows)
    return np.linspace(0, n_rows - 1, _MAX_DOTS).astype(np.intp)


def _percentile_ranks(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rank of each value among the non-missing ones, 0 (lowest) to 1 (highest); NaN stays NaN."""
    return pd.Series(values).rank(pct=True).to_numpy(dtype=np.float64)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, format="png")
    return path
