"""``risk audit-reasons``: check a scoring run's reasons against what a teacher may read (issue 28).

Over the run's flagged students it counts reasons from protected features, context given
as a child's reason, exam-line reasons below P1, two reasons from one group, unknown codes
and, with the feature matrix of the run's date, reasons that contradict the child's value.
Any count above zero ends with exit code 1, so a term job or CI can stop on it.
"""

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
from risk.errors import RiskError


@app.command("audit-reasons")
@friendly
def audit_reasons_command(
    data: Annotated[Path, typer.Option(help="Validated folder: locates the default store and MLflow.")]
    = Path("data/validated"),
    store: StoreOption = None,
    run: Annotated[str | None, typer.Option(help="Scoring run id (default: the newest finished run).")] = None,
    features: Annotated[Path | None, typer.Option(
        help="Feature matrix of the run's date (risk features); adds the check against each child's values.",
    )] = None,
    train_config: Annotated[Path, typer.Option(help="Training settings (model name).")] = REPO_CONFIGS / "train.yaml",
    tracking_dir: TrackingDirOption = None,
) -> None:
    """Count reasons a teacher must never read in a scoring run; exit code 1 when any is found."""
    import pandas as pd

    from risk.models.settings import load_train_settings
    from risk.models.tracking import configure_tracking, resolve_model
    from risk.scoring.reason_audit import audit_reasons
    from risk.store.runs import latest_finished_run, run_record

    opened = open_data_store(store, data)
    run_id = run or latest_finished_run(opened)
    if run_id is None:
        raise RiskError("the store has no finished scoring run: run `risk score` first")
    record = run_record(opened, run_id)
    configure_tracking(tracking_dir or data.resolve().parent)
    _, bundle = resolve_model(load_train_settings(train_config).mlflow.model_name, str(record["model_version"]))
    values = None
    if features is not None:
        values = pd.read_parquet(features, columns=["student_key", "as_of", *bundle.names])
        dates = set(pd.to_datetime(values["as_of"]).dt.date)
        if dates != {record["as_of"]}:
            raise RiskError(f"{features} holds features of {', '.join(map(str, sorted(dates)))}, the run scored "
                            f"{record['as_of']}: build them with `risk features --as-of {record['as_of']}`")
    audit = audit_reasons(opened, run_id, bundle.catalog, bundle.policy, values=values, profile=bundle.profile)
    console.print(f"run {run_id} ({record['as_of']}, model version {record['model_version']}): "
                  f"{audit.students:,} flagged students, {audit.reasons:,} reasons", highlight=False)
    for name, check in audit.checks.items():
        mark = "[green]0[/]" if check.count == 0 else f"[red]{check.count:,}[/]"
        console.print(f"  {name:16} {mark}")
        for example in check.examples:
            console.print(f"      student {example['student']} {example['code']}: {example['detail']}", highlight=False)
    if not audit.clean:
        raise typer.Exit(1)
