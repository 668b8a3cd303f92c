"""Training, the MLflow record and the registry, on a small synthetic world (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import WORLD_KEY, small_train_settings
from mlflow.tracking import MlflowClient

from risk.config import load_settings
from risk.features.cache import DataFiles, feature_cache_path
from risk.features.catalog import load_catalog
from risk.models.promotion import promote
from risk.models.samples import build_samples, outcome_connection, term_labels
from risk.models.term_split import sample_points
from risk.models.tracking import champion_bundle, configure_tracking, log_training
from risk.models.train import train_model

CATALOG = Path(__file__).resolve().parent.parent / "configs" / "features.yaml"
NAME = "dropout-risk"


def fit(world: Path, catalog_path: Path = CATALOG, **changes):
    settings = small_train_settings(**changes)
    champion = champion_bundle(NAME)
    result = train_model(world / "validated", settings=load_settings(), train_settings=settings,
                         catalog=load_catalog(catalog_path), catalog_yaml=catalog_path.read_bytes(),
                         truth=world / "source" / "truth.parquet", id_key=WORLD_KEY, champion=champion,
                         progress=False)
    return result, settings


def term_points(world: Path, term: str, weeks: list[int]):
    """(settings, validated folder, labels of ``term``, its sample points at ``weeks``) for build_samples."""
    settings, validated = load_settings(), world / "validated"
    con = outcome_connection(validated, settings)
    return settings, validated, term_labels(con, [term], settings), sample_points(con, term, weeks, False)


def log(result, settings, home: Path):
    return log_training(result, data_dir=home, experiment="dropout-risk", model_name=NAME,
                        settings_dump=settings.model_dump(mode="json"))


@pytest.fixture(scope="module")
def first(champion_store, tmp_path_factory):
    """The first model of a fresh registry (SQLite store in a temporary folder), promoted to champion.

    The model is the session's (conftest's ``champion_store``): trained on the world with the same settings
    and no champion, as a first training here would be, so it is logged here rather than trained again.
    """
    _, _, result, _ = champion_store
    home = tmp_path_factory.mktemp("mlflow")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    configure_tracking(home)
    settings = small_train_settings()
    registered = log(result, settings, home)
    decision = promote(NAME, settings.promotion)
    return home, result, registered, decision


# The tests that train again check what a training records, not how good its model is: they boost few
# trees, fit the baselines on fewer rows and skip the comparison without protected inputs (a second booster).
QUICK = {"lightgbm__max_trees": 40, "evaluation__baseline_max_rows": 2_000, "features__compare_protected": False}


def test_the_class_policy_has_thresholds_for_each_semester_and_they_differ(first):
    # The world's calibration term has one semester; the other's thresholds come from the
    # training terms' early-stopping students. Year-end dropout is likelier, so its bar is higher.
    _, result, _, _ = first
    policy = result.bundle.policy
    assert policy.thresholds_by == "year_end_term" and set(policy.groups) == {"0", "1"}
    assert policy.groups["1"].at_risk_threshold > policy.groups["0"].at_risk_threshold


def test_terms_split_in_time_and_no_student_is_in_training_and_test(first):
    _, result, _, _ = first
    split = result.split
    assert max(split.train) < min(split.calibration) <= max(split.calibration) < min(split.test)
    assert result.rows["train"]["positives"] > 0 and result.rows["test"]["positives"] > 0


def test_first_model_becomes_champion(first):
    _, _, registered, decision = first
    assert decision.promoted and decision.champion_before is None
    assert str(MlflowClient().get_model_version_by_alias(NAME, "champion").version) == registered["version"]


def test_registered_champion_gives_the_training_probabilities(first, world):
    _, result, _, _ = first
    frame = result.example
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    served = model.predict(frame)
    np.testing.assert_array_equal(served["probability"].to_numpy(), result.bundle.probability(frame.to_numpy()))
    assert set(served["risk_class"]) <= {"normal", "at_risk", "problem"}


def test_run_records_window_hashes_metrics_and_artifacts(first):
    _, result, registered, _ = first
    run = MlflowClient().get_run(registered["run_id"])
    assert run.data.tags["inputs_hash"] == result.inputs_hash
    assert run.data.tags["catalog_version"].startswith("dropout-features-")
    assert run.data.tags["code_version"]
    assert "2" in run.data.params["test_terms"]
    # Trained without a store: no row counts as helped, and the record says which choice stood.
    assert run.data.params["treated_outcomes"] == "keep" and result.treated["source"] == "none"
    assert run.data.metrics["train.rows_treated"] == 0 == run.data.metrics["train.rows_acted"]
    assert run.data.metrics["train.rows"] == result.rows["train"]["rows"]
    for metric in ("test.model.roc_auc", "test.oracle.roc_auc", "test.logistic.roc_auc", "test.abc_rule.roc_auc",
                   "test.context_only.roc_auc", "test.model.ece", "test.model.lead_week6.recall_top10"):
        assert metric in run.data.metrics, metric
    artifacts = {a.path for a in MlflowClient().list_artifacts(registered["run_id"], "evaluation")}
    for name in ("evaluation.csv", "fairness.csv", "calibration.png", "shap_summary.png", "model_card.html"):
        assert f"evaluation/{name}" in artifacts


def test_model_ranks_far_better_than_the_abc_rule(first):
    # At this size (2,500 students) context alone is as good as the model; the comparison
    # with context-only and logistic baselines is made at scale (bench/bench_train.py).
    _, result, _, _ = first
    auc = {m: result.evaluation.metric(m, "roc_auc") for m in ("model", "abc_rule", "oracle")}
    assert auc["model"] > auc["abc_rule"] + 0.1
    assert 0.85 * auc["oracle"] < auc["model"] <= auc["oracle"] + 0.05


def test_past_feature_points_are_reused_by_the_next_training(first, world):
    result, _ = fit(world, **QUICK)
    assert result.feature_points["reused"] == result.feature_points["total"]


def test_a_worse_model_is_refused_with_its_reason(first, world, tmp_path):
    home, _, _, _ = first
    data = yaml.safe_load(CATALOG.read_text(encoding="utf-8"))
    keep = {"att_rate_term", "grade_level", "transition_year", "year_end_term", "school_size", "region"}
    data["features"] = [f for f in data["features"] if f["name"] in keep]
    few = tmp_path / "few.yaml"
    few.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    result, settings = fit(world, few, **QUICK)
    assert "champion" in set(result.evaluation.table["model"])
    registered = log(result, settings, home)
    decision = promote(NAME, settings.promotion)
    assert not decision.promoted
    assert any(reason.startswith("WORSE: ") for reason in decision.reasons), decision.reasons
    champion = MlflowClient().get_model_version_by_alias(NAME, "champion").version
    assert str(champion) != registered["version"]


def test_catalog_that_disagrees_with_the_model_is_one_sentence(first, tmp_path):
    from risk.models.bundle import ModelCatalogError

    _, result, _, _ = first
    data = yaml.safe_load(CATALOG.read_text(encoding="utf-8"))
    data["features"] = data["features"][:-1]
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ModelCatalogError, match="does not match the model") as caught:
        result.bundle.check_catalog(load_catalog(other))
    assert "\n" not in str(caught.value)
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    with pytest.raises(Exception, match="missing inputs"):
        model.predict(result.example.iloc[:, :-1])


def test_bundle_parts_are_plain_files(first, tmp_path):
    _, result, _, _ = first
    paths = result.bundle.save(tmp_path / "bundle")
    assert paths["booster"].read_text().startswith("tree")
    for name in ("calibrator", "policy", "profile", "meta"):
        assert paths[name].read_text().lstrip().startswith("{")
    assert not list(tmp_path.rglob("*.pkl"))
    assert isinstance(pd.read_json(paths["policy"], typ="series"), pd.Series)


def test_optuna_trials_are_nested_runs(first, world):
    home, _, _, _ = first
    result, settings = fit(world, optuna__trials=2, **QUICK)
    assert len(result.trials) == 2
    registered = log(result, settings, home)
    children = MlflowClient().search_runs(
        [MlflowClient().get_run(registered["run_id"]).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{registered['run_id']}'")
    assert len(children) == 2 and all("stop_auc" in c.data.metrics for c in children)


def risk_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run([sys.executable, "-m", "risk", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


def test_training_without_validated_data_is_one_sentence(tmp_path):
    done = risk_cli("train", "--data", str(tmp_path / "nothing"), "--tracking-dir", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2
    assert "holds no validated data: run `risk validate` first" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 2


def test_a_window_without_known_outcomes_is_one_sentence(tables, tmp_path, id_key):
    from conftest import write_source

    from risk.data.validate import validate_sources

    validate_sources(write_source(tables, tmp_path / "source"), tmp_path / "validated", key=id_key, progress=False)
    done = risk_cli("train", "--data", str(tmp_path / "validated"), "--tracking-dir", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2
    assert "training needs 3 terms with a known outcome" in done.stderr and "has 0" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_evaluation_cap_counts_the_students_of_the_held_out_side(first, world):
    # max_eval_students caps the students a held-out role can have (30% of the register),
    # not the register before the hold-out is taken: a cap as large as that side keeps all of it.
    _, result, _, _ = first
    term = result.split.test[0]
    settings, validated, labels, points = term_points(world, term, [4])

    def students(cap):
        return build_samples(validated, points, labels, settings=settings, catalog=load_catalog(CATALOG),
                             inputs=DataFiles.scan(validated), max_students=cap,
                             holdout=(0.3, True)).meta["student_key"].nunique()

    everyone = students(None)
    assert students(int(len(labels[term]) * 0.3) + 1) == everyone
    assert abs(students(int(len(labels[term]) * 0.15)) - everyone / 2) < 0.1 * everyone


def test_samples_are_the_cached_rows_of_the_kept_students_read_in_small_chunks(first, world, monkeypatch, tmp_path):
    # Read a few row groups at a time and written into the matrix a band of rows at a time: with
    # chunks and bands far smaller than a point, every kept row must still be its cached row.
    import pyarrow.parquet as pq

    from risk.models import samples as samples_module

    _, result, _, _ = first
    term = result.split.train[0]
    settings, validated, labels, points = term_points(world, term, [4, 8])
    catalog = load_catalog(CATALOG)
    files = DataFiles.scan(validated)

    def build():
        return build_samples(validated, points, labels, settings=settings, catalog=catalog, inputs=files,
                             negative_share=0.5, holdout=(0.3, False), seed=3)

    whole = build()
    # The same points re-written with row groups of 97 rows, read 300 rows and filled 64 rows at a time.
    copies = {}
    for point in points:
        path = feature_cache_path(validated, point.as_of, settings=settings, catalog=catalog, inputs=files)
        copies[point.as_of] = tmp_path / path.name
        pq.write_table(pq.read_table(path), copies[point.as_of], row_group_size=97)
        assert pq.ParquetFile(copies[point.as_of]).metadata.num_row_groups > 3
    monkeypatch.setattr(samples_module, "cached_features", lambda validated, as_of, **_: (copies[as_of], True))
    monkeypatch.setattr(samples_module, "_CHUNK_ROWS", 300)
    monkeypatch.setattr(samples_module, "_FILL_ROWS", 64)
    chunked = build()
    assert chunked.rows == whole.rows > 0 and 0 < chunked.positives < chunked.rows
    np.testing.assert_array_equal(chunked.X, whole.X)
    pd.testing.assert_frame_equal(chunked.meta, whole.meta)
    np.testing.assert_array_equal(chunked.y, whole.y)
    # Each row is its student's cached vector at that point, labelled with the student's outcome.
    path = feature_cache_path(validated, points[1].as_of, settings=settings, catalog=catalog, inputs=files)
    cached = pq.read_table(path).to_pandas().set_index("student_key")
    rows = np.flatnonzero(chunked.meta["as_of"].to_numpy() == points[1].as_of)
    keys = chunked.meta["student_key"].to_numpy()[rows]
    np.testing.assert_array_equal(chunked.X[rows], cached.loc[keys, catalog.names].to_numpy(np.float32))
    outcome = labels[term].set_index("student_key")["dropped_out"]
    np.testing.assert_array_equal(chunked.y[rows], outcome.loc[keys].to_numpy().astype(np.int8))
    # Kept negatives weigh 1 / negative_share; dropouts 1.
    np.testing.assert_array_equal(chunked.weight, np.where(chunked.y == 1, 1.0, 2.0).astype(np.float32))


def test_early_stopping_takes_whole_students_and_at_most_its_row_cap():
    from risk.models.booster import stopping_rows
    from risk.models.settings import SplitSettings

    students = np.arange(20_000, dtype=np.int64) * 7919 + 11
    keys = np.repeat(students, 5)  # five sample points each
    share = stopping_rows(keys, SplitSettings(early_stopping_share=0.15), seed=7)
    assert abs(share.mean() - 0.15) < 0.01
    capped = stopping_rows(keys, SplitSettings(early_stopping_share=0.15, early_stopping_max_rows=5_000), seed=7)
    assert 4_000 < capped.sum() <= 5_600 and not (capped & ~share).any()  # a sample of the same students
    by_student = capped.reshape(-1, 5)
    assert (by_student.all(axis=1) | ~by_student.any(axis=1)).all()  # no student is split


def test_a_semester_the_calibration_term_lacks_is_calibrated_on_its_early_stopping_students(first):
    # The world calibrates on a semester-1 term and tests on a semester-2 one, where dropout is likelier:
    # the training terms' early-stopping students of semester 2 (never fitted on) join the calibration.
    _, result, _, _ = first
    assert {t[-1] for t in result.split.calibration} == {"1"} and {t[-1] for t in result.split.test} == {"2"}
    assert result.rows["calibration"]["added_other_semester"] > 0
    assert result.evaluation.metric("model", "ece") <= 0.02


def test_a_calibration_weight_counts_as_that_many_rows():
    from risk.models.calibrate import choose_calibrator

    rng = np.random.default_rng(5)
    raw = rng.uniform(0.001, 0.3, 4_000)
    y = (rng.uniform(size=raw.size) < raw * 0.8).astype(np.int8)
    halves = rng.uniform(size=raw.size) < 0.5
    weight = np.where(rng.uniform(size=raw.size) < 0.3, 2.0, 1.0)
    twice = np.repeat(np.arange(raw.size), weight.astype(int))
    for methods in (["platt"], ["isotonic"]):
        weighted = choose_calibrator(raw, y, halves, methods, weight=weight)
        repeated = choose_calibrator(raw[twice], y[twice], halves[twice], methods)
        probe = np.linspace(0.001, 0.3, 50)
        np.testing.assert_allclose(weighted.calibrator.transform(probe), repeated.calibrator.transform(probe),
                                   atol=1e-5)
        assert weighted.brier[methods[0]] == pytest.approx(repeated.brier[methods[0]], rel=1e-6)


def test_the_policy_reports_each_class_on_the_held_out_term_and_logs_it(first):
    _, result, registered, _ = first
    policy = result.bundle.policy
    assert set(policy.outcomes) == {"normal", "at_risk", "problem"}
    assert abs(sum(o.share for o in policy.outcomes.values()) - 1) < 0.01
    assert policy.outcomes["problem"].dropout_rate > policy.outcomes["normal"].dropout_rate
    assert all(m.fallback and m.where in ("calibration", "held_out") for m in policy.missed)
    metrics = MlflowClient().get_run(registered["run_id"]).data.metrics
    assert metrics["class.problem.dropout_rate"] == policy.outcomes["problem"].dropout_rate
    assert any(k.startswith("test.model.target.problem_precision.") for k in metrics)
    assert any(k.startswith("policy.target.problem_precision.") for k in metrics)


def test_evaluation_shows_the_model_with_and_without_protected_inputs(first):
    _, result, registered, _ = first
    comparison = result.protected_comparison
    assert comparison["used"] == "with_protected"
    for setting in ("with_protected", "without_protected"):
        assert 0.5 < comparison[setting]["auc"] <= 1 and comparison[setting]["fairness_flags"] >= 0
    assert comparison["with_protected"]["auc"] == round(result.evaluation.metric("model", "roc_auc"), 4)
    assert result.seconds["protected_comparison"] > 0   # its cost is logged (seconds.protected_comparison)
    assert "protected.without_protected.auc" in MlflowClient().get_run(registered["run_id"]).data.metrics
