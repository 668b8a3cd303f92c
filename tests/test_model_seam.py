"""The model seam (risk.models.protocol): a second model type goes through evaluation and the scorer's reasons
with no change to them, and the trained bundle and the baselines are models of the same protocol."""

from __future__ import annotations

import ast
import dataclasses
import math
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from risk.features.catalog import Catalog, load_catalog
from risk.models.baselines import abc_rule_score, context_only_model, logistic_baseline
from risk.models.booster import LightGBMModel
from risk.models.bundle import ARTIFACTS, ModelBundle, ModelPackageError
from risk.models.calibrate import Calibrator, fit_calibrator
from risk.models.evaluate import MODEL, evaluate, model_scores
from risk.models.policy import ClassPolicy
from risk.models.profile import training_profile
from risk.models.protocol import ContributionsUnavailable, ModelError, RiskModel
from risk.models.samples import Samples
from risk.models.settings import EvaluationSettings
from risk.scoring.explained import explained_scores
from risk.scoring.settings import ReasonSettings

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["att_rate_term", "gpa_last_term", "flag_substance", "income_per_capita_baht", "grade_level", "sex",
         "school_past_dropout_rate"]
GRADE_P4 = 6.0  # grade_level category index of P4 (K1 K2 K3 P1 P2 P3 P4)


class GlmModel:
    """A logistic-regression GLM written only against the protocol: the second model type.

    Missing values take the training mean, so a missing value contributes nothing.
    Contributions are exact: ``coef * (x - mean)`` per feature, then the log-odds at the mean.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, names: list[str]) -> None:
        self.feature_names = list(names)
        self.mean_ = np.nanmean(X, axis=0)
        scale = np.nanstd(X, axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        fitted = LogisticRegression(max_iter=1000).fit(self._standard(X), y)
        self.coef_ = fitted.coef_[0] / self.scale_  # per unit of each feature
        self.intercept_ = float(fitted.intercept_[0] - self.coef_ @ self.mean_)

    def _standard(self, X: np.ndarray) -> np.ndarray:
        return (np.where(np.isnan(X), self.mean_, X) - self.mean_) / self.scale_

    def log_odds(self, X: np.ndarray) -> np.ndarray:
        return self.intercept_ + np.where(np.isnan(X), self.mean_, X) @ self.coef_

    def probability(self, X: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.log_odds(X)))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        out = np.empty((len(X), len(self.feature_names) + 1))
        out[:, :-1] = self._standard(X) * self.scale_ * self.coef_
        out[:, -1] = self.intercept_ + self.coef_ @ self.mean_
        return out


class RankOnly:
    """A model with a probability and no contributions (as a baseline may be)."""

    feature_names = NAMES

    def probability(self, X: np.ndarray) -> np.ndarray:
        return np.clip(1.0 - X[:, 0], 0.0, 1.0)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        raise ContributionsUnavailable("a rank-only model has no per-feature contributions")


def students(n: int, seed: int) -> Samples:
    """Labelled rows whose risk rises as attendance, grades and income fall, with substance use and the
    school's past rate; sex has no effect; 5% of incomes are missing."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([
        rng.beta(12, 1.5, n),                       # att_rate_term, share
        rng.uniform(0, 4, n).round(1),              # gpa_last_term
        (rng.random(n) < 0.1).astype(float),        # flag_substance
        rng.lognormal(7.5, 0.6, n).round(),         # income_per_capita_baht
        rng.integers(3, 15, n).astype(float),       # grade_level, P1..M6
        rng.integers(0, 2, n).astype(float),        # sex
        rng.uniform(0, 0.08, n),                    # school_past_dropout_rate
    ])
    logit = (-2 - 12 * (X[:, 0] - 0.88) - 0.8 * (X[:, 1] - 2) + 1.5 * X[:, 2] - 0.0004 * (X[:, 3] - 1800)
             + 20 * (X[:, 6] - 0.04))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    X[rng.random(n) < 0.05, 3] = np.nan
    meta = pd.DataFrame({"student_key": np.arange(n, dtype=np.int64) + seed * n, "term": "2568-2",
                         "as_of": pd.Timestamp("2026-01-05"), "point": np.where(np.arange(n) % 2, "week 4", "week 6"),
                         "school_week": 4, "school_id": "S1"})
    return Samples(X.astype(np.float32), y, np.ones(n, dtype=np.float32), meta, list(NAMES))


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(ROOT / "configs" / "features.yaml")


@pytest.fixture(scope="module")
def data() -> tuple[Samples, Samples]:
    return students(4_000, seed=1), students(3_000, seed=2)


@pytest.fixture(scope="module")
def glm(data) -> GlmModel:
    train, _ = data
    return GlmModel(train.X.astype(np.float64), train.y, NAMES)


def bundle_of(model: RiskModel, train: Samples, catalog: Catalog) -> ModelBundle:
    X = train.X.astype(np.float64)
    profile = training_profile(X, NAMES, model.probability(X))
    return ModelBundle.of(model, policy=ClassPolicy(problem_threshold=0.5, at_risk_threshold=0.2), catalog=catalog,
                          profile=profile)


@pytest.fixture(scope="module")
def lightgbm_bundle(data, catalog) -> ModelBundle:
    """A small booster and its Platt calibrator, put together as training does."""
    train, test = data
    params = {"objective": "binary", "num_leaves": 8, "learning_rate": 0.1, "min_data_in_leaf": 20,
              "verbose": -1, "seed": 1, "deterministic": True, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(train.X, train.y, feature_name=NAMES), num_boost_round=40)
    calibrator = fit_calibrator("platt", booster.predict(test.X), test.y)
    X = train.X.astype(np.float64)
    profile = training_profile(X, NAMES, calibrator.transform(booster.predict(X)))
    return ModelBundle(booster, calibrator, ClassPolicy(problem_threshold=0.5, at_risk_threshold=0.2), catalog,
                       profile, {"features": NAMES, "num_threads": 1})


# ---------------------------------------------------------------- who is a RiskModel
def test_the_trained_bundle_and_its_lightgbm_model_are_risk_models(lightgbm_bundle):
    assert isinstance(lightgbm_bundle, RiskModel)
    assert isinstance(lightgbm_bundle.model, LightGBMModel) and isinstance(lightgbm_bundle.model, RiskModel)
    assert lightgbm_bundle.feature_names == lightgbm_bundle.model.feature_names == NAMES


def test_the_logistic_and_context_baselines_are_risk_models_and_the_abc_rule_is_a_score(data, catalog):
    train, test = data
    logistic = logistic_baseline(train, catalog, max_rows=10_000, seed=1)
    context = context_only_model(train, test, ["grade_level", "school_past_dropout_rate"], {"num_leaves": 7,
                                 "objective": "binary", "num_threads": 1}, trees=20, catalog=catalog)
    assert isinstance(logistic, RiskModel) and isinstance(context, RiskModel)
    assert logistic.feature_names == context.feature_names == NAMES
    assert not isinstance(abc_rule_score, RiskModel)  # a count of flags ranks; it is not a probability


def test_an_object_without_contributions_is_not_a_risk_model():
    class ProbabilityOnly:
        feature_names = NAMES

        def probability(self, X):
            return X[:, 0]

    assert not isinstance(ProbabilityOnly(), RiskModel)
    with pytest.raises(TypeError, match="ProbabilityOnly is not a RiskModel"):
        ModelBundle.of(ProbabilityOnly(), policy=None, catalog=None, profile=None)


# ---------------------------------------------------------------- the contract: shapes and exact sums
def test_the_glms_contributions_add_up_to_its_log_odds_missing_values_included(glm, data):
    _, test = data
    X = test.X.astype(np.float64)
    contributions = glm.contributions(X)
    assert contributions.shape == (len(X), len(NAMES) + 1)
    np.testing.assert_allclose(contributions.sum(axis=1), glm.log_odds(X), rtol=0, atol=1e-9)
    assert (contributions[np.isnan(X[:, 3]), 3] == 0).all()  # a missing income contributes nothing


def test_the_logistic_baselines_contributions_add_up_to_its_log_odds(data, catalog):
    train, test = data
    logistic = logistic_baseline(train, catalog, max_rows=10_000, seed=1)
    X = test.X.astype(np.float64)
    contributions = logistic.contributions(X)
    log_odds = logistic.pipeline.decision_function(X)
    assert contributions.shape == (len(X), len(NAMES) + 1)
    np.testing.assert_allclose(contributions.sum(axis=1), log_odds, rtol=0, atol=1e-9)
    # Each column the pipeline makes belongs to one feature: income made missing (its indicator set) and sex
    # (one-hot) flipped move those two contributions and no other.
    moved = X.copy()
    moved[:, 3] = np.nan
    moved[:, 5] = 1.0 - moved[:, 5]
    changed = np.abs(logistic.contributions(moved) - contributions)[:, :-1].max(axis=0) > 1e-12
    assert np.flatnonzero(changed).tolist() == [3, 5]
    # The expected value is the mean log-odds of the rows it was fitted on (all of them here, weight 1): there,
    # contributions average 0, to the float32 precision of the training matrix.
    fitted = logistic.contributions(train.X.astype(np.float64))
    np.testing.assert_allclose(fitted[:, :-1].mean(axis=0), 0.0, atol=1e-6)


def test_the_context_baselines_contributions_are_its_treeshap_on_its_columns_and_zero_elsewhere(data, catalog):
    train, test = data
    context = context_only_model(train, test, ["grade_level", "school_past_dropout_rate"], {"num_leaves": 7,
                                 "objective": "binary", "num_threads": 1}, trees=20, catalog=catalog)
    X = test.X.astype(np.float64)
    contributions = context.contributions(X)
    raw = context.model.booster.predict(X[:, context.columns], raw_score=True)
    np.testing.assert_allclose(contributions.sum(axis=1), raw, rtol=0, atol=1e-12)
    others = [j for j in range(len(NAMES)) if j not in context.columns]
    assert (contributions[:, others] == 0).all()


def test_the_bundle_scores_and_explains_as_its_lightgbm_model_does(lightgbm_bundle, data):
    _, test = data
    X = test.X.astype(np.float64)
    booster = lightgbm_bundle.booster
    for rows in (1, 300, len(X)):  # pred_contrib for a few rows, the forest's tables for a batch
        expected = lightgbm_bundle.calibrator.transform(booster.predict(X[:rows]))
        assert np.array_equal(lightgbm_bundle.probability(X[:rows]), expected)
        np.testing.assert_allclose(lightgbm_bundle.contributions(X[:rows]),
                                   booster.predict(X[:rows], pred_contrib=True), rtol=0, atol=1e-12)


# ---------------------------------------------------------------- a GLM through evaluation and reasons
def test_a_glm_goes_through_evaluation_beside_the_baselines(glm, data, catalog):
    train, test = data
    logistic = logistic_baseline(train, catalog, max_rows=10_000, seed=1)
    scores = model_scores({MODEL: glm, "logistic": logistic}, test.X.astype(np.float64), test.names)
    scores["abc_rule"] = abc_rule_score(test, 0.9)
    settings = EvaluationSettings(fairness_groups=["sex"], fairness_min_rows=30, lead_time_week=4)
    evaluation = evaluate(test, scores, bundle=bundle_of(glm, train, catalog), catalog=catalog, settings=settings,
                          calibrated={MODEL, "logistic"})
    assert evaluation.metric(MODEL, "roc_auc") > 0.75  # the synthetic risk is a logistic one: a GLM learns it
    assert abs(evaluation.metric(MODEL, "roc_auc") - evaluation.metric("logistic", "roc_auc")) < 0.02
    assert math.isnan(evaluation.metric("abc_rule", "brier"))
    assert set(evaluation.fairness["group"]) == {"male", "female"}
    assert evaluation.class_counts["students"].sum() == test.rows


def test_a_glms_reasons_come_from_the_batch_scorers_own_function(glm, data, catalog):
    train, _ = data
    bundle = bundle_of(glm, train, catalog)
    child = np.array([[0.55, 2.0, 0.0, 1800.0, GRADE_P4, 1.0, 0.04],    # rarely comes
                      [0.99, 3.8, 0.0, 9000.0, GRADE_P4, 0.0, 0.01]])  # comes, does well
    scored = explained_scores(bundle, child, ReasonSettings(top=3))
    assert scored["risk_class"].tolist()[0] in ("at_risk", "problem") and scored["risk_class"][1] == "normal"
    assert scored["reason_codes"][0].startswith('["att_rate_term"')
    assert scored["reason_codes"][1] == "[]"
    assert "sex" not in scored["reason_codes"][0]  # protected: never a reason, whatever the model
    assert scored["probability"].tolist() == glm.probability(child).tolist()


def test_a_model_without_contributions_is_evaluated_but_cannot_give_reasons(data, catalog):
    train, test = data
    model = RankOnly()
    scores = model_scores({MODEL: model}, test.X.astype(np.float64), test.names)
    assert scores[MODEL].shape == (test.rows,)
    bundle = bundle_of(model, train, catalog)
    with pytest.raises(ContributionsUnavailable):
        explained_scores(bundle, np.array([[0.3, 2.0, 0.0, 1800.0, GRADE_P4, 1.0, 0.04]]), ReasonSettings())


def test_model_scores_gives_a_model_its_own_columns_by_name(glm, data):
    _, test = data
    X = test.X.astype(np.float64)
    order = [4, 0, 6, 1, 2, 3, 5]
    reordered = X[:, order]
    scores = model_scores({"champion": glm}, reordered, [NAMES[j] for j in order])
    np.testing.assert_allclose(scores["champion"], glm.probability(X), rtol=1e-12)  # BLAS may round another way
    with pytest.raises(ModelError, match="reads features the rows lack: sex"):
        model_scores({"champion": glm}, X[:, :5], NAMES[:5])


# ---------------------------------------------------------------- the package keeps its format
def test_a_lightgbm_bundle_saves_and_loads_the_same_files_and_scores(lightgbm_bundle, data, tmp_path):
    _, test = data
    lightgbm_bundle.catalog_yaml = (ROOT / "configs" / "features.yaml").read_bytes()
    paths = lightgbm_bundle.save(tmp_path / "package")
    assert sorted(p.name for p in (tmp_path / "package").iterdir()) == sorted(ARTIFACTS.values())
    assert paths["booster"].read_text().startswith("tree")
    loaded = ModelBundle.load(tmp_path / "package")
    X = test.X.astype(np.float64)
    assert isinstance(loaded.model, LightGBMModel)
    assert np.array_equal(loaded.probability(X), lightgbm_bundle.probability(X))


def test_a_bundle_replaced_with_another_policy_keeps_its_model_and_with_another_calibrator_uses_it(
        lightgbm_bundle, data):
    _, test = data
    X = test.X[:10].astype(np.float64)
    stricter = dataclasses.replace(lightgbm_bundle, policy=ClassPolicy(problem_threshold=0.9, at_risk_threshold=0.5))
    assert stricter.model is lightgbm_bundle.model
    flat = dataclasses.replace(lightgbm_bundle, calibrator=Calibrator(method="platt", a=0.0, b=0.0))
    assert (flat.probability(X) == 0.5).all()  # a Platt curve with slope 0 and intercept 0 says 0.5 to everyone


def test_a_bundle_around_a_glm_has_no_package_to_save(glm, data, catalog, tmp_path):
    train, _ = data
    with pytest.raises(ModelPackageError, match="GlmModel has no model package"):
        bundle_of(glm, train, catalog).save(tmp_path / "package")


# ---------------------------------------------------------------- the layers that use the seam name no library
@pytest.mark.parametrize("module", ["risk/models/evaluate.py", "risk/models/fairness.py", "risk/models/metrics.py",
                                    "risk/models/explain.py", "risk/models/protocol.py", "risk/models/bundle.py",
                                    "risk/scoring/batch.py", "risk/scoring/explained.py", "risk/serve/scorer.py",
                                    "risk/serve/model_holder.py"])
def test_evaluation_scoring_and_serving_do_not_import_lightgbm(module):
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {name for name in imported if name.split(".")[0] == "lightgbm"}
    assert "lgb." not in (ROOT / module).read_text(encoding="utf-8")


def test_drift_watches_the_lightgbm_models_important_features_and_every_feature_of_a_model_without_a_ranking(
        glm, data, catalog, lightgbm_bundle):
    from risk.scoring.drift_reference import ringing_features
    from risk.scoring.settings import DriftSettings

    drift = DriftSettings(min_importance=0.05, left_out=[])
    shares = lightgbm_bundle.importance_shares()
    assert shares is not None and np.isclose(shares.sum(), 1.0)
    important = [n for n, s in zip(lightgbm_bundle.names, shares, strict=True) if s >= 0.05]
    assert ringing_features(lightgbm_bundle, drift) == important
    assert 0 < len(important) < len(lightgbm_bundle.names)
    around_glm = bundle_of(glm, data[0], catalog)
    assert around_glm.importance_shares() is None
    assert ringing_features(around_glm, drift) == around_glm.names
