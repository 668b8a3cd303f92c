"""Judging a model on the held-out term: beside the oracle, its baselines and the champion, by week,
by transition grade, and by group (fairness).

Evaluation reads scores, not models: :func:`model_scores` asks each model of the seam
(:class:`~risk.models.protocol.RiskModel`, whatever its library) for its probability of the
test rows, and :func:`evaluate` judges the arrays. It never needs contributions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from risk.features.catalog import Catalog
from risk.models.bundle import ModelBundle
from risk.models.fairness import fairness_table
from risk.models.metrics import calibration_curve_table, evaluation_table, lead_time_table
from risk.models.protocol import ModelError, RiskModel
from risk.models.samples import Samples
from risk.models.settings import EvaluationSettings

__all__ = ["Evaluation", "decoded_column", "evaluate", "model_scores"]

MODEL = "model"


@dataclass
class Evaluation:
    """Everything the evaluation found, as tables ready for MLflow, the card and the notebook."""

    table: pd.DataFrame
    fairness: pd.DataFrame
    lead_time: pd.DataFrame
    calibration_curves: dict[str, pd.DataFrame]
    class_counts: pd.DataFrame
    headline: dict[str, float] = field(default_factory=dict)

    def metric(self, model: str, name: str, slice_name: str = "overall") -> float:
        row = self.table[(self.table["slice"] == slice_name) & (self.table["model"] == model)]
        return float(row[name].iloc[0]) if len(row) else float("nan")


def decoded_column(samples: Samples, catalog: Catalog, name: str) -> np.ndarray:
    """A feature as readable labels: category codes → their names, flags → yes/no, missing → None."""
    spec = catalog.get(name)
    values = samples.column(name)
    out = np.full(len(values), None, dtype=object)
    present = ~np.isnan(values)
    if spec.unit == "category" and spec.categories:
        labels = np.asarray(spec.categories + ["?"], dtype=object)
        index = np.clip(values[present].astype(int), 0, len(spec.categories))
        out[present] = labels[index]
    elif spec.unit == "flag":
        out[present] = np.where(values[present] > 0, "yes", "no")
    else:
        out[present] = values[present]
    return out


def model_scores(models: Mapping[str, RiskModel], X: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Each model's calibrated probability of the rows ``X``, by model name.

    Parameters
    ----------
    models : mapping of name to RiskModel
    X : ndarray of shape (n_samples, n_features)
        The rows, with columns ``names``. A model whose ``feature_names`` are another list
        (a champion trained with another catalog) is given its own columns, by name.
    names : sequence of str, length n_features

    Returns
    -------
    dict of name to ndarray of shape (n_samples,)
        Probabilities in [0, 1].

    Raises
    ------
    ModelError
        When a model needs a column ``X`` lacks, or answers in another shape or outside [0, 1].
    """
    names = list(names)
    out: dict[str, np.ndarray] = {}
    for name, model in models.items():
        wanted = list(model.feature_names)
        if wanted != names:
            lacking = [n for n in wanted if n not in names]
            if lacking:
                raise ModelError(f"model {name!r} reads features the rows lack: {', '.join(lacking[:5])}")
            own = X[:, [names.index(n) for n in wanted]]
        else:
            own = X
        probability = np.asarray(model.probability(own), dtype=np.float64)
        if probability.shape != (len(X),) or not ((probability >= 0) & (probability <= 1)).all():
            raise ModelError(f"model {name!r} gave probabilities of shape {probability.shape} (expected "
                             f"({len(X)},)) or outside [0, 1]")
        out[name] = probability
    return out


def evaluate(test: Samples, scores: dict[str, np.ndarray], *, bundle: ModelBundle, catalog: Catalog,
             settings: EvaluationSettings, calibrated: set[str]) -> Evaluation:
    """The evaluation of ``scores`` (model name → score on the test rows; ``model`` is the new one)."""
    grade = decoded_column(test, catalog, "grade_level")
    transition = np.where(np.isin(grade, settings.transition_grades), grade, None)
    week = test.meta["point"].to_numpy(dtype=object)
    reference = "oracle" if "oracle" in scores else None
    table = evaluation_table(test.y, scores, reference=reference, groups={"week": week, "grade": transition},
                             calibrated=calibrated, top_shares=settings.top_shares)
    probability = scores[MODEL]
    codes, _ = bundle.policy.classify(probability, test.X, test.names)
    groups = {name: decoded_column(test, catalog, name) for name in settings.fairness_groups if name in test.names}
    fairness = fairness_table(test.y, probability, codes > 0, groups, min_rows=settings.fairness_min_rows)
    curves = {name: calibration_curve_table(test.y, scores[name]) for name in scores if name in calibrated}
    classes = pd.DataFrame({"risk_class": bundle.class_names(codes), "dropped_out": test.y})
    class_counts = (classes.groupby("risk_class")["dropped_out"].agg(students="size", observed_dropout_rate="mean")
                    .reindex(["normal", "at_risk", "problem"]).fillna({"students": 0}).reset_index())
    lead = lead_time_table(table)
    evaluation = Evaluation(table, fairness, lead, curves, class_counts)
    evaluation.headline = _headline(evaluation, settings)
    return evaluation


def _headline(evaluation: Evaluation, settings: EvaluationSettings) -> dict[str, float]:
    """The figures an analyst looks at first, as flat MLflow metric names."""
    out: dict[str, float] = {}
    models = evaluation.table["model"].unique()
    for model in models:
        for name in ("roc_auc", "pr_auc", "brier", "ece", "precision_top10", "recall_top10", "precision_top5",
                     "recall_top5", "precision_top20", "recall_top20"):
            out[f"test.{model}.{name}"] = evaluation.metric(model, name)
        for grade in settings.transition_grades:
            out[f"test.{model}.grade_{grade}.roc_auc"] = evaluation.metric(model, "roc_auc", f"grade={grade}")
        out[f"test.{model}.lead_week{settings.lead_time_week}.recall_top10"] = evaluation.metric(
            model, "recall_top10", f"week=week {settings.lead_time_week}")
    if "auc_ratio_to_oracle" in evaluation.table:
        overall = evaluation.table[evaluation.table["slice"] == "overall"].set_index("model")
        for model in models:
            out[f"test.{model}.auc_ratio_to_oracle"] = float(overall.loc[model, "auc_ratio_to_oracle"])
    out["fairness.flagged_groups"] = float(evaluation.fairness["flagged_disparity"].sum()) if len(
        evaluation.fairness) else 0.0
    return {k: v for k, v in out.items() if not np.isnan(v)}
