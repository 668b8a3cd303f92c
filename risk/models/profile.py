"""The training-data profile a model package carries: where each feature's values lay.

Made once at training time from the feature matrix the booster learned from, and
stored beside it as JSON (never a pickle). Two readers use it:

* reasons (:mod:`risk.models.explain`): a feature's training **median** says which
  side of it is the "risky side" (an attendance of 98% is above the median and is
  never told to a teacher as a reason, whatever SHAP says);
* drift (:mod:`risk.scoring.drift`): each feature's **bins** and the training
  **share** in each, and the same for the score, are the "expected" half of the
  population stability index.

Bins. A feature is binned one of two ways:

* ``kind="values"``: flags, categories and small counts (at most ``bins``
  distinct values, or any feature named in ``discrete``). ``edges`` lists the
  distinct training values; a value falls in the bin of the largest listed value
  not above it (an unseen category code joins its lower neighbour).
* ``kind="quantile"``: everything else. ``edges`` are the interior cut points at
  the weighted 1/bins … (bins−1)/bins quantiles, deduplicated; bin ``i`` holds
  ``edges[i-1] <= x < edges[i]``, so there are ``len(edges) + 1`` bins. A value
  that spans several quantiles (heavy ties: most assistance amounts are 0) gets a
  bin of its own, and a cut that would leave a bin with no training weight is
  dropped.

``shares`` are shares of *all* training rows, so ``sum(shares) + missing_share``
is 1; NaN (missing) is its own bin. Training samples may be down-sampled
negatives carrying weights: every share, quantile and median honours
``sample_weight``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from risk.features.catalog import Catalog

__all__ = ["FeatureProfile", "TrainingProfile", "at_training_precision", "bin_index", "discrete_features", "training_profile"]


class FeatureProfile(BaseModel):
    """One feature's training distribution: median, missing share, bins and their shares."""

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")
    name: str
    kind: Literal["quantile", "values"]
    median: float | None = Field(description="weighted median of the present values; None when all were missing")
    missing_share: float = Field(ge=0, le=1)
    edges: list[float] = Field(description="cut points (quantile) or the distinct values (values), ascending")
    shares: list[float] = Field(description="training share of all rows in each bin, missing excluded")

    @property
    def cuts(self) -> NDArray[np.float64]:
        """The cut points :func:`bin_index` searches, shape ``(len(shares) - 1,)``."""
        edges = np.asarray(self.edges, dtype=np.float64)
        return edges if self.kind == "quantile" else edges[1:]

    def expected(self) -> NDArray[np.float64]:
        """Training shares with the missing bin last, shape ``(len(shares) + 1,)``; sums to 1."""
        return np.append(np.asarray(self.shares, dtype=np.float64), self.missing_share)


class TrainingProfile(BaseModel):
    """Every feature's profile, in the model's column order, and the training score's bins."""

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")
    rows: int = Field(ge=0, description="training rows profiled (unweighted)")
    features: list[FeatureProfile]
    score_edges: list[float] = Field(description="cut points of the score's quantile bins")
    score_shares: list[float] = Field(description="training share of scores in each bin")

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def get(self, name: str) -> FeatureProfile:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    def medians(self, names: list[str]) -> NDArray[np.float64]:
        """Training medians of ``names``, shape ``(len(names),)``; NaN where none is known."""
        by_name = {f.name: f for f in self.features}
        return np.array([np.nan if by_name[n].median is None else by_name[n].median for n in names],
                        dtype=np.float64)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> TrainingProfile:
        return cls.model_validate_json(text)


def training_profile(
    X: NDArray[np.float64],
    names: list[str],
    scores: NDArray[np.float64],
    bins: int = 10,
    sample_weight: NDArray[np.float64] | None = None,
    *,
    discrete: Iterable[str] = (),
) -> TrainingProfile:
    """Profile the training matrix and its scores.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float
        The features the booster was trained on; NaN is missing.
    names : list of str, length n_features
        Column names of ``X``.
    scores : ndarray of shape (n_samples,)
        The model's scores of the same rows (probabilities); NaN scores are left out.
    bins : int, default 10
        Most bins per feature and for the score.
    sample_weight : ndarray of shape (n_samples,), optional
        Non-negative row weights (down-sampled negatives carry their inverse rate).
    discrete : iterable of str
        Features binned by their distinct values whatever their number (category
        units); features with at most ``bins`` distinct values are binned so anyway.

    Returns
    -------
    TrainingProfile
    """
    X = np.asarray(X, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(names):
        raise ValueError(f"X has shape {X.shape}, expected (n_samples, {len(names)}) for {len(names)} names")
    if scores.shape != (X.shape[0],):
        raise ValueError(f"scores has shape {scores.shape}, expected ({X.shape[0]},)")
    if bins < 2:
        raise ValueError(f"bins is {bins}, expected at least 2")
    weight = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if weight.shape != (X.shape[0],) or not np.all(weight >= 0) or weight.sum() <= 0:
        raise ValueError(f"sample_weight needs {X.shape[0]} non-negative values with a positive sum")
    as_values = set(discrete)
    columns = np.asfortranarray(X)  # each column contiguous: read once per feature below
    features = [_feature_profile(name, columns[:, j], weight, bins, name in as_values)
                for j, name in enumerate(names)]
    present = ~np.isnan(scores)
    score_edges, score_shares = _quantile_bins(scores[present], weight[present], bins)
    return TrainingProfile(rows=X.shape[0], features=features, score_edges=score_edges, score_shares=score_shares)


def discrete_features(catalog: Catalog, names: list[str]) -> list[str]:
    """The features of ``names`` binned by their values in a profile: categories and flags."""
    return [n for n in names if catalog.get(n).unit in ("category", "flag")]


def at_training_precision(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """``values`` rounded to float32, the precision of the training matrix a profile is cut from (kept float64).

    Whatever is compared with a profile's cuts or medians goes through this, on both sides:
    scoring builds float64, and 1.0 - 0.8 (0.19999999999999996) lies just below its float32
    training copy (0.2000000030), a bin low or "below the median" when it sits on one.
    """
    return np.asarray(values, dtype=np.float64).astype(np.float32).astype(np.float64)


def bin_index(x: NDArray[np.float64], cuts: NDArray[np.float64]) -> NDArray[np.intp]:
    """Bin of each value, shape of ``x``: ``searchsorted(cuts, x, "right")``; NaN → ``len(cuts) + 1``."""
    index = np.searchsorted(cuts, x, side="right")
    index[np.isnan(x)] = len(cuts) + 1
    return index


def _feature_profile(name: str, column: NDArray[np.float64], weight: NDArray[np.float64], bins: int,
                     as_values: bool) -> FeatureProfile:
    present = ~np.isnan(column)
    total = weight.sum()
    values, w = column[present], weight[present]
    missing_share = float(1.0 - w.sum() / total)
    if values.size == 0:
        return FeatureProfile(name=name, kind="quantile", median=None, missing_share=1.0, edges=[], shares=[0.0])
    order = np.argsort(values, kind="stable")
    values, w = values[order], w[order]
    distinct = values[np.concatenate(([True], values[1:] != values[:-1]))]  # np.unique, without sorting again
    if as_values or distinct.size <= bins:
        counts = np.bincount(np.searchsorted(distinct, values), weights=w, minlength=distinct.size)
        return FeatureProfile(name=name, kind="values", median=_weighted_median(values, w),
                              missing_share=missing_share, edges=distinct.tolist(),
                              shares=(counts / total).tolist())
    edges, shares = _quantile_bins(values, w, bins, presorted=True)
    shares = [s * w.sum() / total for s in shares]  # shares of all rows, the missing ones too
    return FeatureProfile(name=name, kind="quantile", median=_weighted_median(values, w),
                          missing_share=missing_share, edges=edges, shares=shares)


def _quantile_bins(values: NDArray[np.float64], w: NDArray[np.float64], bins: int,
                   presorted: bool = False) -> tuple[list[float], list[float]]:
    """Weighted quantile cut points with no empty bin, and the share of ``w`` in each bin."""
    if values.size == 0:
        return [], [1.0]
    if not presorted:
        order = np.argsort(values, kind="stable")
        values, w = values[order], w[order]
    cumulative = np.cumsum(w)
    # Inverted-CDF quantiles (the first value whose cumulative weight reaches q), so
    # integer weights give the same cuts as repeating the rows.
    targets = np.arange(1, bins) / bins * cumulative[-1]
    at_targets = values[np.minimum(np.searchsorted(cumulative, targets), values.size - 1)]
    candidates, repeats = np.unique(at_targets, return_counts=True)
    # A value that spans several quantiles (0 baht for most students, 100% attendance)
    # gets a bin of its own: cut again at the next value above it.
    above = np.searchsorted(values, candidates[repeats > 1], side="right")
    candidates = np.union1d(candidates, values[above[above < values.size]])
    counts = np.bincount(np.searchsorted(candidates, values, side="right"), weights=w,
                         minlength=candidates.size + 1)
    # Ratios of small counts (attendance 47/48, 49/50) are lumpy: a bin narrower than a
    # sliver of the spread would flip between neighbours from one week to the next and
    # read as drift. Such a cut is dropped unless its bin holds a quantile's weight alone.
    spread = values[int(0.95 * (values.size - 1))] - values[int(0.05 * (values.size - 1))]
    min_gap = spread / (4 * bins)
    kept: list[float] = []
    weight_since_cut = 0.0
    for cut, count in zip(candidates, counts[:-1], strict=True):
        weight_since_cut += count
        if weight_since_cut <= 0:  # a cut with nothing below it since the last one would make an empty bin
            continue
        if kept and cut - kept[-1] < min_gap and weight_since_cut < 0.5 * cumulative[-1] / bins:
            continue
        kept.append(float(cut))
        weight_since_cut = 0.0
    cuts = np.asarray(kept)
    shares = np.bincount(np.searchsorted(cuts, values, side="right"), weights=w, minlength=cuts.size + 1)
    while cuts.size and shares[-1] == 0:  # nothing at or above the last cut
        cuts, shares = cuts[:-1], np.append(shares[:-2], shares[-2])
    return cuts.tolist(), (shares / cumulative[-1]).tolist()


def _weighted_median(values: NDArray[np.float64], w: NDArray[np.float64]) -> float:
    """Median of sorted ``values`` under weights ``w``; equals ``np.median`` when all weights are 1."""
    cumulative = np.cumsum(w)
    half = cumulative[-1] / 2
    low = values[min(np.searchsorted(cumulative, half, side="left"), values.size - 1)]
    high = values[min(np.searchsorted(cumulative, half, side="right"), values.size - 1)]
    return float((low + high) / 2)
