"""The model seam: what evaluation, scoring and serving ask of a dropout model, and nothing of how it was made.

A :class:`RiskModel` turns a feature matrix into a calibrated dropout probability
and says how much each feature moved that score. The LightGBM model
(:class:`risk.models.booster.LightGBMModel`) is one; the baselines
(:mod:`risk.models.baselines`) are others, and a GLM or a sequence model would be
the next. :class:`risk.models.bundle.ModelBundle` holds one beside the class
policy, the catalog and the training profile, and is a ``RiskModel`` itself, so
the evaluation, the batch scorer, the reasons and the service never name a
library.

The two outputs live in two spaces:

* ``probability`` is on the probability scale, after calibration: 0.12 reads
  "12 in 100 such students drop out this term";
* ``contributions`` are on the model's own additive score, *before* calibration:
  log-odds for LightGBM (TreeSHAP, ``pred_contrib``) and for a logistic model
  (coefficient × distance from the training mean). Calibration is monotone, so a
  feature that raises the score raises the probability; reasons read only the
  sign and the order of contributions, never their size as a probability.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from risk.errors import RiskError

__all__ = ["ContributionsUnavailable", "ModelError", "RiskModel"]


class ModelError(RiskError):
    """A model could not answer for the rows it was given (its library failed, or they are not its columns)."""


class ContributionsUnavailable(ModelError):
    """The model has no per-feature contributions (a baseline with no exact decomposition).

    Evaluation never needs them; the reasons a teacher reads do, so such a model
    can be compared but not served or used for explained scores.
    """


@runtime_checkable
class RiskModel(Protocol):
    """A fitted binary model of dropout: probability and per-feature contributions.

    Attributes
    ----------
    feature_names : list of str, length n_features
        The columns ``X`` must have, in this order.

    Notes
    -----
    ``isinstance(obj, RiskModel)`` checks only that the three members exist
    (``typing.runtime_checkable``); the shapes below are the contract.
    """

    @property
    def feature_names(self) -> list[str]:
        """The columns of ``X``, in order."""
        ...

    def probability(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """Calibrated dropout probability of each row.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Feature values in :attr:`feature_names` order; NaN is missing.

        Returns
        -------
        ndarray of shape (n_samples,), float64
            Probabilities in [0, 1].

        Raises
        ------
        ModelError
            When the model cannot score these rows.
        """
        ...

    def contributions(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """How much each feature moved each row's score, in the model's raw (pre-calibration) score space.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Feature values in :attr:`feature_names` order; NaN is missing.

        Returns
        -------
        ndarray of shape (n_samples, n_features + 1), float64
            One column per feature (log-odds for the models here; > 0 pushed the
            risk up), and last the expected value (bias), so that each row sums to
            the row's raw score.

        Raises
        ------
        ContributionsUnavailable
            When the model has no per-feature contributions.
        ModelError
            When the model cannot score these rows.
        """
        ...
