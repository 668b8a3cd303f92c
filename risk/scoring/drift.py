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

:class:`DriftAccumulator` counts a population into those bins chunk by chunk,
so a national scoring run (4M+ rows) streams through it in bounded memory: it
keeps one small integer array per feature, never the rows.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from risk.models.profile import TrainingProfile, at_training_precision, bin_index

__all__ = ["DriftAccumulator", "DriftReport", "FeatureDrift", "accumulator_state", "add_state", "psi"]

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


class DriftReport(BaseModel):
    """PSI per feature and of the score, and which features drifted; ``rows`` is how many were counted."""

    model_config = ConfigDict(extra="forbid")
    rows: int
    warn: float
    threshold: float
    features: list[FeatureDrift]
    score_psi: float
    score_status: Status
    drifted: list[str]
    watch: list[str]


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

    def report(self, threshold: float = 0.2, warn: float = 0.1) -> DriftReport:
        """PSI of every feature and of the score against training.

        A PSI below ``warn`` is ``stable``, above ``threshold`` ``drifted``, else ``watch``.
        """
        if not 0 <= warn <= threshold:
            raise ValueError(f"need 0 <= warn <= threshold, got warn={warn} and threshold={threshold}")
        if self.rows == 0:
            raise ValueError("no rows were added, so there is no population to compare")
        if self._score_counts[:-1].sum() == 0:
            raise ValueError(f"none of the {self.rows} rows added has a score")

        def status(value: float) -> Status:
            return "drifted" if value > threshold else "watch" if value >= warn else "stable"

        features = []
        for feature, counts in zip(self.profile.features, self._counts, strict=True):
            value = psi(feature.expected(), counts)
            features.append(FeatureDrift(name=feature.name, psi=value, status=status(value),
                                         missing_share_training=feature.missing_share,
                                         missing_share=float(counts[-1] / self.rows)))
        # The score has no missing bin in training; NaN scores were counted in the last slot and are left out.
        score_psi = psi(np.asarray(self.profile.score_shares), self._score_counts[:-1])
        return DriftReport(
            rows=self.rows, warn=warn, threshold=threshold, features=features,
            score_psi=score_psi, score_status=status(score_psi),
            drifted=[f.name for f in features if f.status == "drifted"],
            watch=[f.name for f in features if f.status == "watch"],
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

