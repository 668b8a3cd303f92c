"""``risk inspect``: a preflight of an export that writes nothing.

Per contract table it says which files were found and how each reads (format,
encoding or sheet, rows, file header → contract column, headers left unused,
required columns missing), how each date column is written (order and era, as
:func:`risk.data.values.describe_dates` tells them), and a sample of the values
``risk validate`` would reject, with their rules: the first rows of every file
go through the same parsing and the same row rules (without the checks against
other tables, which need a validated store). Raw student IDs are never shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from risk.data.contract import TABLE_ORDER, TABLES, Table
from risk.data.formats import FileInfo, describe_file, file_batches, source_files
from risk.data.ids import masked_id
from risk.data.profile import SourceProfile
from risk.data.quarantine import ROW, row_failures
from risk.data.schemas import References, build_schema
from risk.data.values import DateForm, DateOrderError, describe_dates, typed_frame
from risk.errors import ContractError

__all__ = ["FileInspection", "Rejected", "TableInspection", "inspect_source"]

# The first rows of each file are enough to see its dates and its typical faults
# without reading a national attendance table.
SAMPLE_ROWS = 10_000
# Rejected values shown per table.
SAMPLE_REJECTED = 5


@dataclass(frozen=True)
class Rejected:
    """One value ``risk validate`` would reject: where (``row`` is the 0-based data row, as in quarantine ``_row``), what, why."""

    file: str
    row: int
    column: str
    value: str
    rule: str


@dataclass
class FileInspection:
    """How one file reads (``info``), how its date columns are written, and what its first rows would lose."""

    info: FileInfo
    dates: dict[str, DateForm] = field(default_factory=dict)
    sampled: int = 0
    rejected_rows: int = 0


@dataclass
class TableInspection:
    """One table of the export; ``error`` is the one sentence saying why it cannot be read, if it cannot."""

    table: str
    files: list[FileInspection] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    error: str | None = None

    @property
    def sampled(self) -> int:
        return sum(f.sampled for f in self.files)

    @property
    def rejected_rows(self) -> int:
        return sum(f.rejected_rows for f in self.files)


def inspect_source(source_dir: Path, profile: SourceProfile | None = None, *,
                   sample_rows: int = SAMPLE_ROWS) -> list[TableInspection]:
    """Inspect every contract table of ``source_dir``, in contract order; nothing is written.

    A table that cannot be read (no file, unreadable, columns missing, dates whose order
    cannot be told) comes back with ``error`` set; the others are still inspected.
    """
    return [_inspect_table(source_dir, TABLES[name], profile, sample_rows) for name in TABLE_ORDER]


def _inspect_table(source_dir: Path, table: Table, profile: SourceProfile | None,
                   sample_rows: int) -> TableInspection:
    result = TableInspection(table.name)
    try:
        paths = source_files(source_dir, table)
    except ContractError as error:
        result.error = str(error)
        return result
    for path in paths:
        try:
            info = describe_file(path, table, profile, count_rows=True, root=source_dir)
        except ContractError as error:
            result.error = result.error or str(error)
            continue
        inspected = FileInspection(info)
        result.files.append(inspected)
        if info.missing:
            result.error = result.error or _missing_sentence(path, table, info)
            continue
        try:
            rejected = _sample(path, table, profile, sample_rows, inspected)
        except ContractError as error:
            result.error = result.error or str(error)
            continue
        result.rejected += rejected[: SAMPLE_REJECTED - len(result.rejected)]
    return result


def _missing_sentence(path: Path, table: Table, info: FileInfo) -> str:
    hint = f"; map its headers under tables.{table.name}.columns in a source profile" if info.unmapped else ""
    return (f"{path}: table {table.name!r} is missing required column(s) {', '.join(info.missing)}"
            f"{hint}; `risk contract` lists each table's columns")


def _sample(path: Path, table: Table, profile: SourceProfile | None, sample_rows: int,
            inspected: FileInspection) -> list[Rejected]:
    """Parse and check the first ``sample_rows`` rows of ``path``; fill ``inspected``; return what they would lose."""
    batches = file_batches(path, table, sample_rows, profile)
    try:
        first = next(batches, None)
    finally:
        batches.close()  # the rest of the file is not read
    if first is None:
        return []
    batch = first.slice(0, sample_rows)
    inspected.sampled = batch.num_rows
    inspected.dates = {c.name: describe_dates(batch.column(c.name)) for c in table.columns
                       if c.kind == "date" and c.name in batch.schema.names}
    options = profile.options_for(table.name) if profile is not None else None
    try:
        frame, bad = typed_frame(batch, table, source="export", options=options)
    except DateOrderError as error:
        raise ContractError(f"{path}: {error}") from None
    failures = row_failures(build_schema(table, References()), frame, bad)
    inspected.rejected_rows = int(failures["row"].nunique())
    return [Rejected(inspected.info.path, int(row), column, _shown(batch, column, int(row)), rule)
            for row, column, rule in failures.sort_values("row", kind="stable")
            .head(SAMPLE_REJECTED)[["row", "column", "rule"]].itertuples(index=False)]


def _shown(batch: pa.RecordBatch, column: str, row: int) -> str:
    """The value as the file holds it (after the profile's maps); a student ID masked."""
    if column == ROW or column not in batch.schema.names:
        return ""
    raw = batch.column(column)[row].as_py()
    if raw is None:
        return ""
    return masked_id(str(raw)) if column == "student_id" else str(raw)
