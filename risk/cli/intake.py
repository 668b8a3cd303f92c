"""Intake commands: inspect (a preflight of an export that writes nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table as RichTable

from risk.cli.common import app, console, errors, friendly

if TYPE_CHECKING:
    from risk.data.inspect import FileInspection, TableInspection
    from risk.data.profile import SourceProfile


@app.command("inspect")
@friendly
def inspect_export(
    source: Annotated[Path, typer.Argument(help="Folder of source exports (Parquet, CSV or Excel per table).")],
    profile: Annotated[Path | None, typer.Option(
        help="Source profile (YAML): header aliases, value maps, encoding, sheet, date order, era.")] = None,
) -> None:
    """Preflight an export: per table, the files, their format, encoding, dates, rows, column mapping and a
    sample of the values risk validate would reject. Writes nothing.
    """
    from risk.data.inspect import inspect_source
    from risk.data.profile import load_profile

    if not source.is_dir():
        raise typer.BadParameter(f"{source} is not a folder", param_hint="SOURCE")
    loaded = load_profile(profile) if profile is not None else None
    tables = inspect_source(source, loaded)
    for table in tables:
        _print_table(table, loaded)
    broken = [t for t in tables if t.error]
    if broken:
        first = broken[0].error
        more = f" ({len(broken) - 1} more table(s) above)" if len(broken) > 1 else ""
        errors.print(f"[bold red]error:[/] {first}{more}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2)
    console.print(f"{len(tables)} tables readable; nothing was written", highlight=False)


def _print_table(table: TableInspection, profile: SourceProfile | None) -> None:
    title = f"{table.table}: {len(table.files)} file(s)"
    if table.sampled:
        title += f", {table.rejected_rows:,} of the first {table.sampled:,} rows would be rejected"
    console.rule(title, align="left")
    if table.files:
        console.print(_files(table, profile))
        console.print(_columns(table))
    if table.rejected:
        console.print(_rejected(table))
    if table.error:
        console.print(f"[red]cannot be read:[/] {table.error}", highlight=False, soft_wrap=True)


def _files(table: TableInspection, profile: SourceProfile | None) -> RichTable:
    view = RichTable("file", "format", "encoding / sheet", "rows", "dates (order, era)", box=None)
    wanted = profile.table(table.table) if profile is not None else None
    for inspected in table.files:
        info = inspected.info
        rows = "?" if info.rows is None else f"{info.rows:,}"
        view.add_row(info.path, info.format, info.encoding or info.sheet or "", rows, _dates(inspected, wanted))
    return view


def _dates(inspected: FileInspection, wanted: object) -> str:
    parts = [f"{column}: {form.order}, {form.era}" for column, form in inspected.dates.items()]
    text = "; ".join(parts)
    order, era = getattr(wanted, "date_order", "auto"), getattr(wanted, "era", "auto")
    if parts and (order != "auto" or era != "auto"):
        text += f" (profile: {order}, {era})"
    return text


def _columns(table: TableInspection) -> RichTable | str:
    """Headers that differ from their contract column, unused headers and missing columns; the rest counted."""
    from risk.data.profile import clean_header

    view = RichTable("header in the file", "contract column", box=None)
    seen: set[tuple[str, str]] = set()
    by_name: set[str] = set()
    for inspected in table.files:
        info = inspected.info
        by_name |= {c for h, c in info.columns.items() if clean_header(h) == c}
        pairs = [(h, c) for h, c in info.columns.items() if clean_header(h) != c]
        pairs += [(h, "[dim]unused[/]") for h in info.unmapped] + [("[red]missing[/]", c) for c in info.missing]
        for pair in pairs:
            if pair not in seen:
                seen.add(pair)
                view.add_row(*pair)
    named = f"{len(by_name)} column(s) under their contract names"
    if not seen:
        return named
    if by_name:
        view.caption, view.caption_justify = named, "left"
    return view


def _rejected(table: TableInspection) -> RichTable:
    view = RichTable("file", "row", "column", "value", "rule", title="would be rejected (sample)",
                     title_justify="left", box=None)
    for r in table.rejected:
        view.add_row(r.file, str(r.row), r.column, r.value, r.rule)
    return view
