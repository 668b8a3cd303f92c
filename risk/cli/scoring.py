"""Term commands: score, report, and term (the whole term's job in one command)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from risk.cli.common import (
    REPO_CONFIGS,
    DemoOption,
    ProfileOption,
    QuietOption,
    StoreOption,
    TrackingDirOption,
    app,
    console,
    friendly,
    open_data_store,
    parse_date,
    pseudonym_key,
    read_profile,
)
from risk.cli.data import Engine

if TYPE_CHECKING:
    from risk.features.freshness import DomainFreshness


@app.command()
@friendly
def score(
    as_of: Annotated[str, typer.Option("--as-of", help="Point in time, YYYY-MM-DD.")],
    data: Annotated[Path, typer.Option(help="Validated folder (from risk validate).")] = Path("data/validated"),
    model: Annotated[str, typer.Option(help="Registry alias (champion, challenger) or version number.")] = "champion",
    out: Annotated[Path | None, typer.Option(
        help="Scores to write, Parquet (default: data/scores.parquet; with --engine spark, the folder "
             "data/scores, which `risk store load` reads).")] = None,
    store: StoreOption = None,
    catalog: Annotated[Path | None, typer.Option(
        help="Feature catalog to check against the model's (default: the model's own).")] = None,
    config: Annotated[Path, typer.Option("--config", help="Scoring settings (YAML).")] = REPO_CONFIGS / "scoring.yaml",
    train_config: Annotated[Path, typer.Option(help="Training settings (model name).")] = REPO_CONFIGS / "train.yaml",
    settings: Annotated[Path, typer.Option(help="Settings (YAML).")] = REPO_CONFIGS / "risk.yaml",
    tracking_dir: TrackingDirOption = None,
    engine: Annotated[Engine, typer.Option(
        help="duckdb: score, explain and store here; spark: Spark SQL and the pyfunc's spark_udf (local[2], or the "
             "cluster of spark-submit) write a folder of scores by bucket to --out, stored by `risk store load`.")]
    = Engine.duckdb,
    quiet: QuietOption = False,
) -> None:
    """Score every enrolled student with reasons; store scores, alerts and area summaries (resumable)."""
    from risk.config import load_settings
    from risk.features.batch import buckets_of
    from risk.features.catalog import load_catalog
    from risk.features.freshness import check_as_of_in_data, domain_freshness, log_freshness
    from risk.models.settings import load_train_settings
    from risk.models.tracking import configure_tracking, resolve_model
    from risk.scoring.batch import score_students
    from risk.scoring.settings import load_scoring_settings

    point = parse_date(as_of, "--as-of")
    # Spark writes a folder by bucket: it must not land on (or be mistaken for) batch's one file.
    out = out or Path("data/scores" if engine == Engine.spark else "data/scores.parquet")
    loaded = load_settings(settings)
    freshness = []
    if engine == Engine.duckdb or _is_local(data):  # Spark also reads Hadoop paths (hdfs://), which DuckDB cannot
        buckets_of(data)  # a clear sentence when the folder is not validated data
        check_as_of_in_data(data, point)  # before a run is started in the store
        # Stale or missing domains warn and the run goes on: the loss gate of `risk validate` is what stops runs.
        freshness = domain_freshness(data, point, loaded)
        log_freshness(freshness, "score")
    scoring = load_scoring_settings(config)
    name = load_train_settings(train_config).mlflow.model_name
    configure_tracking(tracking_dir or data.resolve().parent)
    version, bundle = resolve_model(name, model)
    if catalog is not None:
        bundle.check_catalog(load_catalog(catalog))
    if engine == Engine.spark:
        _score_on_spark(data, point, out, bundle=bundle, model_uri=_model_uri(name, model), model_version=version,
                        settings=loaded, scoring=scoring, quiet=quiet)
        print_freshness_warnings(freshness)
        return
    report = score_students(data, point, bundle=bundle, model_name=name, model_version=version,
                            store=open_data_store(store, data), out=out, settings=loaded, scoring=scoring,
                            progress=not quiet)
    for line in report.summary_lines():
        console.print(line, highlight=False)
    print_freshness_warnings(freshness)


def _is_local(data: Path) -> bool:
    from risk.spark.features import as_uri, is_local

    return is_local(as_uri(data))


def _model_uri(name: str, ref: str) -> str:
    return f"models:/{name}/{ref}" if ref.isdigit() else f"models:/{name}@{ref}"


def _score_on_spark(data: Path, point: dt.date, out: Path, *, quiet: bool, **kwargs: object) -> None:
    """``risk score --engine spark``: the scores as Parquet by bucket (risk.spark.scoring); the store is left to
    ``risk store load``, which may run where the store is. ``quiet``: no Spark progress bar."""
    from risk.spark.features import as_uri
    from risk.spark.scoring import score_students_spark
    from risk.spark.session import spark_session, submitted_master

    done = score_students_spark(spark_session(submitted_master(), progress=not quiet), as_uri(data), point, as_uri(out), **kwargs)
    mix = ", ".join(f"{k} {v:,}" for k, v in sorted(done["classes"].items()))
    console.print(f"scored {done['students']:,} students at {point} on Spark: {mix}; {done['seconds']:.1f} s",
                  highlight=False)
    console.print(f"written to {done['output']}; store them with `risk store load --scores {out}`", highlight=False)


def print_freshness_warnings(freshness: list[DomainFreshness]) -> None:
    """One line per stale or missing domain (risk.features.freshness), in the warning colour."""
    from risk.features.freshness import warnings_of

    for sentence in warnings_of(freshness):
        console.print(f"[bold yellow]warning:[/] {sentence}", highlight=False, soft_wrap=True)


@app.command()
@friendly
def report(
    out: Annotated[Path, typer.Option(help="Report to write (one HTML file).")] = Path("data/report.html"),
    data: Annotated[Path, typer.Option(
        help="Validated folder: locates the default store; the report shows its domains' freshness.",
    )] = Path("data/validated"),
    store: StoreOption = None,
    run: Annotated[str | None, typer.Option(help="Scoring run id (default: the newest finished run).")] = None,
    settings: Annotated[Path, typer.Option(
        help="Settings (YAML): the domains' freshness limits.",
    )] = REPO_CONFIGS / "risk.yaml",
    config: Annotated[Path, typer.Option("--config", help="Scoring settings (YAML): the smallest area ranked.")]
    = REPO_CONFIGS / "scoring.yaml",
) -> None:
    """Write the term report (HTML with map and charts, Thai and English) of a scoring run."""
    from risk.config import load_settings
    from risk.scoring.settings import load_scoring_settings
    from risk.scoring.term_report import term_report

    path = term_report(open_data_store(store, data), out, run, validated=data, settings=load_settings(settings),
                       scoring=load_scoring_settings(config))
    console.print(f"report written to {path}", highlight=False)


@app.command()
@friendly
def term(
    source: Annotated[Path, typer.Option(help="The term's export (Parquet, CSV or Excel per table).")],
    as_of: Annotated[str, typer.Option("--as-of", help="Point in time to score, YYYY-MM-DD.")],
    store: Annotated[Path, typer.Option(
        help="Data folder: validated tables, MLflow store, risk.db, scores and report.")] = Path("data"),
    store_url: Annotated[str | None, typer.Option(
        "--store-url", envvar="RISK_STORE_URL", help="Database URL of the store (default: SQLite in --store).")] = None,
    truth: Annotated[Path | None, typer.Option(
        help="The generator's truth.parquet: adds the oracle to the evaluation (synthetic data only).")] = None,
    settings: Annotated[Path, typer.Option(help="Settings (YAML).")] = REPO_CONFIGS / "risk.yaml",
    train_config: Annotated[Path, typer.Option(help="Training settings (YAML).")] = REPO_CONFIGS / "train.yaml",
    scoring_config: Annotated[Path, typer.Option(help="Scoring settings (YAML).")] = REPO_CONFIGS / "scoring.yaml",
    profile: ProfileOption = None,
    accept_loss: Annotated[list[str] | None, typer.Option(
        "--accept-loss", metavar="TABLE", help="As risk validate --accept-loss (repeat for several).")] = None,
    demo: DemoOption = False,
    quiet: QuietOption = False,
) -> None:
    """One school term in one command: validate, features, train, promote, score, alerts, summaries, report."""
    from rich.table import Table

    from risk.config import load_settings
    from risk.features.catalog import load_catalog
    from risk.models.settings import load_train_settings
    from risk.scoring.settings import load_scoring_settings
    from risk.term import TermJob, run_term

    if not source.is_dir():
        raise typer.BadParameter(f"{source} is not a folder", param_hint="--source")
    loaded = load_settings(settings)
    catalog_path = loaded.resolve(loaded.features.catalog)
    job = TermJob(source=source, as_of=parse_date(as_of, "--as-of"), data_dir=store, id_key=pseudonym_key(demo),
                  settings=loaded, train_settings=load_train_settings(train_config),
                  scoring=load_scoring_settings(scoring_config), catalog=load_catalog(catalog_path),
                  catalog_yaml=catalog_path.read_bytes(), store_url=store_url, truth=truth, progress=not quiet,
                  profile=read_profile(profile), accept_loss=frozenset(accept_loss or ()))
    started = dt.datetime.now()
    steps = run_term(job)
    table = Table(title=f"risk term at {job.as_of} ({(dt.datetime.now() - started).total_seconds():,.0f} s)")
    for column in ("step", "status", "seconds", "peak RSS MB", "in", "out", "CPU s"):
        table.add_column(column, justify="right" if column in ("seconds", "peak RSS MB", "CPU s") else "left")
    for s in steps:
        table.add_row(s.step, s.status, f"{s.seconds:,.1f}", f"{s.peak_rss_mb:,.0f}", s.rows_in, s.rows_out,
                      f"{s.cpu_seconds:,.1f}")
    table.add_row("total", "", f"{sum(s.seconds for s in steps):,.1f}",
                  f"{max((s.peak_rss_mb for s in steps), default=0):,.0f}", "", "",
                  f"{sum(s.cpu_seconds for s in steps):,.1f}")
    console.print(table)
    print_freshness_warnings(job.freshness)
