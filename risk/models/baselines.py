"""The baselines every model is judged beside (DESIGN.md "Evaluation").

- ``logistic``: a logistic regression on the same features (categories one-hot,
  missing values imputed with an indicator), trained on a sample of the training rows;
- ``abc_rule``: the classic ABC early-warning rule (Balfanz): attendance under 90%,
  any failing grade or special mark (0, ร, มส, มผ), any behaviour flag; the score
  is the number of flags raised;
- ``context_only``: LightGBM on school, area and grade context only (published work
  found context alone ranks risk almost as well as many individual models; ours
  must show what the individual data adds), calibrated like the model.

``logistic`` and ``context_only`` are models of the seam (:class:`~risk.models.protocol.RiskModel`)
on the full feature matrix, with exact contributions in log-odds (coefficient × distance from
the training mean; TreeSHAP on the context columns, 0 elsewhere). ``abc_rule`` is a
count of flags, not a probability: it ranks, and evaluation reads it as a score only.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from risk.features.catalog import Catalog
from risk.models.booster import LightGBMModel
from risk.models.calibrate import fit_calibrator
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
    """The logistic baseline, a RiskModel: a fitted pipeline (imputation, scaling, one-hot, logistic regression).

    ``feature_names`` are the columns of the full feature matrix it reads; ``owners`` (n_columns,) the
    feature each column the pipeline makes comes from (a scaled value, its missing indicator, a
    category's one-hot column), and ``column_means`` (n_columns,) those columns' weighted means on the
    rows it was fitted on: the expected value its contributions are measured from.
    """

    pipeline: Pipeline
    feature_names: list[str]
    owners: NDArray[np.intp]
    column_means: NDArray[np.float64]

    def probability(self, X: np.ndarray) -> np.ndarray:
        """Probability of rows ``X`` (n, f) of the full feature matrix, shape (n,), in blocks: the dense one-hot of
        ~750k held-out rows at once would take ~1 GB late in a national retrain."""
        return np.concatenate([self.pipeline.predict_proba(X[i:i + _BLOCK_ROWS])[:, 1]
                               for i in range(0, len(X), _BLOCK_ROWS)])

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Exact contributions of rows ``X`` (n, f) in log-odds, shape (n, f + 1): per feature, the sum over its
        columns of coefficient × (value − training mean); last, the expected value. Each row sums to the
        model's log-odds (``decision_function``)."""
        prepare, logistic = self.pipeline["prepare"], self.pipeline["logistic"]
        coef = logistic.coef_[0]
        per_feature = np.zeros((len(self.owners), len(self.feature_names)))
        per_feature[np.arange(len(self.owners)), self.owners] = 1.0
        out = np.empty((len(X), len(self.feature_names) + 1))
        out[:, -1] = logistic.intercept_[0] + coef @ self.column_means
        for i in range(0, len(X), _BLOCK_ROWS):
            columns = prepare.transform(X[i:i + _BLOCK_ROWS]) - self.column_means
            out[i:i + _BLOCK_ROWS, :-1] = (columns * coef) @ per_feature
        return out


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
    logistic = LogisticRegression(max_iter=500, C=1.0)
    # The steps fitted one by one, as Pipeline.fit does, so the prepared columns' means come without a second pass.
    columns = prepare.fit_transform(train.X[keep])
    logistic.fit(columns, train.y[keep], sample_weight=train.weight[keep])
    means = np.average(columns, axis=0, weights=train.weight[keep].astype(np.float64))
    return LogisticModel(Pipeline([("prepare", prepare), ("logistic", logistic)]), list(train.names),
                         _column_owners(prepare, numeric, categorical), means)


def _column_owners(prepare: ColumnTransformer, numeric: list[int], categorical: list[int]) -> NDArray[np.intp]:
    """The feature (index into the full matrix) of each column ``prepare`` outputs, in its output order."""
    owners = list(numeric)
    if numeric:
        indicator = prepare.named_transformers_["numbers"][0].indicator_
        owners += [numeric[j] for j in (indicator.features_ if indicator is not None else [])]
    if categorical:
        encoder = prepare.named_transformers_["categories"][-1]
        owners += [feature for feature, seen in zip(categorical, encoder.categories_, strict=True)
                   for _ in range(len(seen))]
    return np.asarray(owners, dtype=np.intp)


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
    """The context-only baseline, a RiskModel: a Platt-calibrated booster on a few context columns of the full
    feature matrix (``columns``, indices into ``feature_names``)."""

    model: LightGBMModel
    columns: list[int]
    feature_names: list[str]

    def probability(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probability of rows ``X`` (n, f) of the full feature matrix, shape (n,)."""
        return self.model.probability(X[:, self.columns])

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """TreeSHAP of rows ``X`` (n, f) in log-odds, shape (n, f + 1): the context columns' own, 0 for every
        other feature (the booster never reads them), and last the expected value."""
        own = self.model.contributions(X[:, self.columns])
        out = np.zeros((len(X), len(self.feature_names) + 1))
        out[:, self.columns] = own[:, :-1]
        out[:, -1] = own[:, -1]
        return out


def context_only_model(train: Samples, calibration: Samples, names: list[str], params: dict,
                       *, trees: int, catalog: Catalog) -> ContextModel:
    """LightGBM on the context columns ``names`` only, Platt-calibrated on the calibration term."""
    columns = [train.names.index(n) for n in names if n in train.names]
    chosen = [train.names[i] for i in columns]
    categorical = [i for i, n in enumerate(chosen) if catalog.get(n).unit == "category"]
    data = lgb.Dataset(train.X[:, columns], label=train.y, weight=train.weight, feature_name=chosen,
                       categorical_feature=categorical, params={"verbose": -1})
    booster = lgb.train({**params, "verbose": -1}, data, num_boost_round=trees)
    threads = params.get("num_threads", 2)
    forest = CompiledForest.from_booster(booster, threads=threads)
    raw = booster_probability(booster, calibration.X[:, columns], forest, threads)
    calibrator = fit_calibrator("platt", raw, calibration.y)
    return ContextModel(LightGBMModel(booster, calibrator, forest=forest, num_threads=threads), columns,
                        list(train.names))
