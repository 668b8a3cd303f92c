"""What every command shares: the Typer app, the consoles, common options and the error wrapper."""

from __future__ import annotations

import datetime as dt
import functools
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

# Typer 0.29 carries its own copy of click; its exceptions are only reachable here (the version is pinned).
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from risk.errors import RiskError

if TYPE_CHECKING:
    from risk.data.profile import SourceProfile
from risk.logs import configure_logging

errors = Console(stderr=True)
# pandera imports pyspark.pandas whenever pyspark is installed (the Spark engine), which warns about
# pandas 3 on every command that validates: an error must stay one sentence on stderr.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)


class OneSentenceErrors(TyperGroup):
    """Usage errors as one sentence on stderr (README's promise), not Typer's framed box.

    Click is run without its own error handling; what it would have framed is printed
    here as ``error: … (risk CMD --help)`` with the same exit code (2 for usage).
    """

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except NoArgsIsHelpError as error:
            assert error.ctx is not None
            print(error.ctx.get_help())
            sys.exit(0)
        except UsageError as error:
            where = f" (see `{error.ctx.command_path} --help`)" if error.ctx is not None else ""
            errors.print(f"[bold red]error:[/] {error.format_message()}{where}", highlight=False, soft_wrap=True)
            sys.exit(error.exit_code)
        except ClickException as error:
            errors.print(f"[bold red]error:[/] {error.format_message()}", highlight=False, soft_wrap=True)
            sys.exit(error.exit_code)
        except typer.Abort:
            errors.print("aborted", highlight=False)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    cls=OneSentenceErrors,
    name="risk",
    help="Early-warning engine for Thai students at risk of dropping out (EEF / OBEC).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
F = TypeVar("F", bound=Callable[..., object])

REPO_CONFIGS = Path(__file__).resolve().parent.parent.parent / "configs"
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


def pseudonym_key(demo: bool) -> bytes:
    """The pseudonym key from RISK_ID_KEY, or the public demo key (with a loud warning) under --demo."""
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


def parse_date(text: str, option: str) -> dt.date:
    """A YYYY-MM-DD option value, or a clear error naming the option."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date YYYY-MM-DD", param_hint=option) from None


ProfileOption = Annotated[Path | None, typer.Option(
    help="Source profile (YAML): Thai headers, value words, encodings, sheets, date order and era of the "
         "export's files (see `risk contract`).")]


def read_profile(path: Path | None) -> SourceProfile | None:
    """The source profile at ``path``, or None; a fault is one sentence naming the file."""
    from risk.data.profile import load_profile

    return load_profile(path) if path is not None else None


TrackingDirOption = Annotated[Path | None, typer.Option(
    help="Folder of the local MLflow store (default: the parent of --data); MLFLOW_TRACKING_URI wins.")]
StoreOption = Annotated[str | None, typer.Option(
    "--store", envvar="RISK_STORE_URL",
    help="Database URL of the store (default: SQLite risk.db beside the validated folder).")]


def open_data_store(url: str | None, data: Path) -> object:
    """The store at ``url``, or the SQLite store beside the validated folder ``data``."""
    from risk.store import default_store_url, open_store

    return open_store(url or default_store_url(data.resolve().parent))
