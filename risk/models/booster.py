"""LightGBM behind the model seam: the fitted model (:class:`LightGBMModel`, a
:class:`~risk.models.protocol.RiskModel`), training with early stopping on held-out students, and the
optional Optuna search.

This is the one module of evaluation, scoring and serving's path that knows LightGBM: the model
package keeps the booster as LightGBM's own model text (``booster.txt``), read and written here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.metrics import roc_auc_score

from risk.features.catalog import Catalog
from risk.models.calibrate import Calibrator
from risk.models.forest import MIN_EXPLAIN_ROWS, MIN_ROWS, CompiledForest, booster_probability
from risk.models.protocol import ModelError
from risk.models.samples import Samples, student_uniform
from risk.models.settings import LightGBMSettings, OptunaSettings, SplitSettings

__all__ = ["FEW_ROWS", "FittedBooster", "LightGBMModel", "booster_contributions", "fit_booster", "rows_dataset",
           "search_params", "stopping_rows", "training_datasets"]

# Parameters fixed when the Dataset is built; they cannot change between Optuna trials.
_DATASET_PARAMS = ("max_bin", "min_data_in_bin", "bin_construct_sample_cnt")
# Fewer rows than this are scored on one thread (see LightGBMModel.threads).
FEW_ROWS = 256


class LightGBMModel:
    """A binary LightGBM booster and its calibrator: a :class:`~risk.models.protocol.RiskModel`.

    Large batches go through the booster's trees compiled with numpy (:mod:`risk.models.forest`:
    the same probabilities bit for bit, and TreeSHAP tables within 1e-14 log-odds of
    ``pred_contrib``), compiled on first use unless the trainer hands over the one it has.

    Parameters
    ----------
    booster : lightgbm.Booster
        A binary model; its feature names are :attr:`feature_names`.
    calibrator : Calibrator
        Maps the booster's probability to the calibrated one.
    forest : CompiledForest or None, default None
        The trees already compiled (None: compiled on the first large batch).
    num_threads : int, default 2
        LightGBM and forest threads for batches of :data:`FEW_ROWS` rows or more.
    """

    def __init__(self, booster: lgb.Booster, calibrator: Calibrator, *, forest: CompiledForest | None = None,
                 num_threads: int = 2) -> None:
        self.booster = booster
        self.calibrator = calibrator
        self.num_threads = num_threads
        self.feature_names: list[str] = list(booster.feature_name())
        self._forest = forest
        self._forest_compiled = forest is not None

    @classmethod
    def load(cls, path: Path, calibrator: Calibrator, *, num_threads: int = 2) -> LightGBMModel:
        """The booster in LightGBM's model text at ``path`` with ``calibrator``; ModelError when unreadable."""
        try:
            return cls(lgb.Booster(model_file=str(path)), calibrator, num_threads=num_threads)
        except lgb.basic.LightGBMError as exc:
            raise ModelError(f"{path.name} is not a LightGBM model ({exc})") from exc

    def save(self, path: Path) -> None:
        """Write the booster as LightGBM's model text to ``path``."""
        self.booster.save_model(str(path))

    def threads(self, rows: int) -> int:
        """Threads for ``rows`` rows: one for a few (the service's requests).

        An OpenMP team costs more to start than a few rows cost to score, and its
        threads then spin on the other core, taking it from the next request.
        """
        return 1 if rows < FEW_ROWS else self.num_threads

    def raw_probability(self, X: np.ndarray) -> np.ndarray:
        """The booster's uncalibrated probability of rows ``X`` (n, f) in :attr:`feature_names` order, shape (n,)."""
        try:
            return booster_probability(self.booster, X, self._compiled(len(X), MIN_ROWS), threads=self.threads(len(X)))
        except lgb.basic.LightGBMError as exc:
            raise ModelError(f"LightGBM could not score {len(X)} rows: {exc}") from exc

    def probability(self, X: np.ndarray) -> np.ndarray:
        """Calibrated dropout probability of rows ``X`` (n, f), shape (n,)."""
        return self.calibrator.transform(self.raw_probability(X))

    def importance_shares(self) -> np.ndarray | None:
        """Each feature's share of the booster's total split gain, shape (f,), summing to 1; None when the
        booster never split (no feature is more important than another)."""
        gain = np.asarray(self.booster.feature_importance(importance_type="gain"), dtype=np.float64)
        return gain / gain.sum() if gain.sum() > 0 else None

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """TreeSHAP contributions of rows ``X`` (n, f), shape (n, f + 1), in raw log-odds; the last column is
        the expected value, and each row sums to the booster's raw score.

        Batches go through the compiled forest's TreeSHAP tables (the same values as LightGBM's
        ``pred_contrib`` to within rounding, ~15x faster); a few rows, or a model whose trees are
        too large to tabulate, through ``pred_contrib`` itself.
        """
        forest = self._compiled(len(X), MIN_EXPLAIN_ROWS)
        if forest is not None and forest.explains:
            return forest.contributions(np.asarray(X, dtype=np.float64))
        try:
            return booster_contributions(self.booster, X, num_threads=self.threads(len(X)))
        except lgb.basic.LightGBMError as exc:
            raise ModelError(f"LightGBM could not explain {len(X)} rows: {exc}") from exc

    def _compiled(self, rows: int, min_rows: int) -> CompiledForest | None:
        """The compiled forest (compiled on first use) when ``rows`` reach ``min_rows``, else None."""
        if rows < min_rows:
            return None
        if not self._forest_compiled:
            self._forest = CompiledForest.from_booster(self.booster, threads=self.num_threads)
            self._forest_compiled = True
        return self._forest


def booster_contributions(booster: lgb.Booster, X: np.ndarray, *, num_threads: int = 0) -> np.ndarray:
    """SHAP contributions of a binary LightGBM booster (``pred_contrib``, TreeSHAP).

    Parameters
    ----------
    booster : lightgbm.Booster
    X : ndarray of shape (n_samples, n_features)
    num_threads : int, default 0
        LightGBM threads (0: OpenMP's default, every core).

    Returns
    -------
    ndarray of shape (n_samples, n_features + 1), float64
        Per-feature contributions in raw log-odds; the last column is the
        expected value. Each row sums to the booster's raw score.
    """
    X = np.asarray(X, dtype=np.float64)
    values = np.asarray(booster.predict(X, pred_contrib=True, num_threads=num_threads), dtype=np.float64)
    if values.shape != (X.shape[0], X.shape[1] + 1):
        raise ValueError(f"pred_contrib gave shape {values.shape}, expected {(X.shape[0], X.shape[1] + 1)}; "
                         "is this a binary model trained on these columns?")
    return values


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
    full = rows_dataset(samples.X, samples.y, samples.weight, samples.names, catalog, settings, free_raw_data=False)
    fit = full.subset(np.flatnonzero(~stop).tolist())
    held = full.subset(np.flatnonzero(stop).tolist())
    return fit, held, stop


def rows_dataset(X: np.ndarray, y: np.ndarray, weight: np.ndarray, names: list[str], catalog: Catalog,
                 settings: LightGBMSettings, **options: Any) -> lgb.Dataset:
    """Rows ``X`` (float32 (n, f), columns ``names``) binned as a LightGBM Dataset: positives weigh
    ``positive_weight`` times their sampling ``weight``; the catalog's categories are categorical."""
    weight = weight.astype(np.float64) * np.where(y == 1, settings.positive_weight, 1.0)
    categorical = [i for i, name in enumerate(names) if catalog.get(name).unit == "category"]
    dataset_params = {k: v for k, v in settings.params.items() if k in _DATASET_PARAMS}
    dataset_params.update(feature_pre_filter=False, verbose=-1)
    dataset = lgb.Dataset(X, label=y, weight=weight, feature_name=names, categorical_feature=categorical,
                          params=dataset_params, **options)
    dataset.construct()
    return dataset


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
