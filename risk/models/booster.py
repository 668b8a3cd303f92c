"""LightGBM training with early stopping on held-out students, and the optional Optuna search."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.metrics import roc_auc_score

from risk.features.catalog import Catalog
from risk.models.forest import CompiledForest, booster_probability
from risk.models.samples import Samples, student_uniform
from risk.models.settings import LightGBMSettings, OptunaSettings, SplitSettings

__all__ = ["FittedBooster", "fit_booster", "search_params", "stopping_rows", "training_datasets"]

# Parameters fixed when the Dataset is built; they cannot change between Optuna trials.
_DATASET_PARAMS = ("max_bin", "min_data_in_bin", "bin_construct_sample_cnt")


@dataclass
class FittedBooster:
    booster: lgb.Booster
    best_iteration: int
    stop_auc: float
    params: dict[str, Any]
    held_raw: np.ndarray  # the booster's score of each row of held_X (the trainer reuses it: predicting is costly)
    forest: CompiledForest | None  # the trees compiled for large batches (None: LightGBM predicts)


def stopping_rows(student_key: np.ndarray, split: SplitSettings, seed: int) -> np.ndarray:
    """The rows held out of fitting for early stopping: ``early_stopping_share`` of the students, and of
    those a uniform sample when their rows pass ``early_stopping_max_rows`` (the others are fitted on)."""
    draw = student_uniform(student_key, seed + 2)
    stop = draw < split.early_stopping_share
    rows = int(stop.sum())
    if rows > split.early_stopping_max_rows:
        stop = draw < split.early_stopping_share * split.early_stopping_max_rows / rows
    return stop


def training_datasets(samples: Samples, catalog: Catalog, settings: LightGBMSettings, split: SplitSettings,
                      seed: int) -> tuple[lgb.Dataset, lgb.Dataset, np.ndarray]:
    """The fit and early-stopping Datasets (split by student, :func:`stopping_rows`) and the stopping rows' mask.

    The matrix is binned once (LightGBM's own ``subset`` shares the bins), so the
    float matrix is not copied: at national scale it is the largest thing in memory.
    """
    stop = stopping_rows(samples.meta["student_key"].to_numpy(), split, seed)
    weight = samples.weight.astype(np.float64) * np.where(samples.y == 1, settings.positive_weight, 1.0)
    categorical = [i for i, name in enumerate(samples.names) if catalog.get(name).unit == "category"]
    dataset_params = {k: v for k, v in settings.params.items() if k in _DATASET_PARAMS}
    dataset_params.update(feature_pre_filter=False, verbose=-1)
    full = lgb.Dataset(samples.X, label=samples.y, weight=weight, feature_name=samples.names,
                       categorical_feature=categorical, params=dataset_params, free_raw_data=False)
    full.construct()
    fit = full.subset(np.flatnonzero(~stop).tolist())
    held = full.subset(np.flatnonzero(stop).tolist())
    return fit, held, stop


def fit_booster(fit: lgb.Dataset, held: lgb.Dataset, held_X: np.ndarray, held_y: np.ndarray, params: dict[str, Any], *,
                max_trees: int, early_stopping_rounds: int,
                on_iteration: Callable[[int], None] | None = None) -> FittedBooster:
    """Train with early stopping on ``held``; returns the booster cut at its best iteration.

    ``held_X``, ``held_y``: early-stopping rows (all or a uniform sample) scored once at the end.
    """
    callbacks: list[Callable[..., None]] = [lgb.early_stopping(early_stopping_rounds, verbose=False)]
    if on_iteration is not None:
        callbacks.append(lambda env: on_iteration(env.iteration + 1))
    booster = lgb.train({**params, "metric": "binary_logloss"}, fit, num_boost_round=max_trees,
                        valid_sets=[held], valid_names=["stop"], callbacks=callbacks)
    best = booster.best_iteration or booster.current_iteration()
    if best < booster.current_iteration():
        booster = booster.model_from_string(booster.model_to_string(num_iteration=best))
    threads = params.get("num_threads", 2)
    forest = CompiledForest.from_booster(booster, threads=threads)
    held_raw = booster_probability(booster, held_X, forest, threads=threads)
    return FittedBooster(booster, best, float(roc_auc_score(held_y, held_raw)), params, held_raw, forest)


def search_params(fit: lgb.Dataset, held: lgb.Dataset, held_X: np.ndarray, held_y: np.ndarray, base: dict[str, Any], *,
                  optuna_settings: OptunaSettings, max_trees: int, early_stopping_rounds: int, seed: int,
                  on_trial: Callable[[int, dict[str, Any], float], None]) -> dict[str, Any]:
    """Optuna search over capacity and regularisation within the reason-cost limits; returns the best params.

    ``on_trial(number, params, auc)`` is called after each trial (the trainer logs
    it as a nested MLflow run).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        params = {**base,
                  "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.15, log=True),
                  "num_leaves": trial.suggest_int("num_leaves", 7, optuna_settings.max_leaves),
                  "max_depth": trial.suggest_int("max_depth", 3, optuna_settings.max_depth),
                  "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 50, 2000, log=True),
                  "lambda_l2": trial.suggest_float("lambda_l2", 0.1, 50.0, log=True),
                  "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0)}
        fitted = fit_booster(fit, held, held_X, held_y, params, max_trees=max_trees,
                             early_stopping_rounds=early_stopping_rounds)
        on_trial(trial.number, {**params, "trees": fitted.best_iteration}, fitted.stop_auc)
        return fitted.stop_auc

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=optuna_settings.trials)
    return {**base, **study.best_params}
