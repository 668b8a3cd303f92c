"""``risk``: the command line. A thin shell over the package; each command's work lives in its module.

Every command has ``--help``; bad input ends with one clear sentence on stderr and
a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

from risk.errors import RiskError
from risk.logs import configure_logging

if TYPE_CHECKING:  # imported lazily at run time, like every command's module
    from risk.models.train import TrainingResult

app = typer.Typer(
    name="risk",
    help="Early-warning engine for Thai students at risk of dropping out (EEF / OBEC).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., object])

REPO_CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DemoOption = Annotated[
    bool, typer.Option("--demo", help="Use the public, labelled demo pseudonym key (synthetic data only).")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def friendly(func: F) -> F:
    """Turn a RiskError into one line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return func(*args, **kwargs)
        except RiskError as error:
            errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def _id_key(demo: bool) -> bytes:
    from risk.data.ids import DEMO_KEY, id_key_from_env

    key = id_key_from_env(demo=demo)
    if key == DEMO_KEY:
        errors.print(
            "[bold yellow]WARNING: using the PUBLIC DEMO pseudonym key. Pseudonyms made with it protect "
            "nothing: synthetic data only. Set RISK_ID_KEY for real data.[/]"
        )
    return key


@app.callback()
def main(log_level: Annotated[str, typer.Option(help="Log level: DEBUG, INFO, WARNING.")] = "WARNING") -> None:
    configure_logging(log_level)


@app.command()
@friendly
def synth(
    out: Annotated[Path, typer.Option(help="Folder to write the synthetic export into.")] = Path("data/source"),
    students: Annotated[int, typer.Option(min=100, help="Students in the first term.")] = 20_000,
    terms: Annotated[int, typer.Option(min=2, max=12, help="Consecutive terms ending at --last-term.")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same data.")] = 7,
    last_term: Annotated[str, typer.Option(help="Last term, Buddhist-Era YYYY-S.")] = "2569-1",
    config: Annotated[Path, typer.Option(help="Generator settings (YAML).")] = REPO_CONFIGS / "synth.yaml",
    quiet: QuietOption = False,
) -> None:
    """Write a synthetic national export that follows the data contract, with a hidden oracle."""
    from risk.data.synth import SynthConfig, generate

    report = generate(out, students=students, terms=terms, seed=seed, last_term=last_term,
                      config=SynthConfig.from_yaml(config), progress=not quiet)
    for line in report.summary_lines():
        console.print(line, highlight=False)
    console.print(f"written to {out}", highlight=False)


@app.command()
@friendly
def validate(
    source: Annotated[Path, typer.Argument(help="Folder of source exports (Parquet or CSV per table).")],
    out: Annotated[Path, typer.Argument(help="Folder for validated Parquet, quarantine and the report.")],
    settings: Annotated[Path, typer.Option(help="Settings (YAML): chunk size, buckets, workers.")] = (
        REPO_CONFIGS / "risk.yaml"),
    workers: Annotated[int | None, typer.Option(min=1, help="Processes for the row rules (default: settings).")] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Start OUT again from this export, instead of adding it to the tables OUT holds.")] = False,
    demo: DemoOption = False,
    quiet: QuietOption = False,
) -> None:
    """Check an export against the contract; pseudonymise IDs; quarantine bad rows with their reasons.

    When OUT already holds validated tables, the export is added to them (rows already
    there are quarantined as duplicates; an export validated before is skipped).
    """
    from risk.config import load_settings
    from risk.data.validate import validate_sources

    if not source.is_dir():
        raise typer.BadParameter(f"{source} is not a folder", param_hint="SOURCE")
    data = load_settings(settings).data
    report = validate_sources(source, out, key=_id_key(demo), chunk_rows=data.chunk_rows, buckets=data.student_buckets,
                              memory_limit=data.duckdb_memory_limit, workers=workers or data.workers,
                              progress=not quiet, replace=replace)
    for line in report.summary_lines():
        console.print(line, highlight=False)
    if not report.skipped:
        console.print(f"validated tables in {out}, rejected rows in {out / 'quarantine'}", highlight=False)


@app.command()
@friendly
def features(
    as_of: Annotated[str, typer.Option("--as-of", help="Point in time, YYYY-MM-DD: only rows dated on or before it count.")],
    data: Annotated[Path, typer.Option(help="Validated folder (from risk validate).")] = Path("data/validated"),
    out: Annotated[Path, typer.Option(help="Feature matrix to write (Parquet).")] = Path("data/features.parquet"),
    catalog: Annotated[Path | None, typer.Option(help="Feature catalog (YAML); default from settings.")] = None,
    settings: Annotated[Path, typer.Option(help="Settings (YAML).")] = REPO_CONFIGS / "risk.yaml",
    quiet: QuietOption = False,
) -> None:
    """Build the point-in-time feature matrix of every enrolled student."""
    from risk.config import load_settings
    from risk.features.batch import build_feature_matrix
    from risk.features.catalog import load_catalog

    point = _date(as_of, "--as-of")
    loaded = load_settings(settings)
    chosen = load_catalog(catalog or loaded.resolve(loaded.features.catalog))
    report = build_feature_matrix(data, point, out, settings=loaded, catalog=chosen, progress=not quiet)
    for line in report.summary_lines():
        console.print(line, highlight=False)


def _date(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date YYYY-MM-DD", param_hint=option) from None


@app.command()
def contract() -> None:
    """Print the source data contract (tables, columns, rules, quarantine reasons) as Markdown."""
    from risk.data.docs import contract_markdown

    print(contract_markdown())




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
    key = _id_key(demo) if truth is not None else None
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


StoreOption = Annotated[str | None, typer.Option(
    "--store", envvar="RISK_STORE_URL",
    help="Database URL of the store (default: SQLite risk.db beside the validated folder).")]


def _store(url: str | None, data: Path) -> object:
    from risk.store import default_store_url, open_store

    return open_store(url or default_store_url(data.resolve().parent))


@app.command()
@friendly
def score(
    as_of: Annotated[str, typer.Option("--as-of", help="Point in time, YYYY-MM-DD.")],
    data: Annotated[Path, typer.Option(help="Validated folder (from risk validate).")] = Path("data/validated"),
    model: Annotated[str, typer.Option(help="Registry alias (champion, challenger) or version number.")] = "champion",
    out: Annotated[Path, typer.Option(help="Scores to write (Parquet).")] = Path("data/scores.parquet"),
    store: StoreOption = None,
    catalog: Annotated[Path | None, typer.Option(
        help="Feature catalog to check against the model's (default: the model's own).")] = None,
    config: Annotated[Path, typer.Option("--config", help="Scoring settings (YAML).")] = REPO_CONFIGS / "scoring.yaml",
    train_config: Annotated[Path, typer.Option(help="Training settings (model name).")] = REPO_CONFIGS / "train.yaml",
    settings: Annotated[Path, typer.Option(help="Settings (YAML).")] = REPO_CONFIGS / "risk.yaml",
    tracking_dir: Annotated[Path | None, typer.Option(
        help="Folder of the local MLflow store (default: the parent of --data); MLFLOW_TRACKING_URI wins.")] = None,
    quiet: QuietOption = False,
) -> None:
    """Score every enrolled student with reasons; store scores, alerts and area summaries (resumable)."""
    from risk.config import load_settings
    from risk.features.batch import buckets_of
    from risk.features.catalog import load_catalog
    from risk.models.settings import load_train_settings
    from risk.models.tracking import configure_tracking, resolve_model
    from risk.scoring.batch import score_students
    from risk.scoring.settings import load_scoring_settings

    point = _date(as_of, "--as-of")
    buckets_of(data)  # a clear sentence when the folder is not validated data
    scoring = load_scoring_settings(config)
    name = load_train_settings(train_config).mlflow.model_name
    configure_tracking(tracking_dir or data.resolve().parent)
    version, bundle = resolve_model(name, model)
    if catalog is not None:
        bundle.check_catalog(load_catalog(catalog))
    report = score_students(data, point, bundle=bundle, model_name=name, model_version=version,
                            store=_store(store, data), out=out, settings=load_settings(settings), scoring=scoring,
                            progress=not quiet)
    for line in report.summary_lines():
        console.print(line, highlight=False)


@app.command()
@friendly
def report(
    out: Annotated[Path, typer.Option(help="Report to write (one HTML file).")] = Path("data/report.html"),
    data: Annotated[Path, typer.Option(help="Validated folder (locates the default store).")] = Path("data/validated"),
    store: StoreOption = None,
    run: Annotated[str | None, typer.Option(help="Scoring run id (default: the newest finished run).")] = None,
) -> None:
    """Write the term report (HTML with map and charts, Thai and English) of a scoring run."""
    from risk.scoring.term_report import term_report

    path = term_report(_store(store, data), out, run)
    console.print(f"report written to {path}", highlight=False)


@app.command()
@friendly
def term(
    source: Annotated[Path, typer.Option(help="The term's export (Parquet or CSV per table).")],
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
    job = TermJob(source=source, as_of=_date(as_of, "--as-of"), data_dir=store, id_key=_id_key(demo),
                  settings=loaded, train_settings=load_train_settings(train_config),
                  scoring=load_scoring_settings(scoring_config), catalog=load_catalog(catalog_path),
                  catalog_yaml=catalog_path.read_bytes(), store_url=store_url, truth=truth, progress=not quiet)
    started = dt.datetime.now()
    steps = run_term(job)
    table = Table(title=f"risk term at {job.as_of} ({(dt.datetime.now() - started).total_seconds():,.0f} s)")
    for column in ("step", "status", "seconds", "peak RSS MB", "in", "out"):
        table.add_column(column, justify="right" if column in ("seconds", "peak RSS MB") else "left")
    for s in steps:
        table.add_row(s.step, s.status, f"{s.seconds:,.1f}", f"{s.peak_rss_mb:,.0f}", s.rows_in, s.rows_out)
    table.add_row("total", "", f"{sum(s.seconds for s in steps):,.1f}",
                  f"{max((s.peak_rss_mb for s in steps), default=0):,.0f}", "", "")
    console.print(table)


ServeConfigOption = Annotated[Path, typer.Option("--config", help="Service settings (YAML).")]


@app.command()
@friendly
def serve(
    config: ServeConfigOption = REPO_CONFIGS / "serve.yaml",
    data: Annotated[Path | None, typer.Option(help="Validated folder (default: from the settings).")] = None,
    store: StoreOption = None,
    tracking_dir: Annotated[Path | None, typer.Option(
        help="Folder of the local MLflow store and model cache; MLFLOW_TRACKING_URI wins.")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: from the settings).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default: from the settings).")] = None,
    demo: DemoOption = False,
) -> None:
    """Run the API and the teacher page (uvicorn) on the champion model, with keys, audit and metrics."""
    import uvicorn

    from risk.serve.app import create_app
    from risk.serve.settings import load_serve_settings

    overrides = {k: v for k, v in {"data": data, "store_url": store, "tracking_dir": tracking_dir, "host": host,
                                   "port": port}.items() if v is not None}
    if demo:
        overrides["demo_key"] = True
    settings = load_serve_settings(config, **overrides)
    application = create_app(settings, id_key=_id_key(settings.demo_key))
    if application.state.services.holder.current is None:
        errors.print("[bold yellow]WARNING: no model yet (registry and cache empty): /readyz says not ready "
                     "until a champion is promoted.[/]")
    console.print(f"serving on http://{settings.host}:{settings.port} (docs at /docs, teacher page at /teacher)",
                  highlight=False)
    # No access log: a request line can hold a student ID in its path; latency goes to /metrics by route.
    uvicorn.run(application, host=settings.host, port=settings.port, access_log=False, log_level="warning")


keys_app = typer.Typer(help="API keys of the service: create (token shown once), list, revoke.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
@friendly
def keys_create(
    role: Annotated[str, typer.Option(help="upstream, teacher, analyst or admin.")],
    school: Annotated[str | None, typer.Option(help="The teacher's school id (teacher keys only).")] = None,
    label: Annotated[str, typer.Option(help="What the key is for (a system or a role, not a child).")] = "",
    data: Annotated[Path, typer.Option(help="Validated folder (locates the default store).")] = Path("data/validated"),
    store: StoreOption = None,
) -> None:
    """Create a key and print its token once: it is stored only as a hash and cannot be shown again."""
    from risk.store import create_key

    new = create_key(_store(store, data), role, school_id=school, label=label)
    console.print(f"key {new.record.key_id} ({new.record.role}"
                  f"{', school ' + new.record.school_id if new.record.school_id else ''}) created; its token "
                  "(shown once, keep it secret):", highlight=False)
    print(new.token)


@keys_app.command("list")
@friendly
def keys_list(
    data: Annotated[Path, typer.Option(help="Validated folder (locates the default store).")] = Path("data/validated"),
    store: StoreOption = None,
) -> None:
    """List keys: id, role, school, label, created, revoked."""
    from risk.store import list_keys

    for k in list_keys(_store(store, data)):
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        console.print(f"{k.key_id}  {k.role:<8} {k.school_id or '-':<10}  {k.created_at:%Y-%m-%d %H:%M}  {state}  "
                      f"{k.label}", highlight=False)


@keys_app.command("revoke")
@friendly
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `risk keys list`).")],
    data: Annotated[Path, typer.Option(help="Validated folder (locates the default store).")] = Path("data/validated"),
    store: StoreOption = None,
) -> None:
    """Revoke a key: the service refuses it within its key cache time (configs/serve.yaml)."""
    from risk.store import revoke_key

    record = revoke_key(_store(store, data), key_id)
    console.print(f"key {record.key_id} revoked at {record.revoked_at:%Y-%m-%d %H:%M:%S} UTC", highlight=False)


@app.command("split-export")
@friendly
def split_export_command(
    source: Annotated[Path, typer.Argument(help="Folder of an export covering several terms.")],
    out: Annotated[Path, typer.Argument(help="Folder to write one export per term into (OUT/<term>/).")],
    terms: Annotated[list[str] | None, typer.Option(
        "--term", help="A term to split into, YYYY-S (repeat; default: the terms of the calendar).")] = None,
) -> None:
    """Split an export into one export per term, so that terms can be validated one by one (tests, demo)."""
    from risk.data.split import split_export

    if not source.is_dir():
        raise typer.BadParameter(f"{source} is not a folder", param_hint="SOURCE")
    for folder in split_export(source, out, terms or None):
        console.print(f"{folder.name}: {folder}", highlight=False)
