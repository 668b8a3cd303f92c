"""Reading source exports: Parquet or CSV, one file or a folder of files per table.

Files are streamed in record batches so that a national attendance table never
sits in memory whole. Every value is parsed into the contract's type here; a
value that cannot be parsed is reported (not guessed), so the validator can
quarantine its row with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from risk.data.contract import Table
from risk.errors import ContractError

__all__ = ["Chunk", "check_columns", "inspect_file", "iter_chunks", "parquet_chunks", "source_files", "typed_frame"]

SUFFIXES = (".parquet", ".csv")
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


@dataclass
class Chunk:
    """A batch of source rows parsed to contract types.

    ``frame`` has one column per contract column present (absent optional
    columns are added empty); ``row`` is each row's 0-based position in its
    file; ``bad_type`` maps a column to a boolean mask of values that were
    present but could not be parsed (e.g. ``"abc"`` in a number column).
    """

    file: str
    frame: pd.DataFrame
    row: np.ndarray
    bad_type: dict[str, np.ndarray]


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


def iter_chunks(path: Path, table: Table, chunk_rows: int, root: Path) -> Iterator[Chunk]:
    """Stream ``path`` in chunks of at most ``chunk_rows`` rows, parsed to contract types."""
    relative = str(path.relative_to(root))
    batches = _csv_batches(path, table) if path.suffix.lower() == ".csv" else _parquet_batches(path, table, chunk_rows)
    offset = 0
    for batch in _rebatch(batches, chunk_rows):
        frame, bad = typed_frame(batch, table)
        yield Chunk(relative, frame, np.arange(offset, offset + batch.num_rows, dtype=np.int64), bad)
        offset += batch.num_rows


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


def _rebatch(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Regroup batches so that each holds at most ``rows`` rows (CSV blocks vary in size)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        while count >= rows:
            merged = pa.Table.from_batches(pending).combine_chunks().to_batches()
            whole = merged[0] if merged else batch.slice(0, 0)
            yield whole.slice(0, rows)
            rest = whole.slice(rows)
            pending, count = ([rest] if rest.num_rows else []), rest.num_rows
    if count:
        merged = pa.Table.from_batches(pending).combine_chunks().to_batches()
        yield merged[0]


def typed_frame(batch: pa.RecordBatch | pa.Table, table: Table) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Parse every contract column of ``batch`` to its type; absent optional columns come back empty."""
    columns: dict[str, object] = {}
    bad: dict[str, np.ndarray] = {}
    names = batch.schema.names
    for column in table.columns:
        if column.name not in names:
            columns[column.name] = _empty(column.kind, batch.num_rows)
            continue
        values, failed = _parse(batch.column(column.name), column.kind)
        columns[column.name] = values
        if failed is not None and failed.any():
            bad[column.name] = failed
    return pd.DataFrame(columns), bad


def _empty(kind: str, n: int) -> pd.Series:
    dtype = {"date": "datetime64[ms]", "float": "float64", "int": "Float64", "bool": "boolean"}.get(kind, "str")
    return pd.Series(pd.array([None] * n, dtype=dtype))


def _parse(arr: pa.Array, kind: str) -> tuple[pd.Series | np.ndarray, np.ndarray | None]:
    """Parse one column to the contract kind; return the values and a mask of unparseable ones."""
    is_text = pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
    if kind in ("id", "text", "term"):
        text = arr if is_text else pc.cast(arr, pa.string())
        return pd.Series(pc.utf8_trim_whitespace(text).to_pandas(), dtype="str"), None
    if kind == "date":
        if is_text:
            parsed = pc.strptime(pc.utf8_trim_whitespace(arr), format="%Y-%m-%d", unit="s", error_is_null=True)
            failed = (pc.is_valid(arr).to_numpy(zero_copy_only=False) & ~pc.is_valid(parsed).to_numpy(zero_copy_only=False))
            arr = pc.cast(parsed, pa.date32())
        else:
            failed = None
            if pa.types.is_timestamp(arr.type):
                arr = pc.cast(arr, pa.date32())
        series = pd.Series(arr.to_pandas(date_as_object=False)).astype("datetime64[ms]")
        return series, failed
    if kind in ("float", "int"):
        if is_text:
            raw = pd.Series(arr.to_pandas(), dtype="str")
            numbers = pd.to_numeric(raw.str.strip(), errors="coerce")
            failed = (raw.notna() & numbers.isna()).to_numpy()
        else:
            numbers = pd.Series(arr.to_pandas())
            failed = None
        return numbers.astype("float64"), failed
    if kind == "bool":
        if pa.types.is_boolean(arr.type):
            return pd.Series(arr.to_pandas(), dtype="boolean"), None
        raw = pd.Series(pc.cast(arr, pa.string()).to_pandas(), dtype="str").str.strip().str.lower()
        mapped = pd.Series(pd.array([None] * len(raw), dtype="boolean"))
        mapped[raw.isin(_TRUE).to_numpy()] = True
        mapped[raw.isin(_FALSE).to_numpy()] = False
        failed = (raw.notna() & mapped.isna()).to_numpy()
        return mapped, failed
    raise ValueError(f"unknown column kind {kind!r}")
