"""The MLflow record of a training run, and the registered model ``dropout-risk``.

Tracking goes to ``MLFLOW_TRACKING_URI`` when it is set (a server, for example);
otherwise to a SQLite store and an artifact folder inside the project's data
folder, so nothing needs starting. A run holds params, metrics, the data window,
row counts, the inputs hash, the catalog and code versions, the evaluation and
fairness tables, plots and a model card; its model is one pyfunc, registered with
the alias ``challenger``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from risk.errors import RiskError
from risk.models.bundle import ARTIFACTS, ModelBundle, ModelPackageError

if TYPE_CHECKING:  # only a training run needs these (and pandas, the card and matplotlib's plots, imported there):
    # scoring, promotion and the pilot commands come here for the registry alone
    from mlflow.models import ModelSignature

    from risk.models.train import TrainingResult

__all__ = ["RegisteredModel", "TrackingError", "bundle_files", "champion_bundle", "configure_tracking", "load_bundle", "resolve_model",
           "trained_version", "training_key",
           "log_training"]

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
PACKAGE_DIR = Path(__file__).resolve().parents[1]
# The model loads with the layers below the service only (data, features, models, config): the service
# and the CLI stay out of the copy logged with it. Smaller, and the service's OpenAPI examples (which
# name a student of the demo's synthetic export) never land among a model's artifacts.
NOT_MODEL_CODE = shutil.ignore_patterns("serve", "cli", "__main__.py", "__pycache__", "*.pyc")
# What a fresh environment needs to load the model (the risk package itself travels as code).
PIP_REQUIREMENTS = ["lightgbm==4.7.0", "numpy==2.4.6", "pandas==3.1.1", "scikit-learn==1.9.1", "pydantic==2.14.3",
                    "pyyaml==6.0.3", "duckdb==2.0.0", "structlog==26.1.0", "mlflow==3.17.2"]


class TrackingError(RiskError):
    """MLflow cannot be reached, or the registry lacks what was asked for."""


class RegisteredModel(dict):
    """name, version, run_id and alias of a registered model version."""


def configure_tracking(data_dir: Path) -> str:
    """Point MLflow at ``MLFLOW_TRACKING_URI`` or at ``<data_dir>/mlflow.db``; returns the URI in use."""
    # MLflow's download bars and database notices would drown risk's own lines.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        data_dir.mkdir(parents=True, exist_ok=True)
        database = data_dir.resolve() / "mlflow.db"
        if not database.exists():
            _copy_empty_store(database, Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "risk")
        uri = f"sqlite:///{database}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def _copy_empty_store(database: Path, cache: Path) -> None:
    """Write at ``database`` an MLflow SQLite store with every table and no row, copied from a template in
    ``cache`` that is made once per MLflow version.

    A new store runs MLflow's ~100 schema migrations (~2.5 s of CPU, measured on 3.17.2), once
    per data folder: every ``risk term`` of a fresh folder and every test store paid them. The
    copy holds what the migrations leave (tables and the Alembic revision, no experiment);
    MLflow adds its Default experiment on first use, as it does after migrating. Should the
    template not be made (a read-only home), the store is left to MLflow to create.
    """
    from mlflow.store.db.utils import _initialize_tables, create_sqlalchemy_engine_with_retry
    from sqlalchemy.exc import SQLAlchemyError

    template = cache / f"mlflow-{mlflow.__version__}-empty.db"
    partial = template.with_name(f"{template.name}.{os.getpid()}.partial")
    try:
        if not template.exists():
            cache.mkdir(parents=True, exist_ok=True)
            partial.unlink(missing_ok=True)
            engine = create_sqlalchemy_engine_with_retry(f"sqlite:///{partial}")
            try:
                _initialize_tables(engine)  # what MLflow's SqlAlchemyStore runs on an empty database
            finally:
                engine.dispose()
            partial.replace(template)  # whole or not at all: two makers write the same tables
        shutil.copyfile(template, database)
    except (OSError, SQLAlchemyError):
        partial.unlink(missing_ok=True)
        database.unlink(missing_ok=True)


def _experiment(name: str, data_dir: Path) -> str:
    """The experiment's id; created with its artifacts under ``data_dir`` when the store is local."""
    client = MlflowClient()
    try:
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        local = mlflow.get_tracking_uri().startswith("sqlite:")
        location = (data_dir.resolve() / "mlartifacts").as_uri() if local else None
        return client.create_experiment(name, artifact_location=location)
    except MlflowException as exc:
        raise TrackingError(f"MLflow at {_safe(mlflow.get_tracking_uri())} cannot be used: {exc.message}") from exc


def _safe(uri: str) -> str:
    """A tracking URI without its password."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://…@{rest.split('@', 1)[1]}"
    return uri


def log_training(result: TrainingResult, *, data_dir: Path, experiment: str, model_name: str,
                 settings_dump: dict[str, Any]) -> RegisteredModel:
    """Log ``result`` as one MLflow run, register its model and point ``challenger`` at it."""
    import pandas as pd

    experiment_id = _experiment(experiment, data_dir)
    bundle = result.bundle
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{result.split.test[0]}") as run:
        for trial in result.trials:
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"optuna-trial-{trial['number']}",
                                  nested=True):
                mlflow.log_params({k: v for k, v in trial["params"].items()})
                mlflow.log_metric("stop_auc", trial["stop_auc"])
        mlflow.log_params(_params(result, settings_dump))
        mlflow.set_tags({"code_version": bundle.meta["code_version"], "inputs_hash": result.inputs_hash,
                         "catalog_version": bundle.meta["catalog_version"],
                         "data_window": json.dumps(result.split.as_dict()),
                         "evaluated_champion_version": result.champion_version or "",
                         "training_key": training_key(result.inputs_hash, bundle.meta["catalog_version"],
                                                      settings_dump)})
        mlflow.log_metrics(_metrics(result))
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            paths = bundle.save(folder / "bundle")
            code = shutil.copytree(PACKAGE_DIR, folder / "code" / PACKAGE_DIR.name, ignore=NOT_MODEL_CODE)
            example = result.example if result.example is not None else pd.DataFrame(columns=bundle.names)
            info = mlflow.pyfunc.log_model(
                name="model", python_model=str(PYFUNC_CODE), artifacts={k: str(v) for k, v in paths.items()},
                code_paths=[str(code)], signature=_signature(bundle.names),
                input_example=example, pip_requirements=PIP_REQUIREMENTS, registered_model_name=model_name)
            version = str(info.registered_model_version)
            _write_artifacts(result, folder, model_name, version)
            mlflow.log_artifacts(str(folder / "report"), artifact_path="evaluation")
        MlflowClient().set_registered_model_alias(model_name, "challenger", version)
        return RegisteredModel(name=model_name, version=version, run_id=run.info.run_id, alias="challenger")


def training_key(inputs_hash: str, catalog_version: str, settings_dump: dict[str, Any]) -> str:
    """What a model depends on (data, catalog, training settings) as one hash: equal keys, same model."""
    text = json.dumps([inputs_hash, catalog_version, settings_dump], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def trained_version(model_name: str, experiment: str, key: str) -> str | None:
    """The registered version already trained with ``key`` (see :func:`training_key`), if any."""
    client = MlflowClient()
    try:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return None
        runs = client.search_runs([found.experiment_id], filter_string=f"tags.training_key = '{key}'",
                                  order_by=["attributes.start_time DESC"], max_results=5)
        for run in runs:
            versions = client.search_model_versions(f"name = '{model_name}' and run_id = '{run.info.run_id}'")
            if versions:
                return str(versions[0].version)
    except MlflowException as exc:
        raise TrackingError(f"MLflow at {_safe(mlflow.get_tracking_uri())} cannot be searched: {exc.message}") from exc
    return None


def _signature(names: list[str]) -> ModelSignature:
    """Every feature column a double (missing is NaN, never absent); out come probability and class."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("double", name) for name in names]),
                          outputs=Schema([ColSpec("double", "probability"), ColSpec("string", "risk_class")]))


def _params(result: TrainingResult, settings_dump: dict[str, Any]) -> dict[str, Any]:
    params = {f"lgb.{k}": v for k, v in result.params.items()}
    params.update({"trees": result.best_iteration, "calibration": result.calibration.calibrator.method,
                   "problem_threshold": round(result.bundle.policy.problem_threshold, 6),
                   "at_risk_threshold": round(result.bundle.policy.at_risk_threshold, 6),
                   "train_terms": ",".join(result.split.train), "calibration_terms": ",".join(result.split.calibration),
                   "test_terms": ",".join(result.split.test), "features": len(result.bundle.names),
                   "sample_weeks": json.dumps(settings_dump["samples"]["weeks"]),
                   "negative_share": settings_dump["samples"]["negative_share"]})
    policy = result.bundle.policy
    for key, group in policy.groups.items():
        params.update({f"policy.{policy.thresholds_by}:{key}.problem_threshold": round(group.problem_threshold, 6),
                       f"policy.{policy.thresholds_by}:{key}.at_risk_threshold": round(group.at_risk_threshold, 6)})
    for role, counts in result.rows.items():
        params.update({f"rows.{role}.{k}": v for k, v in counts.items()})
    # What was done with the rows the help may have changed (their counts are metrics: train.rows_*).
    params["treated_outcomes"] = (result.treated or {}).get("choice", settings_dump["samples"].get("treated_outcomes",
                                                                                                   "keep"))
    if params["treated_outcomes"] == "down_weight":
        params["treated_down_weight"] = result.treated["down_weight"] if result.treated else None
    return params


def _metrics(result: TrainingResult) -> dict[str, float]:
    metrics = dict(result.evaluation.headline)
    metrics.update({f"calibration.brier_{k}": v for k, v in result.calibration.brier.items()})
    metrics.update({f"policy.{k}": v for k, v in result.bundle.policy.achieved.items() if not np.isnan(v)})
    metrics.update({f"seconds.{k}": v for k, v in result.seconds.items()})
    metrics["feature_points_reused"] = result.feature_points["reused"]
    return metrics


def _write_artifacts(result: TrainingResult, folder: Path, model_name: str, version: str) -> None:
    """Evaluation and fairness tables, plots and the model card, under ``folder/report``."""
    from risk.models.card import DataWindow, ModelCardInfo, SplitRows, model_card_html
    from risk.models.plots import calibration_plot, lead_time_plot, shap_summary_plot

    out = folder / "report"
    out.mkdir(parents=True)
    evaluation = result.evaluation
    evaluation.table.to_csv(out / "evaluation.csv", index=False)
    evaluation.fairness.to_csv(out / "fairness.csv", index=False)
    evaluation.lead_time.to_csv(out / "lead_time.csv", index=False)
    evaluation.class_counts.to_csv(out / "class_counts.csv", index=False)
    images = {
        "calibration": calibration_plot(evaluation.calibration_curves, out / "calibration.png"),
        "lead_time": lead_time_plot(evaluation.lead_time, out / "lead_time.png"),
        "shap_summary": shap_summary_plot(result.shap_sample[1][:, :-1], result.shap_sample[0],
                                          result.bundle.names, out / "shap_summary.png"),
    }
    bundle = result.bundle
    card = ModelCardInfo(
        model_name=model_name, version=version, created=bundle.meta["trained_at"], code_version=bundle.meta["code_version"],
        data_window=DataWindow(**result.split.as_dict()), input_hash=result.inputs_hash,
        catalog_version=bundle.meta["catalog_version"],
        rows={role: SplitRows(rows=c["rows"], positives=c["positives"]) for role, c in result.rows.items()},
        params={**result.params, "trees": result.best_iteration},
        policy=json.loads(bundle.policy.to_json()),
        calibration={"method": bundle.calibrator.method, "brier_held_out_half": result.calibration.brier},
        evaluation=evaluation.table, fairness=evaluation.fairness, lead_time=evaluation.lead_time,
        images={k: str(v) for k, v in images.items()}, key_model="model",
        promoted_over=None, treated=result.treated,
        # both settings of features.protected_inputs (the card field lands with the card's own change)
        **({"protected_comparison": result.protected_comparison}
           if "protected_comparison" in ModelCardInfo.model_fields else {}))
    (out / "model_card.html").write_text(model_card_html(card), encoding="utf-8")


def bundle_files(model_uri: str, folder: Path) -> Path:
    """Download a logged model's artifacts into ``folder``; returns the folder holding the bundle's files.

    Plain files only: no pyfunc is loaded and no logged code runs.
    """
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(folder)))
    except MlflowException as exc:
        raise TrackingError(f"cannot load {model_uri}: {exc.message}") from exc
    found = sorted(local.rglob(ARTIFACTS["booster"]))
    if not found:
        raise ModelPackageError(f"{model_uri} has no {ARTIFACTS['booster']}: it was not written by risk train")
    return found[0].parent


def load_bundle(model_uri: str) -> ModelBundle:
    """The bundle of a registered or logged model (``models:/dropout-risk@champion``)."""
    with tempfile.TemporaryDirectory() as tmp:
        return ModelBundle.load(bundle_files(model_uri, Path(tmp)))


def champion_bundle(model_name: str) -> tuple[str, ModelBundle] | None:
    """The current champion's version and bundle, or None when there is none yet."""
    try:
        version = MlflowClient().get_model_version_by_alias(model_name, "champion")
    except MlflowException:
        return None
    return str(version.version), load_bundle(f"models:/{model_name}@champion")


def resolve_model(model_name: str, ref: str) -> tuple[str, ModelBundle]:
    """A model by alias (``champion``, ``challenger``) or version number: its version and bundle."""
    client = MlflowClient()
    try:
        version = (client.get_model_version(model_name, ref) if ref.isdigit()
                   else client.get_model_version_by_alias(model_name, ref))
    except MlflowException as exc:
        raise TrackingError(f"the registry has no {model_name!r} {'version' if ref.isdigit() else 'alias'} {ref}: "
                            "train one with `risk train` (and `risk promote` for the champion)") from exc
    suffix = f"/{version.version}" if ref.isdigit() else f"@{ref}"
    return str(version.version), load_bundle(f"models:/{model_name}{suffix}")
