"""``risk train``: samples → LightGBM → calibration → class policy → evaluation, as one result.

The MLflow record of the result is written by :mod:`risk.models.tracking`; this
module knows nothing of MLflow, so a notebook or a test can train in memory.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from collections.abc import Callable
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
from risk.models.booster import fit_booster, search_params, training_datasets
from risk.models.bundle import ModelBundle
from risk.models.calibrate import CalibrationChoice, choose_calibrator
from risk.models.evaluate import MODEL, Evaluation, evaluate
from risk.models.forest import booster_probability
from risk.models.policy import GRADE_FEATURE, choose_policy
from risk.models.profile import discrete_features, training_profile
from risk.models.promise import (
    apply_check,
    calibration_metrics,
    class_metrics,
    held_out_check,
    target_metrics,
)
from risk.models.protected import (
    HeldRows,
    compare_protected,
    hidden,
    protected_columns,
    setting_figures,
)
from risk.models.samples import (
    DataFiles,
    Samples,
    TermSplit,
    build_samples,
    check_samples,
    feature_cache_path,
    inputs_hash,
    known_outcome_terms,
    outcome_connection,
    sample_points,
    split_terms,
    student_uniform,
    term_labels,
)
from risk.models.settings import TrainSettings
from risk.progress import Progress

__all__ = ["TrainingResult", "code_version", "train_model"]

log = get_logger(__name__)


@dataclass
class TrainingResult:
    """A trained bundle with the record of how it was made and how it scored."""

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


def code_version() -> str:
    """The git commit of the code that trains (``unknown`` outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5, check=False)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=Path(__file__).parent,
                               capture_output=True, text=True, timeout=5, check=False).stdout.strip()
        return (out.stdout.strip() or "unknown") + ("-dirty" if dirty else "")
    except OSError:
        return "unknown"


def train_model(validated: Path, *, settings: Settings, train_settings: TrainSettings, catalog: Catalog,
                catalog_yaml: bytes, truth: Path | None = None, id_key: bytes | None = None,
                champion: tuple[str, ModelBundle] | None = None, progress: bool = True,
                on_trial: Any = None) -> TrainingResult:
    """Train, calibrate, choose the class policy and evaluate on the held-out term.

    Raises TrainingDataError (a RiskError) with one sentence when the data cannot
    give a model: no validated data, too few terms with a known outcome, no dropouts.
    """
    if not (validated / "enrollments").is_dir():
        raise RiskError(f"{validated} holds no validated data: run `risk validate` first")
    ts = train_settings
    clock: dict[str, float] = {}
    started = time.perf_counter()
    con = outcome_connection(validated, settings)
    split = split_terms(known_outcome_terms(con), ts.split)
    all_terms = split.train + split.calibration + split.test
    labels = term_labels(con, all_terms, settings)
    points = {t: sample_points(con, t, ts.samples.weeks, ts.samples.last_school_day) for t in all_terms}
    lead = sample_points(con, split.test[0], [ts.evaluation.lead_time_week], False)
    points[split.test[0]] = sorted({p.as_of: p for p in points[split.test[0]] + lead}.values(), key=lambda p: p.as_of)
    inputs = inputs_hash(validated, settings)
    files = DataFiles.scan(validated)
    every_point = [p for t in all_terms for p in points[t]]
    reused = sum(feature_cache_path(validated, p, settings=settings, catalog=catalog, inputs=files).exists()
                 for p in every_point)
    with Progress(enabled=progress) as bar:
        common = {"settings": settings, "inputs": files, "seed": ts.samples.seed, "progress": bar}
        share = ts.split.holdout_students
        train = build_samples(validated, [p for t in split.train for p in points[t]], labels, catalog=catalog,
                              negative_share=ts.samples.negative_share, holdout=(share, False),
                              task_name="training samples", **common)
        calibration = build_samples(validated, [p for t in split.calibration for p in points[t]], labels,
                                    catalog=catalog, max_students=ts.samples.max_eval_students, holdout=(share, True),
                                    task_name="calibration samples", **common)
        test_points = [p for t in split.test for p in points[t]]

        def test_rows(with_catalog: Catalog) -> Samples:
            return build_samples(validated, test_points, labels, catalog=with_catalog,
                                 max_students=ts.samples.max_eval_students, holdout=(share, True),
                                 task_name="test samples", **{**common, "progress": None})

        test = test_rows(catalog)
    clock["samples"] = time.perf_counter() - started
    for role, samples, terms in (("training", train, split.train), ("calibration", calibration, split.calibration),
                                 ("test", test, split.test)):
        check_samples(samples, role, terms)

    started = time.perf_counter()
    params = {**ts.lightgbm.params}
    # features.protected_inputs false: the booster bins (and so can split on) no protected column.
    with hidden(train.X, [] if ts.features.protected_inputs else protected_columns(catalog, train.names)):
        fit, held, stop = training_datasets(train, catalog, ts.lightgbm, ts.split, ts.samples.seed)
    # After boosting, the early-stopping students are scored for the policy's fallback thresholds and
    # the training profile; a uniform sample of them is enough for both (medians, bins, thresholds),
    # and scoring all of them cost ~15 s at 1M students.
    cap = ts.evaluation.profile_max_rows
    held_keys = train.meta["student_key"].to_numpy()[stop]
    take = student_uniform(held_keys, ts.samples.seed + 6) < cap / max(len(held_keys), 1)
    scored_held = np.flatnonzero(stop)[take]
    held_X, held_y, held_w = train.X[scored_held], train.y[scored_held], train.weight[scored_held]
    trials: list[dict[str, Any]] = []
    if ts.optuna.trials > 0:
        def record(number: int, trial_params: dict[str, Any], auc: float) -> None:
            trials.append({"number": number, "params": trial_params, "stop_auc": auc})
            if on_trial is not None:
                on_trial(number, trial_params, auc)

        params = search_params(fit, held, held_X, held_y, params, optuna_settings=ts.optuna,
                               max_trees=ts.lightgbm.max_trees, early_stopping_rounds=ts.lightgbm.early_stopping_rounds,
                               seed=ts.samples.seed, on_trial=record)
    with Progress(enabled=progress) as bar:
        task = bar.add("boosting (trees)", total=ts.lightgbm.max_trees)
        fitted = fit_booster(fit, held, held_X, held_y, params, max_trees=ts.lightgbm.max_trees,
                             early_stopping_rounds=ts.lightgbm.early_stopping_rounds,
                             on_iteration=lambda i: bar.advance(task))
    del fit, held
    clock["boosting"] = time.perf_counter() - started

    started = time.perf_counter()
    booster = fitted.booster
    threads = params.get("num_threads", 2)
    raw_calibration = booster_probability(booster, calibration.X, fitted.forest, threads)
    # A semester the calibration term lacks (one semester-1 term calibrating for a semester-2 test, where
    # dropout is several times likelier) is calibrated on the training terms' early-stopping students of
    # that semester, rows the booster never fitted on, as the class policy's fallback is.
    semester = train.meta["term"].str[-1].to_numpy()[scored_held]
    extra = ~np.isin(semester, calibration.meta["term"].str[-1].unique())
    fit_raw = np.concatenate([raw_calibration, fitted.held_raw[extra]])
    fit_y = np.concatenate([calibration.y, held_y[extra]])
    fit_keys = np.concatenate([calibration.meta["student_key"].to_numpy(), held_keys[take][extra]])
    halves = student_uniform(fit_keys, ts.samples.seed + 4) < 0.5
    choice = choose_calibrator(fit_raw, fit_y, halves, list(ts.calibration.methods),
                               weight=np.concatenate([calibration.weight, held_w[extra]]).astype(np.float64))
    p_calibration = choice.calibrator.transform(raw_calibration)
    unknown = [r.feature for r in ts.policy.rules if r.feature not in train.names]
    unknown += [ts.policy.thresholds_by] if ts.policy.thresholds_by not in (None, *train.names) else []
    if unknown:
        raise RiskError(f"the class policy names features the catalog does not have: {', '.join(unknown)}")
    grades = list(catalog.get(GRADE_FEATURE).categories or []) if GRADE_FEATURE in train.names else []
    wrong = [f"{r.id}: {r.min_grade}" for r in ts.policy.rules if r.min_grade and r.min_grade not in grades]
    if wrong:
        raise RiskError(f"configs/train.yaml policy.rules min_grade is not a {GRADE_FEATURE} category of the "
                        f"catalog ({', '.join(wrong)}; categories {', '.join(grades) or 'none'})")
    # Groups missing from the calibration term (a semester-1 term has no semester-2 rows) take their
    # thresholds from the early-stopping students of the training terms: rows the booster never fitted.
    held_weight = held_w.astype(np.float64)
    policy = choose_policy(p_calibration, calibration.y, calibration.X, calibration.names, ts.policy,
                           weight=calibration.weight.astype(np.float64),
                           students=calibration.meta["student_key"].to_numpy(), grade_levels=grades,
                           fallback=(choice.calibrator.transform(fitted.held_raw), held_y, held_X, held_weight,
                                     held_keys[take]))
    discrete = discrete_features(catalog, train.names)
    # The early-stopping students are a uniform sample of the training students, already
    # scored: the training profile is taken from them instead of scoring another sample.
    profile = training_profile(held_X.astype(np.float64), train.names, choice.calibrator.transform(fitted.held_raw),
                               sample_weight=held_weight, discrete=discrete)
    # Each held-out row is scored once (at 1,500 trees a prediction costs ~30 µs a row): the test
    # term's scores serve the drift profiles here and the evaluation below.
    p_test = choice.calibrator.transform(booster_probability(booster, test.X, fitted.forest, threads))
    # Does the policy keep its word on a term it never saw? Outcomes and misses are stored with it.
    test_students = test.meta["student_key"].to_numpy()
    check = held_out_check(policy, p_test, test.y, test.X, test.names, ts.policy,
                           weight=test.weight.astype(np.float64), students=test_students)
    apply_check(policy, check)
    for miss in policy.missed:
        log.warning("class target missed", target=miss.target, group=miss.group, where=miss.where,
                    wanted=miss.wanted, achieved=round(miss.achieved, 4))
    # The most recent terms (uniform samples, no down-sampling) are what a new term is compared with.
    drift_profiles = _drift_profiles([(calibration, p_calibration, _sample_mask(calibration, cap, ts.samples.seed + 7)),
                                      (test, p_test, _sample_mask(test, cap, ts.samples.seed + 8))], discrete)
    meta = {"features": train.names, "catalog_version": catalog.version, "num_threads": threads,
            "split": split.as_dict(), "inputs_hash": inputs, "code_version": code_version(),
            "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "best_iteration": fitted.best_iteration,
            "protected_inputs": ts.features.protected_inputs}
    bundle = ModelBundle(booster, choice.calibrator, policy, catalog, profile, meta, catalog_yaml, drift_profiles,
                         forest=fitted.forest)
    clock["calibration"] = time.perf_counter() - started

    started = time.perf_counter()
    scores, calibrated, champion_targets = _all_scores(bundle, p_test, train, calibration, test, catalog, ts, truth,
                                                       id_key, champion, test_rows)
    evaluation = evaluate(test, scores, bundle=bundle, catalog=catalog, settings=ts.evaluation, calibrated=calibrated)
    clock["evaluation"] = time.perf_counter() - started
    # Stored with the model: the scorer's report quotes how the model did on its held-out term.
    bundle.meta["evaluation"] = {k.removeprefix("test."): round(v, 4) for k, v in evaluation.headline.items()
                                 if k.startswith(("test.model.", "test.oracle.")) and "grade_" not in k}
    evaluation.headline.update({**class_metrics(policy.outcomes), **calibration_metrics(policy), **champion_targets,
                                **target_metrics(check.achieved, check.missed, "held_out", "test.model")})
    comparison = None
    if ts.features.compare_protected and protected_columns(catalog, train.names):
        started = time.perf_counter()
        held_rows = HeldRows(held_X, held_y, held_weight, held_keys[take], extra)
        comparison = compare_protected(
            train=train, calibration=calibration, test=test, held=held_rows, catalog=catalog, ts=ts, params=params,
            trees=fitted.best_iteration, method=choice.calibrator.method,
            main=setting_figures(test, p_test, policy, catalog, ts))
        evaluation.headline.update({f"protected.{setting}.{k}": float(v) for setting in ("with_protected",
                                    "without_protected") for k, v in comparison[setting].items()})
        clock["protected_comparison"] = time.perf_counter() - started
    sample = test.subset(student_uniform(test.meta["student_key"].to_numpy(), 99) <
                         ts.evaluation.shap_sample_rows / max(test.rows, 1))
    rows = {role: {"rows": s.rows, "positives": s.positives, "students": int(s.meta["student_key"].nunique()),
                   "unknown_outcome": int(sum(s.unknown.values()))}
            for role, s in (("train", train), ("calibration", calibration), ("test", test))}
    rows["calibration"]["added_other_semester"] = int(extra.sum())  # early-stopping rows, above
    example = pd.DataFrame(test.X[:5].astype(np.float64), columns=test.names)
    return TrainingResult(
        bundle=bundle, split=split, evaluation=evaluation, calibration=choice, rows=rows, params=params,
        best_iteration=fitted.best_iteration, inputs_hash=inputs,
        feature_points={"total": len(every_point), "reused": reused},
        shap_sample=(sample.X.astype(np.float64), booster.predict(sample.X, pred_contrib=True)),
        trials=trials, seconds={k: round(v, 2) for k, v in clock.items()},
        champion_version=champion[0] if champion else None, example=example, protected_comparison=comparison)


def _all_scores(bundle: ModelBundle, p_test: np.ndarray, train: Samples, calibration: Samples, test: Samples,
                catalog: Catalog,
                ts: TrainSettings, truth: Path | None, id_key: bytes | None,
                champion: tuple[str, ModelBundle] | None, test_rows: Callable[[Catalog], Samples]
                ) -> tuple[dict[str, np.ndarray], set[str], dict[str, float]]:
    """Every model's score on the test rows: the oracle first, then ours (``p_test``), the champion and the baselines,
    and the champion's class-policy targets on those rows (``test.champion.target.*``, for ``risk promote``).

    A champion trained with another catalog is scored on the same rows built with its own catalog.
    """
    scores: dict[str, np.ndarray] = {}
    targets: dict[str, float] = {}
    if truth is not None:
        scores["oracle"] = _oracle(truth, test, id_key)
    scores[MODEL] = p_test
    if champion is not None:
        version, old = champion
        old_X: np.ndarray | None = None
        if set(old.names) <= set(test.names):
            old_X = test.X[:, [test.names.index(n) for n in old.names]]
        else:
            own = test_rows(old.catalog)
            if np.array_equal(own.meta["student_key"].to_numpy(), test.meta["student_key"].to_numpy()):
                old_X = own.X
            else:
                log.warning("champion not comparable", version=version, reason="its rows differ")
        if old_X is not None:
            scores["champion"] = old.probability(old_X)
            kept = held_out_check(old.policy, scores["champion"], test.y, old_X, old.names, ts.policy,
                                  weight=test.weight.astype(np.float64), students=test.meta["student_key"].to_numpy())
            targets = target_metrics(kept.achieved, kept.missed, "held_out", "test.champion")
    logistic = logistic_baseline(train, catalog, max_rows=ts.evaluation.baseline_max_rows, seed=ts.samples.seed)
    scores["logistic"] = logistic.probability(test.X)
    if any(name in train.names for name in ts.evaluation.context_features):
        context = context_only_model(
            _sample(train, ts.evaluation.baseline_max_rows, ts.samples.seed + 3), calibration,
            ts.evaluation.context_features, ts.lightgbm.params,
            trees=min(max(bundle.meta["best_iteration"], 50), 300), catalog=catalog)
        scores["context_only"] = context.probability(test.X)
    scores["abc_rule"] = abc_rule_score(test, ts.evaluation.abc_attendance_below)
    return scores, {n for n in scores if n != "abc_rule"}, targets


def _sample(samples: Samples, max_rows: int, seed: int) -> Samples:
    """A uniform sample of students whose rows number about ``max_rows`` (all rows when fewer)."""
    mask = _sample_mask(samples, max_rows, seed)
    return samples if mask is None else samples.subset(mask)


def _sample_mask(samples: Samples, max_rows: int, seed: int) -> np.ndarray | None:
    """The rows of :func:`_sample` as a mask (None: all of them)."""
    if samples.rows <= max_rows:
        return None
    return student_uniform(samples.meta["student_key"].to_numpy(), seed) < max_rows / samples.rows


def _drift_profiles(roles: list[tuple[Samples, np.ndarray, np.ndarray | None]], discrete: list[str]) -> dict[str, Any]:
    """A profile per (semester, school week) sampled in ``roles`` ((samples, probability, rows)), keyed ``"semester:week"``."""
    profiles = {}
    for samples, probability, chosen in roles:
        semester = samples.meta["term"].str[-1].astype(int).to_numpy()
        week = samples.meta["school_week"].to_numpy()
        if chosen is None:
            chosen = np.ones(samples.rows, dtype=bool)
        for sem, wk in sorted(set(zip(semester[chosen].tolist(), week[chosen].tolist(), strict=True))):
            rows = chosen & (semester == sem) & (week == wk)
            profiles[f"{sem}:{wk}"] = training_profile(samples.X[rows].astype(np.float64), samples.names,
                                                       probability[rows],
                                                       sample_weight=samples.weight[rows].astype(np.float64),
                                                       discrete=discrete)
    return profiles


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
