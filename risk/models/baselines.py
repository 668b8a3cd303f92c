"""The baselines every model is judged beside (DESIGN.md "Evaluation").

- ``logistic``: a logistic regression on the same features (categories one-hot,
  missing values imputed with an indicator), trained on a sample of the training rows;
- ``abc_rule``: the classic ABC early-warning rule (Balfanz): attendance under 90%,
  any failing grade or special mark (0, ร, มส, มผ), any behaviour flag; the score
  is the number of flags raised;
- ``context_only``: LightGBM on school, area and grade context only (published work
  found context alone ranks risk almost as well as many individual models; ours
  must show what the individual data adds), calibrated like the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from risk.features.catalog import Catalog
from risk.models.calibrate import Calibrator, fit_calibrator
from risk.models.forest import CompiledForest, booster_probability
from risk.models.samples import Samples, student_uniform

__all__ = ["ContextModel", "LogisticModel", "abc_rule_score", "context_only_model", "logistic_baseline"]

# Course-performance features of the ABC rule: any of them above zero is a flag.
_COURSE = ("grades_zero_last_term", "grades_not_eligible_last_term", "grades_incomplete_last_term",
           "failed_credits_last_term")
# Rows the logistic baseline scores at once.
_BLOCK_ROWS = 100_000


@dataclass(frozen=True)
class LogisticModel:
    """The logistic baseline: a fitted pipeline (imputation, scaling, one-hot, logistic regression)."""

    pipeline: Pipeline

    def probability(self, X: np.ndarray) -> np.ndarray:
        """Probability of rows ``X`` of the full feature matrix, in blocks: the dense one-hot of
        ~750k held-out rows at once would take ~1 GB late in a national retrain."""
        return np.concatenate([self.pipeline.predict_proba(X[i:i + _BLOCK_ROWS])[:, 1]
                               for i in range(0, len(X), _BLOCK_ROWS)])


def logistic_baseline(train: Samples, catalog: Catalog, *, max_rows: int, seed: int) -> LogisticModel:
    """A logistic regression fitted on the features of ``train`` (at most ``max_rows`` rows)."""
    keep = student_uniform(train.meta["student_key"].to_numpy(), seed + 3) < max_rows / max(train.rows, 1)
    categorical = [i for i, n in enumerate(train.names) if catalog.get(n).unit == "category"]
    numeric = [i for i in range(len(train.names)) if i not in categorical]
    prepare = ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(strategy="median", add_indicator=True,
                                                keep_empty_features=True), StandardScaler()), numeric),
        ("categories", make_pipeline(SimpleImputer(strategy="constant", fill_value=-1.0),
                                     OneHotEncoder(handle_unknown="ignore", sparse_output=False)), categorical),
    ])  # dense throughout: a sparse one-hot block made scoring the held-out rows ~3x slower (stacking it)
    model = Pipeline([("prepare", prepare), ("logistic", LogisticRegression(max_iter=500, C=1.0))])
    model.fit(train.X[keep], train.y[keep], logistic__sample_weight=train.weight[keep])
    return LogisticModel(model)


def abc_rule_score(samples: Samples, attendance_below: float) -> np.ndarray:
    """Number of ABC flags per row (0–3); a missing value raises no flag."""
    def above(name: str, limit: float) -> np.ndarray:
        if name not in samples.names:  # a catalog without it: the rule cannot raise that flag
            return np.zeros(samples.rows, dtype=bool)
        with np.errstate(invalid="ignore"):
            return samples.column(name) > limit

    attendance = np.zeros(samples.rows, dtype=bool)
    if "att_rate_term" in samples.names:
        with np.errstate(invalid="ignore"):
            attendance = samples.column("att_rate_term") < attendance_below
    course = np.logical_or.reduce([above(name, 0) for name in _COURSE])
    return attendance.astype(np.float64) + course + above("risk_flag_count", 0)


@dataclass(frozen=True)
class ContextModel:
    """The context-only baseline: a booster on a few context columns, Platt-calibrated."""

    booster: lgb.Booster
    calibrator: Calibrator
    columns: list[int]  # the columns of the full feature matrix it reads
    forest: CompiledForest | None

    def probability(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probability of rows ``X`` of the full feature matrix."""
        return self.calibrator.transform(booster_probability(self.booster, X[:, self.columns], self.forest))


def context_only_model(train: Samples, calibration: Samples, names: list[str], params: dict,
                       *, trees: int, catalog: Catalog) -> ContextModel:
    """LightGBM on the context columns ``names`` only, Platt-calibrated on the calibration term."""
    columns = [train.names.index(n) for n in names if n in train.names]
    chosen = [train.names[i] for i in columns]
    categorical = [i for i, n in enumerate(chosen) if catalog.get(n).unit == "category"]
    data = lgb.Dataset(train.X[:, columns], label=train.y, weight=train.weight, feature_name=chosen,
                       categorical_feature=categorical, params={"verbose": -1})
    booster = lgb.train({**params, "verbose": -1}, data, num_boost_round=trees)
    forest = CompiledForest.from_booster(booster, threads=params.get("num_threads", 2))
    raw = booster_probability(booster, calibration.X[:, columns], forest)
    return ContextModel(booster, fit_calibrator("platt", raw, calibration.y), columns, forest)
