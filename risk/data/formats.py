"""Source files: which files hold a table, and their rows as Arrow record batches.

A file's format is told by its suffix; CSV is read as text throughout (the
contract types are applied by :mod:`risk.data.values`, so one bad value costs one
row, not the file). Everything streams: a national attendance table never sits
in memory whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from risk.data.contract import Table
from risk.errors import ContractError

__all__ = ["SUFFIXES", "check_columns", "file_batches", "inspect_file", "parquet_chunks", "source_files"]

SUFFIXES = (".parquet", ".csv")


def source_files(source_dir: Path, table: Table) -> list[Path]:
    """The files holding ``table`` in ``source_dir``: ``<table>.parquet|csv`` or ``<table>/*``.

    Raises ContractError when there is none.
    """
    candidates = [source_dir / f"{table.name}{s}" for s in SUFFIXES]
    files = [p for p in candidates if p.is_file()]
    folder = source_dir / table.name
    if folder.is_dir():
        files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    if not files:
        raise ContractError(
            f"no file for table {table.name!r} in {source_dir}: expected {table.name}.parquet, "
            f"{table.name}.csv or a folder {table.name}/ of such files"
        )
    return files


def inspect_file(path: Path, table: Table) -> int | None:
    """Check that ``path`` can be read and has ``table``'s required columns; return its row count if known.

    Raises ContractError naming the file and the missing columns.
    """
    if path.suffix.lower() == ".csv":
        check_columns(path, table, _csv_header(path))
        return None
    parquet = _open_parquet(path)
    check_columns(path, table, parquet.schema_arrow.names)
    return parquet.metadata.num_rows


def file_batches(path: Path, table: Table, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """The contract columns of ``path`` as record batches (CSV: all text; Parquet: as stored)."""
    if path.suffix.lower() == ".csv":
        return _csv_batches(path, table)
    return _parquet_batches(path, table, chunk_rows)


def parquet_chunks(parquet: pq.ParquetFile, columns: list[str], chunk_rows: int) -> Iterator[pa.Table]:
    """``columns`` of the file in order, as tables of whole row groups adding up to about ``chunk_rows`` rows.

    Reading several row groups at once lets Arrow decode them on all cores; ``iter_batches``
    decodes one group at a time (~4× slower on a file of 32 groups). A group larger than
    ``chunk_rows`` is read whole.
    """
    meta = parquet.metadata
    group, groups = 0, meta.num_row_groups
    while group < groups:
        last, rows = group, meta.row_group(group).num_rows
        while last + 1 < groups and rows + meta.row_group(last + 1).num_rows <= chunk_rows:
            last += 1
            rows += meta.row_group(last).num_rows
        yield parquet.read_row_groups(range(group, last + 1), columns=columns, use_threads=True)
        group = last + 1


def check_columns(path: Path, table: Table, found: list[str]) -> None:
    missing = [c for c in table.required_names if c not in found]
    if missing:
        raise ContractError(
            f"{path}: table {table.name!r} is missing required column(s) {', '.join(missing)}; "
            f"found {', '.join(found) or 'no columns'}"
        )


def _parquet_batches(path: Path, table: Table, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    parquet = _open_parquet(path)
    found = parquet.schema_arrow.names
    check_columns(path, table, found)
    wanted = [c for c in table.column_names if c in found]
    try:
        yield from parquet.iter_batches(batch_size=chunk_rows, columns=wanted)
    except (pa.ArrowException, OSError) as exc:
        raise ContractError(f"{path}: Parquet file is damaged ({exc})") from exc


def _open_parquet(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise ContractError(f"{path}: cannot read as Parquet ({exc})") from exc


def _csv_header(path: Path) -> list[str]:
    try:
        with path.open("rb") as handle:
            header = handle.readline().decode("utf-8-sig").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"{path}: cannot read as UTF-8 CSV ({exc})") from exc
    return [c.strip().strip('"') for c in header.split(",")] if header else []


def _csv_batches(path: Path, table: Table) -> Iterator[pa.RecordBatch]:
    # Everything is read as text: the contract types are applied per column below,
    # so one bad value costs one row, not the file.
    found = _csv_header(path)
    check_columns(path, table, found)
    wanted = [c for c in table.column_names if c in found]
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in found},
        include_columns=wanted,
        strings_can_be_null=True,
        null_values=[""],
    )
    read = pacsv.ReadOptions(block_size=16 << 20, encoding="utf8")
    try:
        reader = pacsv.open_csv(path, read_options=read, convert_options=convert)
        yield from reader
    except (pa.ArrowException, OSError) as exc:
        raise ContractError(f"{path}: cannot read as CSV ({exc})") from exc
