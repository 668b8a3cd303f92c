"""``risk train``: samples → fit → calibrate → policy → evaluate → record, as one result.

Each stage is a function with a typed result; the first four and the model package
live in :mod:`risk.models.stages`, the evaluation and the record here. The MLflow
record of the result is written by :mod:`risk.models.tracking`; this module knows
nothing of MLflow, so a notebook or a test can train in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from risk.config import Settings
from risk.data.ids import pseudonyms
from risk.errors import RiskError
from risk.features.catalog import Catalog
from risk.logs import get_logger
from risk.models.baselines import abc_rule_score, context_only_model, logistic_baseline
from risk.models.bundle import ModelBundle
from risk.models.calibrate import CalibrationChoice
from risk.models.evaluate import MODEL, Evaluation, evaluate
from risk.models.policy import ClassPolicy
from risk.models.promise import calibration_metrics, class_metrics, held_out_check, target_metrics
from risk.models.protected import HeldRows, compare_protected, protected_columns, setting_figures
from risk.models.samples import Samples, student_sample, student_uniform
from risk.models.settings import TrainSettings
from risk.models.stages import (
    Calibrated,
    FittedModel,
    PolicyChoice,
    TrainingSamples,
    build_bundle,
    calibrate_model,
    choose_class_policy,
    code_version,
    draw_samples,
    fit_model,
)
from risk.models.term_split import TermSplit
from risk.models.treated import TreatedRows, find_treated, untreated_samples
from risk.store import Store

__all__ = ["Evaluated", "TrainingResult", "code_version", "evaluate_model", "record_training", "train_model",
           "treated_metrics"]

log = get_logger(__name__)


@dataclass(frozen=True)
class TrainingResult:
    """A trained bundle with the record of how it was made and how it scored (the record stage's result)."""

    bundle: ModelBundle
    split: TermSplit
    evaluation: Evaluation
    calibration: CalibrationChoice
    rows: dict[str, dict[str, int]]
    params: dict[str, Any]
    best_iteration: int
    inputs_hash: str
    feature_points: dict[str, int]
    shap_sample: tuple[np.ndarray, np.ndarray]
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    champion_version: str | None = None
    example: pd.DataFrame | None = None
    # ModelCardInfo.protected_comparison: both settings of features.protected_inputs side by side
    protected_comparison: dict[str, Any] | None = None
    # TreatedRows.summary(): training rows the help may have changed, and what was done with them
    treated: dict[str, Any] | None = None


def train_model(validated: Path, *, settings: Settings, train_settings: TrainSettings, catalog: Catalog,
                catalog_yaml: bytes, truth: Path | None = None, id_key: bytes | None = None,
                champion: tuple[str, ModelBundle] | None = None, progress: bool = True,
                on_trial: Callable[[int, dict[str, Any], float], None] | None = None,
                store: Store | None = None) -> TrainingResult:
    """Train, calibrate, choose the class policy and evaluate on the held-out term.

    ``truth`` (synthetic data) adds the oracle, read with the pseudonym key ``id_key``;
    ``champion`` (version, bundle) is judged on the same test rows; ``store`` holds the alerts
    and actions that mark training rows as treated (:mod:`risk.models.treated`; None: none is). Raises
    TrainingDataError (a RiskError) with one sentence when the data cannot give a model:
    no validated data, too few terms with a known outcome, no dropouts.
    """
    if not (validated / "enrollments").is_dir():
        raise RiskError(f"{validated} holds no validated data: run `risk validate` first")
    ts = train_settings
    seconds: dict[str, float] = {}
    with _timing(seconds, "samples"):
        samples = draw_samples(validated, settings=settings, ts=ts, catalog=catalog, progress=progress)
    with _timing(seconds, "treated"):
        treated = find_treated(samples, validated, settings=settings, ts=ts, store=store)
        samples = untreated_samples(samples, treated)
    with _timing(seconds, "boosting"):
        fitted = fit_model(samples.train, catalog, ts, progress=progress, on_trial=on_trial,
                           outcome_weight=treated.fit_weight())
    with _timing(seconds, "calibration"):
        calibrated = calibrate_model(samples, fitted, ts)
        choice = choose_class_policy(samples, fitted, calibrated, catalog, ts)
        bundle = build_bundle(samples, fitted, calibrated, choice, catalog, catalog_yaml, ts)
    evaluated = evaluate_model(samples, fitted, calibrated, choice, bundle, catalog, ts, truth=truth, id_key=id_key,
                               champion=champion, treated=treated)
    return record_training(samples, fitted, calibrated, bundle, evaluated, ts, seconds={**seconds, **evaluated.seconds},
                           champion=champion, treated=treated)


@contextmanager
def _timing(seconds: dict[str, float], name: str) -> Iterator[None]:
    """Add the block's wall time (s) to ``seconds[name]``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started


# ---------------------------------------------------------------- evaluate


@dataclass(frozen=True)
class Evaluated:
    """The evaluation on the test term, both settings of ``features.protected_inputs`` when compared
    (None otherwise), and the seconds each took."""

    evaluation: Evaluation
    protected_comparison: dict[str, Any] | None
    seconds: dict[str, float]


def evaluate_model(samples: TrainingSamples, fitted: FittedModel, calibrated: Calibrated, choice: PolicyChoice,
                   bundle: ModelBundle, catalog: Catalog, ts: TrainSettings, *, truth: Path | None,
                   id_key: bytes | None, champion: tuple[str, ModelBundle] | None,
                   treated: TreatedRows | None = None) -> Evaluated:
    """The model beside the oracle, the champion and the baselines on the test rows; its policy's figures;
    with ``treated``, how many training rows the help may have changed (``train.rows_*``).

    Writes the headline test figures into ``bundle.meta["evaluation"]``.
    """
    seconds: dict[str, float] = {}
    policy, check = choice.policy, choice.check
    with _timing(seconds, "evaluation"):
        scores, champion_targets = _all_scores(samples, calibrated.p_test, bundle, catalog, ts, truth, id_key,
                                               champion)
        evaluation = evaluate(samples.test, scores, bundle=bundle, catalog=catalog, settings=ts.evaluation,
                              calibrated={n for n in scores if n != "abc_rule"})
    # Stored with the model: the scorer's report quotes how the model did on its held-out term.
    bundle.meta["evaluation"] = {k.removeprefix("test."): round(v, 4) for k, v in evaluation.headline.items()
                                 if k.startswith(("test.model.", "test.oracle.")) and "grade_" not in k}
    evaluation.headline.update({**class_metrics(policy.outcomes), **calibration_metrics(policy), **champion_targets,
                                **target_metrics(check.achieved, check.missed, "held_out", "test.model")})
    if treated is not None:
        evaluation.headline.update(treated_metrics(treated))
    comparison = None
    if ts.features.compare_protected and protected_columns(catalog, samples.train.names):
        with _timing(seconds, "protected_comparison"):
            comparison = _compare_protected(samples, fitted, calibrated, policy, catalog, ts)
            evaluation.headline.update({f"protected.{setting}.{k}": float(v) for setting in ("with_protected",
                                        "without_protected") for k, v in comparison[setting].items()})
    return Evaluated(evaluation, comparison, seconds)


def treated_metrics(treated: TreatedRows) -> dict[str, float]:
    """The training rows and those the help may have changed, by kind, and their share (0..1)."""
    counts = treated.counts()
    return {"train.rows": float(counts["rows"]), "train.rows_treated": float(counts["treated"]),
            "train.rows_alerted": float(counts["alerted"]), "train.rows_acted": float(counts["acted"]),
            "train.rows_wait_list": float(counts["wait_list"]), "train.rows_treated_share": float(counts["share"])}


def _compare_protected(samples: TrainingSamples, fitted: FittedModel, calibrated: Calibrated, policy: ClassPolicy,
                       catalog: Catalog, ts: TrainSettings) -> dict[str, Any]:
    """:func:`compare_protected` on this training's rows, params, trees and calibration method."""
    held = fitted.held
    held_rows = HeldRows(held.X, held.y, held.weight, held.students, calibrated.extra)
    return compare_protected(
        train=samples.train, calibration=samples.calibration, test=samples.test, held=held_rows, catalog=catalog,
        ts=ts, params=fitted.params, trees=fitted.best_iteration, method=calibrated.calibrator.method,
        main=setting_figures(samples.test, calibrated.p_test, policy, catalog, ts))


def _all_scores(samples: TrainingSamples, p_test: np.ndarray, bundle: ModelBundle, catalog: Catalog,
                ts: TrainSettings, truth: Path | None, id_key: bytes | None,
                champion: tuple[str, ModelBundle] | None) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Every model's score on the test rows: the oracle first, then ours (``p_test``), the champion and the baselines,
    and the champion's class-policy targets on those rows (``test.champion.target.*``, for ``risk promote``)."""
    train, test = samples.train, samples.test
    scores: dict[str, np.ndarray] = {}
    targets: dict[str, float] = {}
    if truth is not None:
        scores["oracle"] = _oracle(truth, test, id_key)
    scores[MODEL] = p_test
    if champion is not None:
        scores, targets = _with_champion(scores, champion, samples, ts)
    logistic = logistic_baseline(train, catalog, max_rows=ts.evaluation.baseline_max_rows, seed=ts.samples.seed)
    scores["logistic"] = logistic.probability(test.X)
    if any(name in train.names for name in ts.evaluation.context_features):
        mask = student_sample(train, ts.evaluation.baseline_max_rows, ts.samples.seed + 3)
        context = context_only_model(
            train if mask is None else train.subset(mask), samples.calibration,
            ts.evaluation.context_features, ts.lightgbm.params,
            trees=min(max(bundle.meta["best_iteration"], 50), 300), catalog=catalog)
        scores["context_only"] = context.probability(test.X)
    scores["abc_rule"] = abc_rule_score(test, ts.evaluation.abc_attendance_below)
    return scores, targets


def _with_champion(scores: dict[str, np.ndarray], champion: tuple[str, ModelBundle], samples: TrainingSamples,
                   ts: TrainSettings) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """``scores`` with the champion's, and its class-policy targets on the test rows ({} when not comparable).

    A champion trained with another catalog is scored on the same rows built with its own catalog.
    """
    version, old = champion
    test = samples.test
    old_X: np.ndarray | None = None
    if set(old.names) <= set(test.names):
        old_X = test.X[:, [test.names.index(n) for n in old.names]]
    else:
        own = samples.test_rows(old.catalog)
        if np.array_equal(own.meta["student_key"].to_numpy(), test.meta["student_key"].to_numpy()):
            old_X = own.X
        else:
            log.warning("champion not comparable", version=version, reason="its rows differ")
    if old_X is None:
        return scores, {}
    scores = {**scores, "champion": old.probability(old_X)}
    kept = held_out_check(old.policy, scores["champion"], test.y, old_X, old.names, ts.policy,
                          weight=test.weight.astype(np.float64), students=test.meta["student_key"].to_numpy())
    return scores, target_metrics(kept.achieved, kept.missed, "held_out", "test.champion")


def _oracle(truth: Path, test: Samples, id_key: bytes | None) -> np.ndarray:
    """The generator's true probability of each test row (synthetic data only), by pseudonym and term."""
    if id_key is None:
        raise RiskError("the oracle's truth file holds raw IDs: give the pseudonym key (RISK_ID_KEY or --demo)")
    if not truth.exists():
        raise RiskError(f"{truth}: no such truth file (it is written by `risk synth` beside the export)")
    table = pq.read_table(truth, columns=["student_id", "term", "p_dropout"]).to_pandas()
    table = table[table["term"].isin(set(test.meta["term"]))]
    table["student_key"] = pseudonyms(table.pop("student_id").to_numpy(), id_key)
    merged = test.meta[["student_key", "term"]].merge(table, on=["student_key", "term"], how="left")
    if merged["p_dropout"].isna().mean() > 0.01:
        raise RiskError(f"{truth} does not cover the test term's students: is it the truth of this export?")
    return merged["p_dropout"].fillna(merged["p_dropout"].mean()).to_numpy(np.float64)


# ---------------------------------------------------------------- record


def record_training(samples: TrainingSamples, fitted: FittedModel, calibrated: Calibrated, bundle: ModelBundle,
                    evaluated: Evaluated, ts: TrainSettings, *, seconds: dict[str, float],
                    champion: tuple[str, ModelBundle] | None, treated: TreatedRows | None = None) -> TrainingResult:
    """The result :func:`risk.models.tracking.log_training` records: rows by role, params, a SHAP sample of the
    test rows (``evaluation.shap_sample_rows`` about), an input example and the seconds of each stage."""
    test = samples.test
    sample = test.subset(student_uniform(test.meta["student_key"].to_numpy(), 99) <
                         ts.evaluation.shap_sample_rows / max(test.rows, 1))
    rows = {role: {"rows": s.rows, "positives": s.positives, "students": int(s.meta["student_key"].nunique()),
                   "unknown_outcome": int(sum(s.unknown.values()))}
            for role, s in samples.roles()}
    rows["calibration"]["added_other_semester"] = int(calibrated.extra.sum())  # early-stopping rows (stages)
    return TrainingResult(
        bundle=bundle, split=samples.split, evaluation=evaluated.evaluation, calibration=calibrated.choice, rows=rows,
        params=fitted.params, best_iteration=fitted.best_iteration, inputs_hash=samples.inputs_hash,
        feature_points=samples.feature_points,
        shap_sample=(sample.X.astype(np.float64), fitted.booster.predict(sample.X, pred_contrib=True)),
        trials=fitted.trials, seconds={k: round(v, 2) for k, v in seconds.items()},
        champion_version=champion[0] if champion else None,
        example=pd.DataFrame(test.X[:5].astype(np.float64), columns=test.names),
        protected_comparison=evaluated.protected_comparison,
        treated=None if treated is None else treated.summary())
