"""Does the scored population still look like the one the model learned from?

The population stability index (PSI) compares two distributions over the same
bins::

    PSI = Σ_bins (a − e) · ln(a / e)

with ``e`` the training (expected) share and ``a`` the scored (actual) share of
each bin, missing values being a bin of their own. Shares are floored at
``eps`` first, so a bin empty on one side gives a large but finite term instead
of infinity. The bins and training shares come from the model's
:class:`~risk.models.profile.TrainingProfile`; see there for how they are cut.

The conventional reading, and the defaults here (the caller passes its own from
config): below 0.1 stable, 0.1 to 0.2 watch, above 0.2 drifted.

Those fixed lines cried wolf: an unchanged synthetic population read PSI 0.5 to
3.6 on the past dropout rates and the months since the last payment, term after
term. So a scoring run passes :class:`DriftLimits` (made by
:mod:`risk.scoring.drift_reference` from what two past terms of the same
population show): each feature's own threshold, the score's, and which features
may ring the warning. ``warning`` (the report's banner) is then raised when

* the score drifts past its threshold, or
* at least ``min_features`` model-relevant features drift past theirs (features, not
  catalog groups: an unchanged population's noise moves one feature at a time, while a
  real change of one fact moves its siblings together, so attendance 10 points lower in
  one region shows as the term, 20- and 60-day rates past their thresholds and nothing
  else; counting that as one sign left the planted shift unseen), or
* one model-relevant feature drifts past ``strong_multiple`` times its threshold
  (income halved moves one feature a long way: a broken feed is worth a look
  even when nothing else moved);

and ``warning_features`` names the model-relevant features past their thresholds,
the farthest first. Without limits every feature has the config threshold, every
feature may ring and one is enough: the rule before calibration.

:class:`DriftAccumulator` counts a population into those bins chunk by chunk,
so a national scoring run (4M+ rows) streams through it in bounded memory: it
keeps one small integer array per feature, never the rows.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from risk.models.profile import TrainingProfile, at_training_precision, bin_index

__all__ = ["DriftAccumulator", "DriftLimits", "DriftReport", "FeatureDrift", "accumulator_state", "add_state", "psi"]

Status = Literal["stable", "watch", "drifted"]


def psi(expected: NDArray[np.float64], actual: NDArray[np.float64], eps: float = 1e-4) -> float:
    """Population stability index of ``actual`` against ``expected``.

    Parameters
    ----------
    expected, actual : ndarray of shape (n_bins,)
        Shares or counts per bin (each is divided by its own sum), missing values
        in a bin of their own.
    eps : float, default 1e-4
        Floor applied to each share before the logarithm.

    Returns
    -------
    float
        ``Σ (a − e) · ln(a / e)``, ≥ 0; 0 for identical distributions. NaN when
        either side has no weight at all.
    """
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if expected.shape != actual.shape or expected.ndim != 1:
        raise ValueError(f"expected and actual need the same bins, got shapes {expected.shape} and {actual.shape}")
    if expected.sum() <= 0 or actual.sum() <= 0:
        return float("nan")
    e = np.maximum(expected / expected.sum(), eps)
    a = np.maximum(actual / actual.sum(), eps)
    return float(np.sum((a - e) * np.log(a / e)))


class FeatureDrift(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    psi: float
    status: Status
    missing_share_training: float
    missing_share: float
    # The feature's own threshold (None in records written before thresholds were calibrated), and
    # whether it may ring the warning (model-relevant and not bound to the calendar).
    limit: float | None = None
    in_warning: bool = True


class DriftLimits(BaseModel):
    """What counts as drift for one run: a threshold per feature and for the score, and the warning rule.

    ``features`` maps a feature to its PSI threshold (a feature not listed has ``floor``);
    ``ringing`` lists the features that may raise the warning; ``basis`` says in words how the
    thresholds were set (which two terms were compared, or why only the floor was used).
    """

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")
    floor: float = Field(ge=0)
    score: float = Field(ge=0)
    features: dict[str, float] = {}
    ringing: list[str]
    min_features: int = Field(2, ge=1)
    strong_multiple: float = Field(5.0, ge=1)
    basis: str

    def of(self, name: str) -> float:
        return self.features.get(name, self.floor)


class DriftReport(BaseModel):
    """PSI per feature and of the score, and which features drifted; ``rows`` is how many were counted.

    ``warning`` is whether the report shows its banner and ``warning_features`` what it names (see the
    module docstring); ``score_limit`` is the score's threshold and ``basis`` how the thresholds were set.
    """

    model_config = ConfigDict(extra="forbid")
    rows: int
    warn: float
    threshold: float
    features: list[FeatureDrift]
    score_psi: float
    score_status: Status
    drifted: list[str]
    watch: list[str]
    warning: bool = False
    warning_features: list[str] = []
    score_limit: float | None = None
    basis: str | None = None


class DriftAccumulator:
    """Counts scored rows into the training profile's bins, chunk by chunk.

    Parameters
    ----------
    profile : TrainingProfile
        The model's training profile; its feature order is the column order of
        every chunk passed to :meth:`add`.
    """

    def __init__(self, profile: TrainingProfile) -> None:
        self.profile = profile
        # Compared at the training matrix's precision (an exam-line margin of 1.0 - 0.8 read PSI 2.9
        # on a population that had not moved when its float64 value met the float32 cut).
        self._cuts = [at_training_precision(feature.cuts) for feature in profile.features]
        # One count per bin plus the missing bin, last.
        self._counts = [np.zeros(len(feature.shares) + 1, dtype=np.int64) for feature in profile.features]
        self._score_cuts = np.asarray(profile.score_edges, dtype=np.float64)
        self._score_counts = np.zeros(len(profile.score_shares) + 1, dtype=np.int64)
        self.rows = 0

    def add(self, X_chunk: NDArray[np.float64], scores_chunk: NDArray[np.float64]) -> DriftAccumulator:
        """Count one chunk.

        Parameters
        ----------
        X_chunk : ndarray of shape (n_rows, n_features)
            Features in the profile's order; NaN is missing.
        scores_chunk : ndarray of shape (n_rows,)
            The same rows' scores; NaN scores are not counted.

        Returns
        -------
        self
        """
        X_chunk = np.asarray(X_chunk, dtype=np.float64)
        scores_chunk = np.asarray(scores_chunk, dtype=np.float64)
        n_features = len(self._cuts)
        if X_chunk.ndim != 2 or X_chunk.shape[1] != n_features:
            raise ValueError(f"X_chunk has shape {X_chunk.shape}, expected (n_rows, {n_features})")
        if scores_chunk.shape != (X_chunk.shape[0],):
            raise ValueError(f"scores_chunk has shape {scores_chunk.shape}, expected ({X_chunk.shape[0]},)")
        X_chunk = at_training_precision(X_chunk)
        for j, (cuts, counts) in enumerate(zip(self._cuts, self._counts, strict=True)):
            counts += np.bincount(bin_index(X_chunk[:, j], cuts), minlength=counts.size)
        self._score_counts += np.bincount(bin_index(scores_chunk, self._score_cuts),
                                          minlength=self._score_counts.size)
        self.rows += X_chunk.shape[0]
        return self

    def report(self, threshold: float = 0.2, warn: float = 0.1, *, limits: DriftLimits | None = None) -> DriftReport:
        """PSI of every feature and of the score against the profile, and whether to warn.

        A PSI above its threshold is ``drifted``; at or above ``warn / threshold`` of it ``watch``;
        else ``stable``. Thresholds are ``limits``' (see :class:`DriftLimits`), else ``threshold``
        for everything, with every feature ringing and one enough (the uncalibrated rule).
        """
        if not 0 <= warn <= threshold:
            raise ValueError(f"need 0 <= warn <= threshold, got warn={warn} and threshold={threshold}")
        if self.rows == 0:
            raise ValueError("no rows were added, so there is no population to compare")
        if self._score_counts[:-1].sum() == 0:
            raise ValueError(f"none of the {self.rows} rows added has a score")
        if limits is None:
            limits = DriftLimits(floor=threshold, score=threshold, ringing=self.profile.names, min_features=1,
                                 basis=f"one threshold for all, {threshold:g}")
        watch_share = warn / threshold if threshold > 0 else 1.0

        def status(value: float, limit: float) -> Status:
            return "drifted" if value > limit else "watch" if value >= watch_share * limit else "stable"

        ringing = set(limits.ringing)
        features = []
        for feature, counts in zip(self.profile.features, self._counts, strict=True):
            value, limit = psi(feature.expected(), counts), limits.of(feature.name)
            features.append(FeatureDrift(name=feature.name, psi=value, status=status(value, limit),
                                         missing_share_training=feature.missing_share,
                                         missing_share=float(counts[-1] / self.rows), limit=limit,
                                         in_warning=feature.name in ringing))
        # The score has no missing bin in training; NaN scores were counted in the last slot and are left out.
        score_psi = psi(np.asarray(self.profile.score_shares), self._score_counts[:-1])
        score_status = status(score_psi, limits.score)
        named = sorted((f for f in features if f.in_warning and f.status == "drifted"),
                       key=lambda f: -f.psi / max(f.limit or 0.0, 1e-12))
        warning = (score_status == "drifted" or len(named) >= limits.min_features
                   or any(f.psi > limits.strong_multiple * (f.limit or 0.0) for f in named))
        return DriftReport(
            rows=self.rows, warn=warn, threshold=threshold, features=features,
            score_psi=score_psi, score_status=score_status,
            drifted=[f.name for f in features if f.status == "drifted"],
            watch=[f.name for f in features if f.status == "watch"],
            warning=warning, warning_features=[f.name for f in named] if warning else [],
            score_limit=limits.score, basis=limits.basis,
        )


def accumulator_state(accumulator: DriftAccumulator) -> dict[str, object]:
    """The counts of an accumulator as plain JSON (a resumed scoring run adds up each bucket's)."""
    return {"rows": accumulator.rows, "features": [c.tolist() for c in accumulator._counts],
            "score": accumulator._score_counts.tolist()}


def add_state(accumulator: DriftAccumulator, state: dict[str, object]) -> DriftAccumulator:
    """Add counts saved by :func:`accumulator_state` (same profile) to ``accumulator``."""
    features = state["features"]
    assert isinstance(features, list) and len(features) == len(accumulator._counts)
    for counts, saved in zip(accumulator._counts, features, strict=True):
        counts += np.asarray(saved, dtype=np.int64)
    accumulator._score_counts += np.asarray(state["score"], dtype=np.int64)
    accumulator.rows += int(state["rows"])  # type: ignore[arg-type]
    return accumulator

