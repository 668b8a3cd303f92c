"""``risk store load``: score rows written elsewhere (``risk score --engine spark``) into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from risk.cli.common import (
    REPO_CONFIGS,
    StoreOption,
    TrackingDirOption,
    app,
    console,
    friendly,
    open_data_store,
)

__all__ = ["load_command", "store_app"]

store_app = typer.Typer(help="The store of scores, alerts and summaries.", no_args_is_help=True)
app.add_typer(store_app, name="store")


@store_app.command("load")
@friendly
def load_command(
    scores: Annotated[Path, typer.Option(help="Folder of scores by bucket (from risk score --engine spark).")]
    = Path("data/scores"),
    data: Annotated[Path, typer.Option(help="Validated folder: locates the default store and MLflow.")]
    = Path("data/validated"),
    store: StoreOption = None,
    config: Annotated[Path, typer.Option("--config", help="Scoring settings (YAML).")] = REPO_CONFIGS / "scoring.yaml",
    train_config: Annotated[Path, typer.Option(help="Training settings (model name).")] = REPO_CONFIGS / "train.yaml",
    tracking_dir: TrackingDirOption = None,
) -> None:
    """Store the scores of a Spark run with its alerts and area summaries, as `risk score` stores its own."""
    import pyarrow.parquet as pq

    from risk.models.settings import load_train_settings
    from risk.models.tracking import configure_tracking, resolve_model
    from risk.scoring.settings import load_scoring_settings
    from risk.spark.load import load_scores, score_buckets

    buckets = score_buckets(scores)
    version = pq.read_table(next(f for files in buckets.values() for f in files),
                            columns=["model_version"]).column(0)[0].as_py()
    name = load_train_settings(train_config).mlflow.model_name
    configure_tracking(tracking_dir or data.resolve().parent)
    _, bundle = resolve_model(name, str(version))
    report = load_scores(open_data_store(store, data), scores, bundle=bundle, model_name=name,
                         scoring=load_scoring_settings(config))
    console.print(f"stored {report['students']:,} scores at {report['as_of']} (model version {report['model_version']}) "
                  f"as run {report['run_id']}; alerts: "
                  + (", ".join(f"{k} {v:,}" for k, v in report["alerts"].items()) or "none")
                  + f"; {report['areas']:,} area summaries", highlight=False)
