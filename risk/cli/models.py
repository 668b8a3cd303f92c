"""Model commands: train (tracked in MLflow, registered as challenger) and promote."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from risk.errors import RiskError

if TYPE_CHECKING:  # imported lazily at run time, like every command's module
    from risk.models.policy import ClassPolicy
    from risk.models.train import TrainingResult
    from risk.store import Store

from risk.cli.common import (
    REPO_CONFIGS,
    DemoOption,
    QuietOption,
    StoreOption,
    TrackingDirOption,
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
    tracking_dir: TrackingDirOption = None,
    demo: DemoOption = False,
    quiet: QuietOption = False,
    store: StoreOption = None,
) -> None:
    """Train, calibrate and evaluate a dropout model; log it to MLflow and register it as the challenger.

    Training rows whose student had an alert or an action in the store are counted, and kept,
    down-weighted or left out as ``samples.treated_outcomes`` says.
    """
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
    opened = _training_store(store, data)
    try:
        result = train_model(data, settings=loaded, train_settings=ts, catalog=chosen,
                             catalog_yaml=catalog_path.read_bytes(), truth=truth, id_key=key, champion=champion,
                             progress=not quiet, store=opened)
    finally:
        if opened is not None:
            opened.close()
    registered = log_training(result, data_dir=home, experiment=ts.mlflow.experiment,
                              model_name=ts.mlflow.model_name, settings_dump=ts.model_dump(mode="json"))
    for line in _training_lines(result) + policy_lines(result.bundle.policy) + _protected_lines(result):
        console.print(line, highlight=False)
    console.print(f"registered {registered['name']} version {registered['version']} as challenger "
                  f"(run {registered['run_id']}, tracking {uri.split('@')[-1]})", highlight=False)


def _training_store(url: str | None, data: Path) -> Store | None:
    """The store ``url``, or the SQLite store beside the validated folder as ``risk score`` finds it when that
    file exists; None when there is none (training does not create one)."""
    from risk.store import default_store_url, open_store

    if url:
        return open_store(url)
    home = data.resolve().parent
    return open_store(default_store_url(home)) if (home / "risk.db").exists() else None


def treated_line(treated: dict | None) -> str:
    """One line on the training rows the help may have changed (``TrainingResult.treated``)."""
    if not treated:
        return "treated rows: not counted"
    choice = {"keep": "kept as they are", "down_weight": f"down-weighted to {treated['down_weight']:g}",
              "untreated_only": "left out"}[treated["choice"]]
    if treated["source"] == "none":
        return f"treated rows: no store, so none counts as treated ({choice})"
    if not treated["treated"]:
        return f"treated rows: none of {treated['rows']:,} training rows had an alert or an action in the store"
    wait = f"; {treated['wait_list']:,} wait-list rows of a pilot term kept" if treated["wait_list"] else ""
    return (f"treated rows: {treated['treated']:,} of {treated['rows']:,} training rows ({treated['share']:.1%}; "
            f"alerted {treated['alerted']:,}, acted on {treated['acted']:,}): {choice}{wait}")


def _training_lines(result: TrainingResult) -> list[str]:
    table = result.evaluation.table
    overall = table[table["slice"] == "overall"].set_index("model")
    lines = [f"terms: train {', '.join(result.split.train)}; calibrate {', '.join(result.split.calibration)}; "
             f"test {', '.join(result.split.test)}",
             "rows: " + "; ".join(f"{role} {c['rows']:,} ({c['positives']:,} dropouts)" for role, c in result.rows.items()),
             treated_line(result.treated),
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


def policy_lines(policy: ClassPolicy) -> list[str]:
    """The class policy in words (rich markup): per class and group its target, what the calibration term and
    the held-out term achieved, each miss and its fallback (yellow on calibration, red on the held-out term),
    then each class's students and observed dropout rate on the held-out term."""
    from rich.markup import escape

    lines = ["class policy: target → achieved on the calibration term, on the held-out term"]
    groups = [(None, policy)] + list(policy.groups.items())
    for key, chosen in groups:
        if key is None and policy.groups and not chosen.held_out:
            continue  # every held-out row has a group: the pooled thresholds only stand in for unseen groups
        rows = "all rows" if key is None else f"{policy.thresholds_by}={key}"
        got, held = chosen.achieved, chosen.held_out
        if "problem_precision" in policy.targets:
            lines.append(f"  problem ({rows}, p ≥ {chosen.problem_threshold:.4f}): precision ≥ "
                         f"{policy.targets['problem_precision']:.2f} → {_num(got.get('problem_precision'))}, "
                         f"held-out {_num(held.get('problem_precision'))}")
        if "at_risk_capacity_share" in policy.targets:
            lines.append(f"  at_risk ({rows}, p ≥ {chosen.at_risk_threshold:.4f}): flags ≤ "
                         f"{policy.targets['at_risk_capacity_share']:.0%} of students → "
                         f"{_pct(got.get('flagged_share'))}, held-out {_pct(held.get('flagged_share'))}")
        for miss in (m for m in policy.missed if m.group == key):
            colour = "yellow" if miss.where == "calibration" else "red"
            where = "calibration term" if miss.where == "calibration" else "held-out term"
            lines.append(f"    [{colour}]MISSED {escape(miss.target)} on the {where}: {_num(miss.achieved)} against "
                         f"{miss.wanted:.2f}; {escape(miss.fallback)}[/{colour}]")
    if policy.outcomes:
        lines.append("classes on the held-out term: " + "; ".join(
            f"{name} {o.students:,} students ({o.share:.1%}), {_pct(o.dropout_rate)} dropped out"
            + (f", {o.raised_by_rule:,} raised by a rule" if o.raised_by_rule else "")
            for name, o in policy.outcomes.items()))
    return lines


def _protected_lines(result: TrainingResult) -> list[str]:
    comparison = result.protected_comparison
    if not comparison:
        return []
    cells = [f"{setting.replace('_', ' ')}{' (used)' if comparison['used'] == setting else ''}: AUC "
             f"{comparison[setting]['auc']:.4f}, recall@10% {comparison[setting]['recall_top10']:.4f}, "
             f"{comparison[setting]['fairness_flags']} fairness flags"
             for setting in ("with_protected", "without_protected")]
    seconds = result.seconds.get("protected_comparison", 0.0)
    rows = comparison.get("fit_rows") or {}
    other = next((n for setting, n in rows.items() if setting != comparison["used"]), None)
    sampled = (f"; the other setting fitted on {other:,} of {rows[comparison['used']]:,} rows"
               if other is not None and other < rows.get(comparison["used"], other) else "")
    return [f"protected inputs: {'; '.join(cells)} (comparison {seconds:.1f} s{sampled})"]


def _num(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.1%}"


@app.command()
@friendly
def promote(
    config: TrainConfigOption = REPO_CONFIGS / "train.yaml",
    tracking_dir: Annotated[Path, typer.Option(
        help="Folder of the local MLflow store; MLFLOW_TRACKING_URI wins.")] = Path("data"),
) -> None:
    """Make the challenger the champion when it is not worse than the champion on the same held-out term."""
    from risk.models.promotion import promote as run_promotion
    from risk.models.settings import load_train_settings
    from risk.models.tracking import configure_tracking

    ts = load_train_settings(config)
    configure_tracking(tracking_dir)
    decision = run_promotion(ts.mlflow.model_name, ts.promotion)
    for line in decision.summary_lines():
        console.print(line, highlight=False)
