"""The stages of training before its evaluation, each a function with a typed result.

samples (:func:`draw_samples` → :class:`TrainingSamples`) → fit (:func:`fit_model` →
:class:`FittedModel`) → calibrate (:func:`calibrate_model` → :class:`Calibrated`) →
policy (:func:`choose_class_policy` → :class:`PolicyChoice`) → the model package
(:func:`build_bundle` → :class:`ModelBundle`). :mod:`risk.models.train` orders them,
then evaluates and records the result.

Rows the booster never fitted on are reused rather than drawn again: the training
terms' early-stopping students (:class:`StoppingRows`) give the class policy its
fallback thresholds, the calibration a semester its term lacks, and the training
profile.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import lightgbm as lgb
import numpy as np

from risk.config import Settings
from risk.errors import RiskError
from risk.features.cache import DataFiles, feature_cache_path, inputs_hash
from risk.features.catalog import Catalog
from risk.logs import get_logger
from risk.models.booster import fit_booster, search_params, training_datasets
from risk.models.bundle import ModelBundle
from risk.models.calibrate import CalibrationChoice, Calibrator, choose_calibrator
from risk.models.forest import CompiledForest, booster_probability
from risk.models.policy import GRADE_FEATURE, ClassPolicy, choose_policy
from risk.models.profile import discrete_features, training_profile
from risk.models.promise import HeldOutCheck, apply_check, held_out_check
from risk.models.protected import hidden, protected_columns
from risk.models.samples import (
    Samples,
    build_samples,
    check_samples,
    outcome_connection,
    student_sample,
    student_uniform,
    term_labels,
)
from risk.models.settings import PolicySettings, TrainSettings
from risk.models.term_split import (
    SamplePoint,
    TermSplit,
    known_outcome_terms,
    sample_points,
    split_terms,
)
from risk.progress import Progress

__all__ = ["Calibrated", "FittedModel", "PolicyChoice", "StoppingRows", "TrainingSamples", "build_bundle",
           "calibrate_model", "choose_class_policy", "code_version", "draw_samples", "fit_model"]

log = get_logger(__name__)


# ---------------------------------------------------------------- samples


@dataclass(frozen=True)
class TrainingSamples:
    """The labelled rows of each role, and where they came from.

    ``test_rows(catalog)`` builds the test role's rows again with another catalog (a
    champion trained with other features is judged on the same students);
    ``feature_points`` counts the feature points used (``total``) and those found cached
    (``reused``); ``inputs_hash`` names the validated folder and settings.
    """

    split: TermSplit
    train: Samples
    calibration: Samples
    test: Samples
    inputs_hash: str
    feature_points: dict[str, int]
    test_rows: Callable[[Catalog], Samples]

    def roles(self) -> tuple[tuple[str, Samples], ...]:
        """(name, samples) of each role, in the names the model's record uses."""
        return (("train", self.train), ("calibration", self.calibration), ("test", self.test))


def draw_samples(validated: Path, *, settings: Settings, ts: TrainSettings, catalog: Catalog,
                 progress: bool) -> TrainingSamples:
    """The rows of each role: the split's terms at their points, a share of students held out of training.

    Raises TrainingDataError when a role has no rows or fewer than 10 dropouts.
    """
    con = outcome_connection(validated, settings)
    split = split_terms(known_outcome_terms(con), ts.split)
    labels = term_labels(con, split.terms, settings)
    points = _points(con, split, ts)
    files = DataFiles.scan(validated)
    every_point = [p.as_of for t in split.terms for p in points[t]]
    reused = sum(feature_cache_path(validated, day, settings=settings, catalog=catalog, inputs=files).exists()
                 for day in every_point)
    share, cap = ts.split.holdout_students, ts.samples.max_eval_students

    def rows(terms: list[str], with_catalog: Catalog, bar: Progress | None, task_name: str, **draw: Any) -> Samples:
        return build_samples(validated, [p for t in terms for p in points[t]], labels, settings=settings,
                             catalog=with_catalog, inputs=files, seed=ts.samples.seed, progress=bar,
                             task_name=task_name, **draw)

    def test_rows(with_catalog: Catalog) -> Samples:
        return rows(split.test, with_catalog, None, "test samples", max_students=cap, holdout=(share, True))

    with Progress(enabled=progress) as bar:
        train = rows(split.train, catalog, bar, "training samples", negative_share=ts.samples.negative_share,
                     holdout=(share, False))
        calibration = rows(split.calibration, catalog, bar, "calibration samples", max_students=cap,
                           holdout=(share, True))
        test = test_rows(catalog)
    for role, samples, terms in (("training", train, split.train), ("calibration", calibration, split.calibration),
                                 ("test", test, split.test)):
        check_samples(samples, role, terms)
    return TrainingSamples(split, train, calibration, test, inputs_hash(validated, settings),
                           {"total": len(every_point), "reused": reused}, test_rows)


def _points(con: duckdb.DuckDBPyConnection, split: TermSplit, ts: TrainSettings) -> dict[str, list[SamplePoint]]:
    """Each term's sample points; the first test term also at the lead-time week the evaluation reads."""
    weeks, last_day = ts.samples.weeks, ts.samples.last_school_day
    points = {t: sample_points(con, t, weeks, last_day) for t in split.terms}
    first_test = split.test[0]
    lead = sample_points(con, first_test, [ts.evaluation.lead_time_week], False)
    points[first_test] = sorted({p.as_of: p for p in points[first_test] + lead}.values(), key=lambda p: p.as_of)
    return points


# ---------------------------------------------------------------- fit


@dataclass(frozen=True)
class StoppingRows:
    """The training terms' early-stopping rows (never fitted on), a uniform sample of their students, scored.

    ``X`` float32 (n, f); ``y`` int8; ``weight`` float64 sampling weights; ``students``
    the rows' student keys; ``semester`` "1" or "2" (the term's last character);
    ``raw`` the booster's uncalibrated probability of each row.
    """

    X: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    students: np.ndarray
    semester: np.ndarray
    raw: np.ndarray


@dataclass(frozen=True)
class FittedModel:
    """The booster cut at its best iteration, the params it was fitted with and the Optuna trials."""

    booster: lgb.Booster
    forest: CompiledForest | None  # the trees compiled for large batches (None: LightGBM predicts)
    params: dict[str, Any]
    best_iteration: int
    trials: list[dict[str, Any]]
    held: StoppingRows

    @property
    def threads(self) -> int:
        return self.params.get("num_threads", 2)

    def raw_probability(self, X: np.ndarray) -> np.ndarray:
        """The booster's uncalibrated probability of each row of ``X`` (float32 (n, f) in feature order)."""
        return booster_probability(self.booster, X, self.forest, self.threads)


def fit_model(train: Samples, catalog: Catalog, ts: TrainSettings, *, progress: bool,
              on_trial: Callable[[int, dict[str, Any], float], None] | None = None,
              outcome_weight: np.ndarray | None = None) -> FittedModel:
    """LightGBM on the training rows, early-stopped on a share of their students; with ``optuna.trials``,
    the params are searched first (``on_trial(number, params, auc)`` after each trial).

    ``outcome_weight`` (one factor per training row, :meth:`risk.models.treated.TreatedRows.fit_weight`)
    multiplies the rows' sample weights in the booster's fit and early stopping only: the stopping
    rows handed on (calibration, policy, profile) keep their sampling weights.
    """
    params = {**ts.lightgbm.params}
    weighted = train if outcome_weight is None else dataclasses.replace(
        train, weight=(train.weight * outcome_weight).astype(np.float32))
    # features.protected_inputs false: the booster bins (and so can split on) no protected column.
    with hidden(train.X, [] if ts.features.protected_inputs else protected_columns(catalog, train.names)):
        fit, held, stop = training_datasets(weighted, catalog, ts.lightgbm, ts.split, ts.samples.seed)
    # After boosting, the early-stopping students are scored for the policy's fallback thresholds and
    # the training profile; a uniform sample of them is enough for both (medians, bins, thresholds),
    # and scoring all of them cost ~15 s at 1M students.
    keys = train.meta["student_key"].to_numpy()[stop]
    take = student_uniform(keys, ts.samples.seed + 6) < ts.evaluation.profile_max_rows / max(len(keys), 1)
    scored = np.flatnonzero(stop)[take]
    X, y = train.X[scored], train.y[scored]
    trials: list[dict[str, Any]] = []
    lgb_settings = ts.lightgbm
    if ts.optuna.trials > 0:
        def record(number: int, trial_params: dict[str, Any], auc: float) -> None:
            trials.append({"number": number, "params": trial_params, "stop_auc": auc})
            if on_trial is not None:
                on_trial(number, trial_params, auc)

        params = search_params(fit, held, X, y, params, optuna_settings=ts.optuna, max_trees=lgb_settings.max_trees,
                               early_stopping_rounds=lgb_settings.early_stopping_rounds, seed=ts.samples.seed,
                               on_trial=record)
    with Progress(enabled=progress) as bar:
        task = bar.add("boosting (trees)", total=lgb_settings.max_trees)
        fitted = fit_booster(fit, held, X, y, params, max_trees=lgb_settings.max_trees,
                             early_stopping_rounds=lgb_settings.early_stopping_rounds,
                             on_iteration=lambda i: bar.advance(task))
    rows = StoppingRows(X, y, train.weight[scored].astype(np.float64), keys[take],
                        train.meta["term"].str[-1].to_numpy()[scored], fitted.held_raw)
    return FittedModel(fitted.booster, fitted.forest, params, fitted.best_iteration, trials, rows)


# ---------------------------------------------------------------- calibrate


@dataclass(frozen=True)
class Calibrated:
    """The chosen calibration and the calibrated probability of every row scored so far.

    ``extra``: the early-stopping rows (of :class:`StoppingRows`) added to the calibration
    fit, those of a semester the calibration term lacks.
    """

    choice: CalibrationChoice
    extra: np.ndarray
    p_calibration: np.ndarray
    p_held: np.ndarray
    p_test: np.ndarray

    @property
    def calibrator(self) -> Calibrator:
        return self.choice.calibrator


def calibrate_model(samples: TrainingSamples, fitted: FittedModel, ts: TrainSettings) -> Calibrated:
    """The better of ``calibration.methods`` (Brier on one half of the students, fitted on the other), fitted on
    the calibration term's rows and the early-stopping rows of a semester it lacks."""
    calibration, held = samples.calibration, fitted.held
    raw_calibration = fitted.raw_probability(calibration.X)
    # A semester the calibration term lacks (one semester-1 term calibrating for a semester-2 test, where
    # dropout is several times likelier) is calibrated on the training terms' early-stopping students of
    # that semester, rows the booster never fitted on, as the class policy's fallback is.
    extra = ~np.isin(held.semester, calibration.meta["term"].str[-1].unique())
    fit_keys = np.concatenate([calibration.meta["student_key"].to_numpy(), held.students[extra]])
    halves = student_uniform(fit_keys, ts.samples.seed + 4) < 0.5
    choice = choose_calibrator(np.concatenate([raw_calibration, held.raw[extra]]),
                               np.concatenate([calibration.y, held.y[extra]]), halves, list(ts.calibration.methods),
                               weight=np.concatenate([calibration.weight, held.weight[extra]]).astype(np.float64))
    # Each held-out row is scored once (at 1,500 trees a prediction costs ~30 µs a row): the test
    # term's scores serve the policy's check, the drift profiles and the evaluation.
    p_test = choice.calibrator.transform(fitted.raw_probability(samples.test.X))
    return Calibrated(choice, extra, choice.calibrator.transform(raw_calibration),
                      choice.calibrator.transform(held.raw), p_test)


# ---------------------------------------------------------------- policy


@dataclass(frozen=True)
class PolicyChoice:
    """The class policy (thresholds, and how it did on the held-out term written into it) and that check."""

    policy: ClassPolicy
    check: HeldOutCheck


def choose_class_policy(samples: TrainingSamples, fitted: FittedModel, calibrated: Calibrated, catalog: Catalog,
                        ts: TrainSettings) -> PolicyChoice:
    """Thresholds from the policy's targets on the calibration rows, checked on the test term.

    Raises RiskError when ``policy`` names a feature or grade the catalog lacks.
    """
    calibration, test, held = samples.calibration, samples.test, fitted.held
    grades = _policy_grades(ts.policy, calibration.names, catalog)
    # Groups missing from the calibration term (a semester-1 term has no semester-2 rows) take their
    # thresholds from the early-stopping students of the training terms: rows the booster never fitted.
    policy = choose_policy(calibrated.p_calibration, calibration.y, calibration.X, calibration.names, ts.policy,
                           weight=calibration.weight.astype(np.float64),
                           students=calibration.meta["student_key"].to_numpy(), grade_levels=grades,
                           fallback=(calibrated.p_held, held.y, held.X, held.weight, held.students))
    # Does the policy keep its word on a term it never saw? Outcomes and misses are stored with it.
    check = held_out_check(policy, calibrated.p_test, test.y, test.X, test.names, ts.policy,
                           weight=test.weight.astype(np.float64), students=test.meta["student_key"].to_numpy())
    apply_check(policy, check)
    for miss in policy.missed:
        log.warning("class target missed", target=miss.target, group=miss.group, where=miss.where,
                    wanted=miss.wanted, achieved=round(miss.achieved, 4))
    return PolicyChoice(policy, check)


def _policy_grades(policy: PolicySettings, names: list[str], catalog: Catalog) -> list[str]:
    """The grade levels the policy's rules may name; RiskError when a rule names what the catalog lacks."""
    unknown = [r.feature for r in policy.rules if r.feature not in names]
    unknown += [policy.thresholds_by] if policy.thresholds_by not in (None, *names) else []
    if unknown:
        raise RiskError(f"the class policy names features the catalog does not have: {', '.join(unknown)}")
    grades = list(catalog.get(GRADE_FEATURE).categories or []) if GRADE_FEATURE in names else []
    wrong = [f"{r.id}: {r.min_grade}" for r in policy.rules if r.min_grade and r.min_grade not in grades]
    if wrong:
        raise RiskError(f"configs/train.yaml policy.rules min_grade is not a {GRADE_FEATURE} category of the "
                        f"catalog ({', '.join(wrong)}; categories {', '.join(grades) or 'none'})")
    return grades


# ---------------------------------------------------------------- the model package


def build_bundle(samples: TrainingSamples, fitted: FittedModel, calibrated: Calibrated, choice: PolicyChoice,
                 catalog: Catalog, catalog_yaml: bytes, ts: TrainSettings) -> ModelBundle:
    """The model package: booster, calibrator, policy, the training profile and the drift profiles, and meta."""
    train, held = samples.train, fitted.held
    discrete = discrete_features(catalog, train.names)
    # The early-stopping students are a uniform sample of the training students, already
    # scored: the training profile is taken from them instead of scoring another sample.
    profile = training_profile(held.X.astype(np.float64), train.names, calibrated.p_held,
                               sample_weight=held.weight, discrete=discrete)
    # The most recent terms (uniform samples, no down-sampling) are what a new term is compared with.
    cap, seed = ts.evaluation.profile_max_rows, ts.samples.seed
    drift_profiles = _drift_profiles(
        [(samples.calibration, calibrated.p_calibration, student_sample(samples.calibration, cap, seed + 7)),
         (samples.test, calibrated.p_test, student_sample(samples.test, cap, seed + 8))], discrete)
    meta = {"features": train.names, "catalog_version": catalog.version, "num_threads": fitted.threads,
            "split": samples.split.as_dict(), "inputs_hash": samples.inputs_hash, "code_version": code_version(),
            "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "best_iteration": fitted.best_iteration, "protected_inputs": ts.features.protected_inputs}
    return ModelBundle(fitted.booster, calibrated.calibrator, choice.policy, catalog, profile, meta, catalog_yaml,
                       drift_profiles, forest=fitted.forest)


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
