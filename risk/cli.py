"""``risk``: the command line. A thin shell over the package; each command's work lives in its module.

Every command has ``--help``; bad input ends with one clear sentence on stderr and
a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from risk.errors import RiskError
from risk.logs import configure_logging

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
    demo: DemoOption = False,
    quiet: QuietOption = False,
) -> None:
    """Check an export against the contract; pseudonymise IDs; quarantine bad rows with their reasons."""
    from risk.config import load_settings
    from risk.data.validate import validate_sources

    if not source.is_dir():
        raise typer.BadParameter(f"{source} is not a folder", param_hint="SOURCE")
    data = load_settings(settings).data
    report = validate_sources(source, out, key=_id_key(demo), chunk_rows=data.chunk_rows, buckets=data.student_buckets,
                              memory_limit=data.duckdb_memory_limit, workers=workers or data.workers,
                              progress=not quiet)
    for line in report.summary_lines():
        console.print(line, highlight=False)
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


