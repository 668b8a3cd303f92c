"""Calibration: the booster's score → a probability a person can read as "x in 100 such students".

Two methods, both stored as plain JSON in the model package (no pickles):

- ``isotonic``: a monotone step function, kept as breakpoints and applied with
  linear interpolation (``np.interp``), clamped at the ends;
- ``platt``: a logistic curve on the booster's log-odds, ``1 / (1 + exp(-(a·z + b)))``.

:func:`choose_calibrator` fits both on one half of the calibration term's students,
scores them (Brier) on the other half, and refits the better one on all of them.
"""

from __future__ import annotations

import json
from typing import Literal

import numpy as np
from pydantic import BaseModel
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

__all__ = ["Calibrator", "CalibrationChoice", "choose_calibrator", "fit_calibrator"]

_EPS = 1e-7


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


class Calibrator(BaseModel):
    """A fitted calibration map, serialisable as JSON.

    ``x``/``y``: isotonic breakpoints (raw probability → calibrated probability);
    ``a``/``b``: Platt coefficients on the raw log-odds.
    """

    method: Literal["isotonic", "platt"]
    x: list[float] = []
    y: list[float] = []
    a: float = 1.0
    b: float = 0.0

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of raw booster probabilities, shape (n,)."""
        raw = np.asarray(raw, dtype=np.float64)
        if self.method == "isotonic":
            return np.interp(raw, self.x, self.y)
        return 1.0 / (1.0 + np.exp(-(self.a * _logit(raw) + self.b)))

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> Calibrator:
        return cls.model_validate(json.loads(text))


def fit_calibrator(method: str, raw: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> Calibrator:
    """Fit ``method`` on raw booster probabilities ``raw`` (n,) and outcomes ``y`` (n,) in {0, 1}."""
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
        iso.fit(raw, y, sample_weight=weight)
        return Calibrator(method="isotonic", x=iso.X_thresholds_.tolist(), y=iso.y_thresholds_.tolist())
    logistic = LogisticRegression(C=1e6, max_iter=1000)
    logistic.fit(_logit(raw).reshape(-1, 1), y, sample_weight=weight)
    return Calibrator(method="platt", a=float(logistic.coef_[0, 0]), b=float(logistic.intercept_[0]))


class CalibrationChoice(BaseModel):
    """The chosen calibrator and the held-out Brier score of each method tried."""

    calibrator: Calibrator
    brier: dict[str, float]


def choose_calibrator(raw: np.ndarray, y: np.ndarray, halves: np.ndarray, methods: list[str],
                      weight: np.ndarray | None = None) -> CalibrationChoice:
    """Fit each method on one half and score it on the other (both ways), keep the best, refit on all.

    ``halves`` is a boolean array (n,) splitting the calibration rows by student; ``weight``
    the rows' weights (1 / kept share of down-sampled rows), in the fits and the Brier scores.
    """
    weight = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=np.float64)
    scores: dict[str, float] = {}
    for method in methods:
        losses = []
        for fit_on in (halves, ~halves):
            calibrator = fit_calibrator(method, raw[fit_on], y[fit_on], weight[fit_on])
            p = calibrator.transform(raw[~fit_on])
            losses.append(float(np.average((p - y[~fit_on]) ** 2, weights=weight[~fit_on])))
        scores[method] = float(np.mean(losses))
    best = min(scores, key=lambda m: scores[m])
    return CalibrationChoice(calibrator=fit_calibrator(best, raw, y, weight), brier=scores)
