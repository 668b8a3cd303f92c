"""Protected attributes as model inputs or not (``features.protected_inputs``), and both settings side by side.

Sex, nationality and disability (``role: protected`` in the catalog) are never a
child's reason. Whether the booster may use them at all is a config switch. When it
may not, their columns are hidden (NaN) while LightGBM bins the training rows: a
column with no value gets no split, so the trees never read it, its TreeSHAP
contribution is exactly 0, and the model keeps the catalog's feature list (the
scorer, the service and the drift report see the same columns either way).

Evaluation trains the other setting's booster too, on the same fitting rows with the
same params and the main model's number of trees (no early-stopping search), and
calibrates it and sets its class policy the same way, so the card can show ranking
quality and fairness flags for both: ``{"used": ..., "with_protected": {...},
"without_protected": {...}}``. Its cost is one more boosting run without validation
rounds on at most ``evaluation.compare_max_rows`` of the fitting rows (a sample of students past that),
plus scoring the held-out rows once more.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np

from risk.features.catalog import Catalog
from risk.models.booster import rows_dataset, stopping_rows, training_datasets
from risk.models.calibrate import fit_calibrator
from risk.models.evaluate import decoded_column
from risk.models.fairness import fairness_table
from risk.models.forest import CompiledForest, booster_probability
from risk.models.metrics import score_metrics
from risk.models.policy import ClassPolicy, choose_policy
from risk.models.samples import Samples, student_uniform
from risk.models.settings import TrainSettings

__all__ = ["PROTECTED", "HeldRows", "compare_protected", "hidden", "protected_columns", "setting_figures"]

# The protected features when the catalog carries no ``role`` (before the reasons' roles landed).
PROTECTED = ("sex", "non_thai", "has_disability")


def protected_columns(catalog: Catalog, names: list[str]) -> list[int]:
    """Column indexes of ``names`` whose catalog role is ``protected`` (the fixed list when no roles)."""
    roles = {name: getattr(catalog.get(name), "role", None) for name in names}
    if any(role is not None for role in roles.values()):
        return [i for i, name in enumerate(names) if roles[name] == "protected"]
    return [i for i, name in enumerate(names) if name in PROTECTED]


@contextmanager
def hidden(X: np.ndarray, columns: list[int]) -> Iterator[None]:
    """Within the block, ``X``'s ``columns`` are NaN (in place: the matrix may be the largest thing in memory)."""
    kept = X[:, columns].copy()
    X[:, columns] = np.nan
    try:
        yield
    finally:
        X[:, columns] = kept


@dataclass
class HeldRows:
    """The training terms' early-stopping rows scored for the policy's fallback and the calibration's extra semester."""

    X: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    students: np.ndarray
    extra: np.ndarray   # bool: rows added to the calibration fit (a semester the calibration term lacks)


def setting_figures(test: Samples, probability: np.ndarray, policy: ClassPolicy, catalog: Catalog,
                    ts: TrainSettings) -> dict[str, float]:
    """ROC AUC, recall in the top 10% and the number of fairness flags of one model on the test rows."""
    metrics = score_metrics(test.y, probability, top_shares=[0.10])
    codes, _ = policy.classify(probability, test.X, test.names)
    groups = {n: decoded_column(test, catalog, n) for n in ts.evaluation.fairness_groups if n in test.names}
    fairness = fairness_table(test.y, probability, codes > 0, groups, min_rows=ts.evaluation.fairness_min_rows)
    flags = int(fairness["flagged_disparity"].astype(bool).sum()) if len(fairness) else 0
    return {"auc": round(float(metrics["roc_auc"]), 4), "recall_top10": round(float(metrics["recall_top10"]), 4),
            "fairness_flags": flags}


def compare_protected(*, train: Samples, calibration: Samples, test: Samples, held: HeldRows, catalog: Catalog,
                      ts: TrainSettings, params: dict[str, Any], trees: int, method: str,
                      main: dict[str, float]) -> dict[str, Any]:
    """Train the setting not used, score it like the main model, and return both side by side.

    ``main``: :func:`setting_figures` of the main model; ``trees`` its best iteration;
    ``method`` its calibration method.
    """
    used_with = ts.features.protected_inputs
    hide = protected_columns(catalog, train.names) if used_with else []  # the other setting's
    fit, fit_rows, main_rows = _fit_dataset(train, catalog, ts, hide)
    booster = lgb.train({**params, "metric": "binary_logloss"}, fit, num_boost_round=max(trees, 1))
    threads = params.get("num_threads", 2)
    # The compiled trees give LightGBM's probabilities bit for bit, several times faster on the held-out rows.
    forest = CompiledForest.from_booster(booster, threads=threads)
    raw_held = booster_probability(booster, held.X, forest, threads)
    raw_calibration = booster_probability(booster, calibration.X, forest, threads)
    calibrator = fit_calibrator(method, np.concatenate([raw_calibration, raw_held[held.extra]]),
                                np.concatenate([calibration.y, held.y[held.extra]]),
                                np.concatenate([calibration.weight, held.weight[held.extra]]).astype(np.float64))
    policy = choose_policy(calibrator.transform(raw_calibration), calibration.y, calibration.X, calibration.names,
                           ts.policy, weight=calibration.weight.astype(np.float64),
                           students=calibration.meta["student_key"].to_numpy(),
                           fallback=(calibrator.transform(raw_held), held.y, held.X, held.weight, held.students))
    other = setting_figures(test, calibrator.transform(booster_probability(booster, test.X, forest, threads)), policy,
                            catalog, ts)
    used, unused = ("with_protected", "without_protected") if used_with else ("without_protected", "with_protected")
    return {"used": used, used: main, unused: other, "fit_rows": {unused: fit_rows, used: main_rows}}


def _fit_dataset(train: Samples, catalog: Catalog, ts: TrainSettings, hide: list[int]) -> tuple[lgb.Dataset, int, int]:
    """The other setting's fitting rows binned with columns ``hide`` hidden; how many rows it holds, and how many
    the main model was fitted on.

    Up to ``evaluation.compare_max_rows`` fitting rows it is the main model's own fitting rows. Past that,
    a uniform sample of those students, about that many rows: the comparison cost as much as the main
    boosting again (2.2x bare ``lightgbm.train`` at 4M students), and the models are small (depth 3,
    7 leaves), whose ranking a few hundred thousand rows already settle.
    """
    keys = train.meta["student_key"].to_numpy()
    fit = ~stopping_rows(keys, ts.split, ts.samples.seed)
    rows, cap = int(fit.sum()), ts.evaluation.compare_max_rows
    if rows <= cap:
        with hidden(train.X, hide):
            dataset, _, _ = training_datasets(train, catalog, ts.lightgbm, ts.split, ts.samples.seed)
        return dataset, rows, rows
    take = np.flatnonzero(fit & (student_uniform(keys, ts.samples.seed + 9) < cap / rows))
    X = train.X[take]  # a copy of the sampled rows only: the hidden columns never touch the main matrix
    X[:, hide] = np.nan
    return rows_dataset(X, train.y[take], train.weight[take], train.names, catalog, ts.lightgbm), len(take), rows
