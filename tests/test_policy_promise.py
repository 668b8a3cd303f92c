"""``risk promote`` and the class policy's word: a real MLflow registry (SQLite in a temporary folder).

The runs are logged as ``risk train`` logs them (the metrics of :mod:`risk.models.promise`)
without training a booster: what is judged here is the registry's decision.
"""

from __future__ import annotations

import os

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from risk.models.policy import choose_thresholds
from risk.models.promise import apply_check, calibration_metrics, held_out_check, target_metrics
from risk.models.promotion import promote
from risk.models.settings import PolicySettings, PromotionSettings
from risk.models.tracking import configure_tracking

NAME = "dropout-risk-promise"
TARGETS = PolicySettings(problem_precision=0.5, at_risk_capacity_share=0.15)
SAME_QUALITY = {"test.model.roc_auc": 0.8, "test.model.ece": 0.01, "test.model.recall_top10": 0.5}


def population(n: int, truth: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (beta around 0.15) and outcomes drawn from ``truth`` times them (1: calibrated)."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.5, 0.5 / 0.15 - 0.5, n)
    return p, (rng.random(n) < truth * p).astype(np.int8)


def policy_record(held_out_truth: float, prefix: str) -> tuple[dict[str, float], list]:
    """The metrics a training run logs for a policy set on a calibrated term and checked on a held-out
    term where the true risk is ``held_out_truth`` times the predicted one."""
    p, y = population(20_000, 1.0, 1)
    policy = choose_thresholds(p, y, TARGETS)
    q, z = population(20_000, held_out_truth, 2)
    check = held_out_check(policy, q, z, np.zeros((len(q), 1)), ["x"], TARGETS)
    return {**calibration_metrics(policy), **target_metrics(check.achieved, check.missed, "held_out", prefix)}, \
        policy.missed + check.missed


def register(client: MlflowClient, metrics: dict[str, float], tags: dict[str, str]) -> str:
    with mlflow.start_run() as run:
        mlflow.log_metrics(metrics)
        mlflow.set_tags(tags)
    return str(client.create_model_version(NAME, f"{run.info.artifact_uri}/model", run.info.run_id).version)


@pytest.fixture
def registry(tmp_path):
    """A registry of its own; this process's MLflow points back where it was afterwards (session fixtures share it)."""
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    configure_tracking(tmp_path)
    mlflow.set_experiment("promise")
    client = MlflowClient()
    client.create_registered_model(NAME)
    yield client
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


def test_a_policy_that_misses_its_target_is_flagged_and_refused_against_a_champion_that_met_it(registry):
    kept, kept_missed = policy_record(1.0, "test.model")
    assert kept_missed == []
    champion = register(registry, {**SAME_QUALITY, **kept}, {"evaluated_champion_version": ""})
    registry.set_registered_model_alias(NAME, "champion", champion)
    # The challenger's threshold was set where half the top dropped out; on the held-out term (the same
    # term the champion was scored on) its probabilities are ten times too high and the class is not half.
    missed, challenger_missed = policy_record(0.1, "test.model")
    assert [(m.target, m.where) for m in challenger_missed] == [("problem_precision", "held_out")]
    champion_there = {k.replace("test.model.", "test.champion."): v for k, v in kept.items() if k.startswith("test.")}
    champion_there.update({k.replace("test.model.", "test.champion."): v for k, v in SAME_QUALITY.items()})
    challenger = register(registry, {**SAME_QUALITY, **champion_there, **missed},
                          {"evaluated_champion_version": champion})
    registry.set_registered_model_alias(NAME, "challenger", challenger)
    decision = promote(NAME, PromotionSettings())
    assert not decision.promoted
    refusals = [r for r in decision.reasons if r.startswith("REFUSED")]
    assert len(refusals) == 1 and "problem_precision" in refusals[0] and "held-out" in refusals[0]
    assert str(registry.get_model_version_by_alias(NAME, "champion").version) == champion


def test_a_challenger_as_good_as_the_champion_and_keeping_its_word_is_promoted(registry):
    kept, _ = policy_record(1.0, "test.model")
    champion = register(registry, {**SAME_QUALITY, **kept}, {"evaluated_champion_version": ""})
    registry.set_registered_model_alias(NAME, "champion", champion)
    champion_there = {k.replace("test.model.", "test.champion."): v for k, v in {**kept, **SAME_QUALITY}.items()
                      if k.startswith("test.")}
    challenger = register(registry, {**SAME_QUALITY, **champion_there, **kept},
                          {"evaluated_champion_version": champion})
    registry.set_registered_model_alias(NAME, "challenger", challenger)
    decision = promote(NAME, PromotionSettings())
    assert decision.promoted, decision.reasons


def test_risk_train_prints_each_miss_and_its_fallback_in_colour():
    from risk.cli.models import policy_lines

    p, y = population(20_000, 1.0, 1)
    policy = choose_thresholds(p, y, TARGETS)
    q, z = population(20_000, 0.1, 2)
    check = held_out_check(policy, q, z, np.zeros((len(q), 1)), ["x"], TARGETS)
    apply_check(policy, check)
    lines = policy_lines(policy)
    missed = [line for line in lines if "MISSED" in line]
    assert len(missed) == 1 and missed[0].lstrip().startswith("[red]MISSED problem_precision on the held-out term")
    assert "calibration threshold" in missed[0]
    assert any(line.startswith("classes on the held-out term: normal") for line in lines)
