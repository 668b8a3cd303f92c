"""What the alerts changed: the pilot's randomised effect on flagged students' dropout.

Input frame (one row per student of the pilot term), columns:

* ``student_key`` — pseudonym (never a national ID);
* ``school_id``; ``arm`` — ``alert_now`` or ``wait_list`` (the school's, from the plan);
* ``flagged`` — bool: the score's flag, the same rule in both arms (both were scored);
* ``dropped_out`` — 0/1: not in the next term's register (the outcome);
* ``stratum`` — optional: the plan's stratum (then strata enter as fixed effects,
  and randomisation inference re-draws within them);
* ``acted_school`` — for :func:`complier_effect`: 1 if the school acted on its
  alerts (0 in every wait-list school, which had none), or the share it acted on.

Only flagged students are compared: the alerts can only change what happens to them.

Small pilots, measured on 200 simulated pilots of 80 schools (design effect 2.3,
effect planted at the plan's 80%-power MDE): the clustered SE ran 11% under the
estimates' spread, yet the 95% CIs covered the truth in 92.5% (clustered) and
93.5% (randomisation) of pilots; both excluded 0 in about 90%, more often than the
plan predicted, as the SE falls with the dropout it measures. At 200 and 400
schools the plan's power and the detection rate agreed (tests, bench_impact).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from risk.errors import ContractError
from risk.impact.design import ALERT_NOW, ARMS
from risk.impact.effects import EffectEstimate, clustered_ols, effect_from_se, require_columns
from risk.impact.randomisation import randomisation_inference

__all__ = ["PilotEffect", "complier_effect", "intention_to_treat"]

PILOT_COLUMNS = ["student_key", "school_id", "arm", "flagged", "dropped_out"]


@dataclass(frozen=True)
class PilotEffect:
    """The pilot's intention-to-treat effect among flagged students.

    Attributes
    ----------
    absolute : EffectEstimate
        dropout(alert_now) − dropout(wait_list), proportion; OLS with
        school-clustered SE (strata fixed effects when given).
    relative : EffectEstimate
        absolute / wait-list rate (−0.2 = a fifth fewer); delta-method SE from
        the same clustered covariance.
    randomisation : EffectEstimate
        The raw difference with its randomisation-inference p-value and CI
        (``se`` = SD of the difference over re-draws under no effect).
    alert_now_rate, wait_list_rate : float
        Dropout of flagged students in each arm (proportion).
    """

    absolute: EffectEstimate
    relative: EffectEstimate
    randomisation: EffectEstimate
    alert_now_rate: float
    wait_list_rate: float


@dataclass(frozen=True)
class _Flagged:
    """The flagged students as arrays: outcome, arm (1 = alert_now), school and stratum codes."""

    y: np.ndarray
    treated: np.ndarray
    school: np.ndarray
    stratum: np.ndarray
    acted: np.ndarray | None

    @property
    def n_schools(self) -> int:
        return int(self.school.max() + 1)


def _flagged_pilot(frame: pd.DataFrame, extra: list[str]) -> _Flagged:
    """The flagged rows, checked: known arms, 0/1 outcome, at least two schools per arm."""
    require_columns(frame, PILOT_COLUMNS + extra, "pilot frame")
    keep = frame["flagged"].to_numpy(dtype=bool)
    arm = np.asarray(frame["arm"].to_numpy(dtype=object)[keep])
    unknown = set(np.unique(arm)) - set(ARMS)
    if unknown:
        raise ContractError(f"pilot frame: column 'arm' has {sorted(map(str, unknown))}; "
                            f"expected {' or '.join(ARMS)}")
    y = frame["dropped_out"].to_numpy(dtype=float)[keep]
    if not np.isin(y, (0.0, 1.0)).all():
        raise ContractError("pilot frame: column 'dropped_out' must be 0 or 1 for every flagged student")
    school = np.unique(frame["school_id"].to_numpy()[keep], return_inverse=True)[1]
    treated = (arm == ALERT_NOW).astype(float)
    per_arm = [len(np.unique(school[treated == t])) for t in (1.0, 0.0)]
    if min(per_arm) < 2:
        raise ContractError(f"pilot frame: each arm needs flagged students in ≥2 schools, got "
                            f"{dict(zip(ARMS, per_arm, strict=True))}")
    stratum = (_comparing_strata(frame["stratum"].to_numpy(dtype=object)[keep].astype(str), treated)
               if "stratum" in frame.columns else np.zeros(len(y), dtype=np.int64))
    acted = frame["acted_school"].to_numpy(dtype=float)[keep] if "acted_school" in extra else None
    return _Flagged(y=y, treated=treated, school=school, stratum=stratum, acted=acted)


def _comparing_strata(labels: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """Stratum codes 0..S−1, the strata without flagged students in both arms pooled as one.

    Such a stratum compares nothing: its fixed effect would absorb its rows, and if
    every stratum were like it the effect would not be identified (a fit of 0 ± 0).
    Plans merge small strata (``merge_small_strata``); this guards older plans and
    strata whose flagged students all fell in one arm.
    """
    codes = np.unique(labels, return_inverse=True)[1]
    arms_seen = np.zeros((codes.max() + 1, 2), dtype=bool)
    arms_seen[codes, treated.astype(np.int64)] = True
    one_armed = ~arms_seen.all(axis=1)
    if not one_armed.any():
        return codes
    # Code 0 is the pool of one-armed strata; the comparing strata follow in order.
    renumbered = np.where(one_armed, 0, np.cumsum(~one_armed))
    return np.unique(renumbered[codes], return_inverse=True)[1]


def _strata_columns(rows: _Flagged) -> np.ndarray:
    """Stratum dummies (first level dropped), centred on the wait-list rows' means.

    Centred so, the intercept of a regression on [1, treated, dummies] is exactly
    the wait-list rate, and its covariance with the effect comes with the fit.
    """
    levels = rows.stratum.max() + 1
    if levels < 2:
        return np.empty((len(rows.y), 0))
    dummies = (rows.stratum[:, None] == np.arange(1, levels)[None, :]).astype(float)
    return dummies - dummies[rows.treated == 0].mean(axis=0)


def _relative(params: np.ndarray, cov: np.ndarray, n: int, schools: int, alpha: float) -> EffectEstimate:
    """effect / wait-list rate, with the delta method on the clustered covariance of (rate, effect)."""
    rate, effect = params[0], params[1]
    gradient = np.array([-effect / rate**2, 1.0 / rate])
    se = float(np.sqrt(gradient @ cov[:2, :2] @ gradient))
    return effect_from_se(effect / rate, se, n, schools, "relative: effect / wait-list rate, delta method",
                          alpha=alpha)


def intention_to_treat(frame: pd.DataFrame, permutations: int = 2000, seed: int = 0,
                       alpha: float = 0.05) -> PilotEffect:
    """Effect of being in an alert school on flagged students' dropout (intention to treat).

    Parameters
    ----------
    frame : DataFrame
        The pilot frame (module docstring); ``stratum`` optional.
    permutations, seed : int
        Re-draws of the school assignment for randomisation inference, and their seed.
    alpha : float
        1 − confidence level of the intervals.
    """
    rows = _flagged_pilot(frame, [])
    X = np.column_stack([np.ones(len(rows.y)), rows.treated, _strata_columns(rows)])
    fit = clustered_ols(rows.y, X, rows.school)
    se = float(np.sqrt(fit.cov[1, 1]))
    method = "OLS, school-clustered SE" + (", strata fixed effects" if X.shape[1] > 2 else "")
    absolute = effect_from_se(fit.params[1], se, fit.n_students, fit.n_schools, method, alpha=alpha)
    relative = _relative(fit.params, fit.cov, fit.n_students, fit.n_schools, alpha)
    return PilotEffect(absolute=absolute, relative=relative,
                       randomisation=_randomisation(rows, permutations, seed, alpha),
                       alert_now_rate=float(rows.y[rows.treated == 1].mean()),
                       wait_list_rate=float(rows.y[rows.treated == 0].mean()))


def _randomisation(rows: _Flagged, permutations: int, seed: int, alpha: float) -> EffectEstimate:
    """Randomisation inference on per-school totals of the flagged rows."""
    first_row = np.unique(rows.school, return_index=True)[1]
    result = randomisation_inference(np.bincount(rows.school, weights=rows.y), np.bincount(rows.school),
                                     rows.treated[first_row], rows.stratum[first_row],
                                     permutations=permutations, seed=seed, alpha=alpha)
    return EffectEstimate(estimate=result.estimate, se=result.null_sd, ci_low=result.ci_low,
                          ci_high=result.ci_high, p_value=result.p_value, n_students=len(rows.y),
                          n_schools=rows.n_schools, evidence="randomised",
                          method=f"randomisation inference, {permutations} re-draws within strata")


def _two_stage(y: np.ndarray, X: np.ndarray, Z: np.ndarray,
               schools: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Just-identified 2SLS coefficients and their school-clustered (CR1) covariance.

    ``schools`` holds school codes 0..G−1, one per row.
    """
    bread = np.linalg.inv(Z.T @ X)
    beta = bread @ (Z.T @ y)
    scores = np.zeros((schools.max() + 1, Z.shape[1]))
    np.add.at(scores, schools, Z * (y - X @ beta)[:, None])
    n, k, g = len(y), X.shape[1], len(scores)
    correction = g / (g - 1) * (n - 1) / (n - k)
    return beta, correction * bread @ (scores.T @ scores) @ bread.T


def complier_effect(frame: pd.DataFrame, alpha: float = 0.05) -> EffectEstimate:
    """Effect on flagged students' dropout in the schools that acted on their alerts.

    Instrumental variables: the random assignment instruments ``acted_school``
    (just-identified 2SLS, the Wald ratio ITT / first stage when there are no
    strata; strata as exogenous fixed effects). Valid because assignment changes
    dropout only through the school acting. Returns a difference in rates
    (proportion) with a school-clustered SE.
    """
    rows = _flagged_pilot(frame, ["acted_school"])
    # Written as "not above" so a constant column (correlation NaN) is caught too.
    if not abs(np.corrcoef(rows.acted, rows.treated)[0, 1]) > 1e-6:
        raise ContractError("pilot frame: acting does not differ between arms; the complier effect "
                            "is not identified")
    strata = _strata_columns(rows)
    ones = np.ones(len(rows.y))
    X = np.column_stack([ones, rows.acted, strata])
    Z = np.column_stack([ones, rows.treated, strata])
    beta, cov = _two_stage(rows.y, X, Z, rows.school)
    return effect_from_se(beta[1], float(np.sqrt(cov[1, 1])), len(rows.y), rows.n_schools,
                          "IV (2SLS): assignment instruments the school acting; school-clustered SE",
                          alpha=alpha)
