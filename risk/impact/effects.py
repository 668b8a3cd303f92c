"""The result every impact estimate returns, and the clustered regression they share.

Students in one school share teachers and circumstances, so their outcomes are
not independent: every standard error here is clustered by school, and its
confidence interval uses Student's t with (schools − 1) degrees of freedom,
as a clustered test has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

# Not statsmodels.api: under scipy 1.17 it fails to import (statsmodels 0.14.4 reaches for
# scipy._lib._util._lazywhere, removed); the regression module alone imports cleanly.
from statsmodels.regression.linear_model import OLS

from risk.errors import ContractError

__all__ = [
    "OBSERVATIONAL",
    "RANDOMISED",
    "ClusteredFit",
    "EffectEstimate",
    "clustered_ols",
    "effect_from_se",
    "require_columns",
]

RANDOMISED = "randomised"
OBSERVATIONAL = ("observational: weaker evidence than the randomised pilot; it adjusts only "
                 "for what was measured (score and features), not for what teachers alone saw")


@dataclass(frozen=True)
class EffectEstimate:
    """One estimated effect on dropout.

    Attributes
    ----------
    estimate : float
        The effect: a difference in dropout rates (proportion; −0.02 = two points
        fewer) or, where the method says so, a relative change (−0.2 = a fifth fewer).
    se : float
        Its standard error, clustered by school (for randomisation inference, the
        SD of the statistic over re-randomisations under no effect).
    ci_low, ci_high : float
        The confidence interval (95% unless asked otherwise).
    p_value : float
        Two-sided p-value against no effect.
    n_students, n_schools : int
        Students and schools the estimate used.
    method : str
        How it was estimated, in words.
    evidence : str
        ``"randomised"``, or the observational caveat.
    """

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    n_students: int
    n_schools: int
    method: str
    evidence: str

    def covers(self, value: float) -> bool:
        """Whether ``value`` lies inside the confidence interval."""
        return bool(self.ci_low <= value <= self.ci_high)


def effect_from_se(estimate: float, se: float, n_students: int, n_schools: int, method: str,
                   evidence: str = RANDOMISED, alpha: float = 0.05) -> EffectEstimate:
    """An estimate with a t-interval and p-value on (n_schools − 1) degrees of freedom."""
    df = max(n_schools - 1, 1)
    critical = float(stats.t.ppf(1 - alpha / 2, df))
    p_value = float(2 * stats.t.sf(abs(estimate / se), df)) if se > 0 else float("nan")
    return EffectEstimate(estimate=float(estimate), se=float(se), ci_low=float(estimate - critical * se),
                          ci_high=float(estimate + critical * se), p_value=p_value,
                          n_students=int(n_students), n_schools=int(n_schools), method=method,
                          evidence=evidence)


@dataclass(frozen=True)
class ClusteredFit:
    """Coefficients of a least-squares fit and their school-clustered covariance."""

    params: np.ndarray
    cov: np.ndarray
    n_students: int
    n_schools: int


def clustered_ols(y: np.ndarray, X: np.ndarray, schools: np.ndarray) -> ClusteredFit:
    """OLS of ``y`` (n,) on ``X`` (n, k) with a cluster-robust covariance by school.

    statsmodels' CR1 sandwich: small-sample factor G/(G−1)·(n−1)/(n−k).
    """
    _, groups = np.unique(schools, return_inverse=True)
    fit = OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    return ClusteredFit(params=np.asarray(fit.params), cov=np.asarray(fit.cov_params()),
                        n_students=len(y), n_schools=int(groups.max() + 1))


def require_columns(frame: pd.DataFrame, columns: list[str], name: str) -> None:
    """Raise a ContractError naming the frame and the columns it lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ContractError(f"{name}: missing column(s) {', '.join(missing)} "
                            f"(has: {', '.join(map(str, frame.columns))})")
