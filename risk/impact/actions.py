"""Per action type: what each kind of help changed, observationally (weaker evidence).

Actions are not randomised: teachers choose whom to visit, and they choose the
children they worry about. So the naive acted-vs-not difference mixes the
action's effect with who got it. Beside it, a doubly robust (AIPW) estimate
adjusts for the score, the recorded features (``risk impact``: the features the term
was scored on, :mod:`risk.impact.features`) and the other actions, with cross-fitting
by school:

    τ = mean[ μ1(X) − μ0(X) + A·(Y − μ1(X))/e(X) − (1 − A)·(Y − μ0(X))/(1 − e(X)) ]

where e is the chance of the action given X (propensity) and μa the dropout
probability with and without it. It is right if either model is; it cannot
adjust for what teachers saw and the data did not, hence the label.

Input frame (one row per alerted student), columns: ``school_id``,
``dropped_out`` (0/1), ``score`` (the engine's probability, 0–1), the feature
columns named, and one 0/1 column per action code (1: the child got it).
Both estimates are differences in dropout probability (proportion) over the
frame's students (the average effect of the action on them), SE clustered by school
(floored when the children given the action had almost no dropout: :data:`RARE_OUTCOMES`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from scipy.special import expit, logit

from risk.errors import ConfigError, ContractError
from risk.impact.effects import (
    OBSERVATIONAL,
    EffectEstimate,
    clustered_ols,
    effect_from_se,
    require_columns,
)

__all__ = ["ActionEffect", "per_action_effects"]

# Fewer dropouts (or stayers) than this among the children given an action, and the SEs the data give
# are no guide: with none at all both are zero and the CI a point (the closed loop's travel support:
# 15 children, no dropout). Below it the SEs are floored at the Agresti–Caffo SE of the difference.
RARE_OUTCOMES = 5
# Propensities are kept inside [1%, 99%]: a child almost sure to get (or miss) an
# action says little about its effect and would otherwise dominate the weights.
PROPENSITY_CLIP = 0.01


@dataclass(frozen=True)
class ActionEffect:
    """One action's effect on dropout, naive and adjusted, side by side.

    ``naive``: mean dropout of those who got it minus those who did not (OLS,
    school-clustered SE); ``adjusted``: cross-fitted AIPW on the score and
    features; ``n_acted``: students who got the action; ``evidence``: the caveat.
    """

    action: str
    naive: EffectEstimate
    adjusted: EffectEstimate
    n_acted: int
    evidence: str


# The nuisance models. ``risk impact`` uses the logistic one, also on the scored features (~70 columns, some NaN),
# which it fills with the median and marks with a 0/1 column (:func:`_covariates`). Why not LightGBM, which
# takes NaN as it is: on the real closed loop (bench/bench_pilot_loop.py, 20 seeds, ~1,200 children compared)
# its estimates scattered far more (closer to the truth than the naive one in 3–10 of 20 seeds per action,
# against 8–11 for the logistic one, with larger mean errors), and it takes ~3x as long.
LEARNERS = ("logistic", "lightgbm")
# Ridge on the logistic learner's standardised columns (none on the intercept). With ~70 features and ~1,200
# children, 1.0 let propensities run to the clip and the estimate scatter (closer than the naive one in 3–6 of
# 20 seeds of the planted scenario); 100 put back most of the bias the features remove; 10 between, chosen on
# those seeds (figures in bench/RESULTS.md). With the score and two flags alone it hardly matters.
RIDGE = 10.0


def _logistic_probability(X: np.ndarray, y: np.ndarray, X_new: np.ndarray) -> np.ndarray:
    """Logistic regression by Newton's method, a small ridge keeping it finite under separation.

    Written out rather than sklearn's: the nuisance models are fitted 3 × folds ×
    actions times on a few columns, where sklearn's per-fit overhead (~50 ms here)
    is most of the cost and Newton converges in under ten steps of microseconds.
    """
    centre, scale = X.mean(axis=0), X.std(axis=0) + 1e-12
    design = np.column_stack([np.ones(len(X)), (X - centre) / scale])
    ridge = np.diag([0.0] + [RIDGE] * X.shape[1])  # no penalty on the intercept
    beta = np.zeros(design.shape[1])
    for _ in range(50):
        p = expit(design @ beta)
        gradient = design.T @ (y - p) - ridge @ beta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + ridge
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if np.abs(step).max() < 1e-8:
            break
    return expit(np.column_stack([np.ones(len(X_new)), (X_new - centre) / scale]) @ beta)


def _school_folds(schools: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold of each row; whole schools per fold, so no school is in its own training data."""
    names, codes = np.unique(schools, return_inverse=True)
    if len(names) < folds:
        raise ContractError(f"per-action frame: {len(names)} schools, fewer than the {folds} folds")
    shuffled = np.random.default_rng(seed).permutation(len(names))
    return (shuffled % folds)[codes]


def _fitted_probability(kind: str, seed: int, X: np.ndarray, y: np.ndarray, X_new: np.ndarray) -> np.ndarray:
    """P(y = 1) at ``X_new`` from a model fitted on (X, y); a constant y gives its rate."""
    if y.min() == y.max():
        return np.full(len(X_new), float(y[0]))
    if kind == "logistic":
        return _logistic_probability(X, y, X_new)
    # One thread: the fits are small, and on a shared host OpenMP's waiting threads cost more
    # than they save (a test of 15 fits: 207 s with all threads, 5.7 s with one).
    model = LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=15,
                           min_child_samples=50, random_state=seed, n_jobs=1, verbose=-1)
    return model.fit(X, y).predict_proba(X_new)[:, 1]


def _nuisances(X: np.ndarray, a: np.ndarray, y: np.ndarray, fold: np.ndarray, kind: str,
               seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-fold propensity e(X) and outcome models μ1(X), μ0(X), each of shape (n,)."""
    e, mu1, mu0 = np.empty(len(y)), np.empty(len(y)), np.empty(len(y))
    for k in np.unique(fold):
        test, train = fold == k, fold != k
        e[test] = _fitted_probability(kind, seed, X[train], a[train], X[test])
        treated, untreated = train & (a == 1), train & (a == 0)
        mu1[test] = _fitted_probability(kind, seed, X[treated], y[treated], X[test])
        mu0[test] = _fitted_probability(kind, seed, X[untreated], y[untreated], X[test])
    return np.clip(e, PROPENSITY_CLIP, 1 - PROPENSITY_CLIP), mu1, mu0


def _aipw(X: np.ndarray, a: np.ndarray, y: np.ndarray, schools: np.ndarray, folds: int,
          kind: str, seed: int) -> tuple[float, float]:
    """AIPW average effect and its school-clustered SE from the influence function."""
    e, mu1, mu0 = _nuisances(X, a, y, _school_folds(schools, folds, seed), kind, seed)
    phi = mu1 - mu0 + a * (y - mu1) / e - (1 - a) * (y - mu0) / (1 - e)
    tau = float(phi.mean())
    by_school = pd.Series(phi - tau).groupby(schools).sum().to_numpy()
    return tau, float(np.sqrt((by_school**2).sum()) / len(y))


def _rare_outcome_floor(y: np.ndarray, a: np.ndarray) -> float:
    """The Agresti–Caffo SE of the difference in dropout (one dropout and one stayer added to each group) when the
    children given the action had fewer than :data:`RARE_OUTCOMES` dropouts or stayers; else 0 (no floor)."""
    n1, k1 = float(a.sum()), float(y[a == 1].sum())
    if min(k1, n1 - k1) >= RARE_OUTCOMES:
        return 0.0
    n0, k0 = float(len(a) - n1), float(y[a == 0].sum())
    p1, p0 = (k1 + 1) / (n1 + 2), (k0 + 1) / (n0 + 2)
    return float(np.sqrt(p1 * (1 - p1) / (n1 + 2) + p0 * (1 - p0) / (n0 + 2)))


def _covariates(frame: pd.DataFrame, features: list[str], learner: str) -> np.ndarray:
    """[logit(score), features...] as floats, the score on the logit scale, where risk adds up; constant
    features dropped. NaN is kept for LightGBM (its splits send it a way of its own); for the logistic
    learner a feature with NaN is filled with its median and a 0/1 column marks the rows it was missing in."""
    score = np.clip(frame["score"].to_numpy(float), 1e-6, 1 - 1e-6)
    values = frame[features].to_numpy(float)
    if not len(values):
        return logit(score)[:, None]
    missing = np.isnan(values)
    spread = np.where(missing, -np.inf, values).max(axis=0) > np.where(missing, np.inf, values).min(axis=0)
    varies = spread | (missing.any(axis=0) & ~missing.all(axis=0))
    values, missing = values[:, varies], missing[:, varies]
    if learner == "lightgbm" or not missing.any():
        return np.column_stack([logit(score), values])
    filled = np.where(missing, np.nanmedian(values, axis=0), values)  # no column is all NaN: those vary not
    gaps = missing[:, missing.any(axis=0)].astype(float)
    return np.column_stack([logit(score), filled, gaps])


def per_action_effects(frame: pd.DataFrame, actions: list[str], features: list[str], *,
                       folds: int = 5, learner: str = "logistic", seed: int = 0,
                       alpha: float = 0.05, adjusted_for: str = "") -> list[ActionEffect]:
    """Naive and doubly robust effect of each action on dropout among the frame's students.

    Parameters
    ----------
    frame : DataFrame of shape (n_students, ...)
        Alerted students (module docstring for the columns).
    actions : list of str
        Action code columns (0/1) to estimate, one result each.
    features : list of str
        Recorded features to adjust for, besides the score.
    folds : int
        Cross-fitting folds (whole schools per fold).
    learner : ``"logistic"`` or ``"lightgbm"``
        Model for the propensity and outcome.
    seed : int
        Seed of the folds and the learner.
    adjusted_for : str
        How the adjusted estimate's ``method`` names the covariates (default: the score and the feature names).
    """
    if learner not in LEARNERS:
        raise ConfigError(f"learner must be one of {', '.join(LEARNERS)}, got {learner!r}")
    require_columns(frame, ["school_id", "dropped_out", "score", *features, *actions], "per-action frame")
    X = _covariates(frame, features, learner)
    named = adjusted_for or ", ".join(["the score", *features])
    y = frame["dropped_out"].to_numpy(float)
    schools = frame["school_id"].to_numpy()
    results = []
    for action in actions:
        a = frame[action].to_numpy(float)
        if a.min() == a.max():
            raise ContractError(f"per-action frame: every student has {action}={a[0]:g}; nothing to compare")
        naive_fit = clustered_ols(y, np.column_stack([np.ones(len(y)), a]), schools)
        floor = _rare_outcome_floor(y, a)
        naive = effect_from_se(naive_fit.params[1], max(float(np.sqrt(naive_fit.cov[1, 1])), floor),
                               naive_fit.n_students, naive_fit.n_schools,
                               "naive: acted minus not acted, school-clustered SE", OBSERVATIONAL, alpha)
        # The other actions adjust too: a child given one kind of help often gets another,
        # and that help must not be credited to this one.
        others = frame[[other for other in actions if other != action]].to_numpy(float)
        tau, se = _aipw(np.column_stack([X, others]), a, y, schools, folds, learner, seed)
        adjusted = effect_from_se(tau, max(se, floor), len(y), naive_fit.n_schools,
                                  f"doubly robust (AIPW, {learner}, {folds}-fold cross-fitting by school) "
                                  f"on {named} and the other actions", OBSERVATIONAL, alpha)
        results.append(ActionEffect(action=action, naive=naive, adjusted=adjusted,
                                    n_acted=int(a.sum()), evidence=OBSERVATIONAL))
    return results
