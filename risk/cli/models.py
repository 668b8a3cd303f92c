"""Model commands: train (tracked in MLflow, registered as challenger) and promote."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from risk.errors import RiskError

if TYPE_CHECKING:  # imported lazily at run time, like every command's module
    from risk.models.train import TrainingResult

from risk.cli.common import (
    REPO_CONFIGS,
    DemoOption,
    QuietOption,
    app,
    console,
    friendly,
    pseudonym_key,
)

TrainConfigOption = Annotated[Path, typer.Option("--config", help="Training settings (YAML).")]


@app.command()
@friendly
def train(
    data: Annotated[Path, typer.Option(help="Validated folder (from risk validate).")] = Path("data/validated"),
    config: TrainConfigOption = REPO_CONFIGS / "train.yaml",
    catalog: Annotated[Path | None, typer.Option(help="Feature catalog (YAML); default from settings.")] = None,
    settings: Annotated[Path, typer.Option(help="Settings (YAML).")] = REPO_CONFIGS / "risk.yaml",
    truth: Annotated[Path | None, typer.Option(
        help="The generator's truth.parquet: adds the oracle to the evaluation (synthetic data only).")] = None,
    tracking_dir: Annotated[Path | None, typer.Option(
        help="Folder of the local MLflow store (default: the parent of --data); MLFLOW_TRACKING_URI wins.")] = None,
    demo: DemoOption = False,
    quiet: QuietOption = False,
) -> None:
    """Train, calibrate and evaluate a dropout model; log it to MLflow and register it as the challenger."""
    from risk.config import load_settings
    from risk.features.catalog import load_catalog
    from risk.models.settings import load_train_settings
    from risk.models.tracking import champion_bundle, configure_tracking, log_training
    from risk.models.train import train_model

    if not (data / "enrollments").is_dir():
        raise RiskError(f"{data} holds no validated data: run `risk validate` first")
    loaded = load_settings(settings)
    ts = load_train_settings(config)
    catalog_path = catalog or loaded.resolve(loaded.features.catalog)
    chosen = load_catalog(catalog_path)
    home = tracking_dir or data.resolve().parent
    uri = configure_tracking(home)
    champion = champion_bundle(ts.mlflow.model_name)
    key = pseudonym_key(demo) if truth is not None else None
    result = train_model(data, settings=loaded, train_settings=ts, catalog=chosen,
                         catalog_yaml=catalog_path.read_bytes(), truth=truth, id_key=key, champion=champion,
                         progress=not quiet)
    registered = log_training(result, data_dir=home, experiment=ts.mlflow.experiment,
                              model_name=ts.mlflow.model_name, settings_dump=ts.model_dump(mode="json"))
    for line in _training_lines(result):
        console.print(line, highlight=False)
    console.print(f"registered {registered['name']} version {registered['version']} as challenger "
                  f"(run {registered['run_id']}, tracking {uri.split('@')[-1]})", highlight=False)


def _training_lines(result: TrainingResult) -> list[str]:
    table = result.evaluation.table
    overall = table[table["slice"] == "overall"].set_index("model")
    lines = [f"terms: train {', '.join(result.split.train)}; calibrate {', '.join(result.split.calibration)}; "
             f"test {', '.join(result.split.test)}",
             "rows: " + "; ".join(f"{role} {c['rows']:,} ({c['positives']:,} dropouts)" for role, c in result.rows.items()),
             f"{result.best_iteration} trees; calibration {result.calibration.calibrator.method}; feature points "
             f"reused {result.feature_points['reused']} of {result.feature_points['total']}",
             f"{'held-out term':<14} {'ROC AUC':>8} {'PR AUC':>7} {'ECE':>7} {'prec@10%':>9} {'recall@10%':>11}"]
    for model, row in overall.iterrows():
        lines.append(f"{model:<14} {row['roc_auc']:>8.4f} {row['pr_auc']:>7.4f} {row['ece']:>7.4f} "
                     f"{row['precision_top10']:>9.4f} {row['recall_top10']:>11.4f}")
    lead = result.evaluation.lead_time
    for _, row in lead[lead["week"].astype(str).str.contains("week")].iterrows():
        if row["model"] in ("model", "oracle"):
            lines.append(f"lead time {row['week']}: {row['model']} recall@10% {row['recall_top10']:.4f}")
    flagged = result.evaluation.fairness
    if len(flagged) and flagged["flagged_disparity"].any():
        groups = flagged[flagged["flagged_disparity"]]
        lines.append("fairness: outside 0.8–1.25 for " + ", ".join(
            f"{a}={g}" for a, g in zip(groups["attribute"], groups["group"], strict=True)))
    return lines


@app.command()
@friendly
def promote(
    config: TrainConfigOption = REPO_CONFIGS / "train.yaml",
    tracking_dir: Annotated[Path, typer.Option(
        help="Folder of the local MLflow store; MLFLOW_TRACKING_URI wins.")] = Path("data"),
) -> None:
    """Make the challenger the champion when it is not worse than the champion on the same held-out term."""
    from risk.models.registry import promote as run_promotion
    from risk.models.settings import load_train_settings
    from risk.models.tracking import configure_tracking

    ts = load_train_settings(config)
    configure_tracking(tracking_dir)
    decision = run_promotion(ts.mlflow.model_name, ts.promotion)
    for line in decision.summary_lines():
        console.print(line, highlight=False)
