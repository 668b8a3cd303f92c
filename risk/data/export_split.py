"""Splitting an export of several terms into one export per term, as the terms would have arrived.

Used by tests and the demo to feed the incremental store term by term. Values are
copied as they are (CSV stays text, Parquet keeps its types), bad rows included:
the split decides only where each row goes, never whether it is valid.

Where a row goes (``terms`` sorted, each with its months from
:func:`risk.data.contract.term_window`):

* ``schools``: every export (each term's export carries the school list);
* ``calendar``, ``enrollments``, ``grades``: the export of the row's ``term`` when it is
  one of ``terms``; otherwise as a dated row (calendar by ``date``, grades by
  ``recorded_on``; an enrollment without a usable term goes to the first export);
* dated rows: the last term starting on or before the date, so a date between two
  terms goes to the earlier one, a date before the first term to the first and one
  after the last to the last; a missing or unreadable date goes to the first.

So every row lands in exactly one export (schools aside, which land in all).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from risk.data.contract import TABLE_ORDER, TABLES, Table, parse_term, term_window
from risk.data.reading import source_files
from risk.errors import ContractError

__all__ = ["export_terms", "split_export"]

# Columns a term-keyed table falls back on when its term is not one of the terms.
_FALLBACK_DATE = {"calendar": "date", "grades": "recorded_on", "enrollments": None}
# A term with fewer calendar rows than this share of the largest term's is a typing error, not a term.
_TERM_SHARE = 0.1
_BATCH_ROWS = 1_000_000


def export_terms(source: Path) -> list[str]:
    """The terms an export covers: those of its calendar (ignoring terms of only a few stray rows)."""
    counts: dict[str, int] = {}
    for path in source_files(source, TABLES["calendar"]):
        for batch in _batches(path):
            terms = batch.column("term").cast(pa.string()).drop_null()
            for item in pc.value_counts(terms).to_pylist():
                counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]
    valid = {t: n for t, n in counts.items() if _is_term(t)}
    if not valid:
        raise ContractError(f"{source}: the calendar names no term (YYYY-S), so the export cannot be split by term")
    largest = max(valid.values())
    return sorted((t for t, n in valid.items() if n >= _TERM_SHARE * largest), key=parse_term)


def split_export(source: Path, out_root: Path, terms: list[str] | None = None) -> list[Path]:
    """Write ``out_root/<term>/`` for each term, holding that term's rows of every table in ``source``.

    Each source file ``<table>/<name>`` becomes ``out_root/<term>/<table>/<name>`` (possibly
    with no rows), in the same format and row order.

    Returns
    -------
    folders : the per-term export folders, in term order.
    """
    terms = sorted(terms or export_terms(source), key=parse_term)
    starts = np.array([np.datetime64(term_window(t)[0], "D") for t in terms])
    folders = [out_root / t for t in terms]
    for name in TABLE_ORDER:
        table = TABLES[name]
        for path in source_files(source, table):
            _split_file(path, path.relative_to(source), table, terms, starts, folders)
    return folders


def _split_file(path: Path, relative: Path, table: Table, terms: list[str], starts: np.ndarray,
                folders: list[Path]) -> None:
    csv = path.suffix.lower() == ".csv"
    writers: list[pq.ParquetWriter | pacsv.CSVWriter] = []
    for folder in folders:
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        schema = _schema(path)
        writers.append(pacsv.CSVWriter(target, schema) if csv else pq.ParquetWriter(target, schema))
    try:
        for batch in _batches(path):
            where = _destination(batch, table, terms, starts)
            for k, writer in enumerate(writers):
                part = batch if where is None else batch.filter(pa.array(where == k))
                if part.num_rows:
                    writer.write(part)
    finally:
        for writer in writers:
            writer.close()


def _destination(batch: pa.RecordBatch, table: Table, terms: list[str], starts: np.ndarray) -> np.ndarray | None:
    """Index into ``terms`` of each row's export; None when every export takes every row."""
    if table.name == "schools":
        return None
    if table.name in _FALLBACK_DATE:
        fallback = _FALLBACK_DATE[table.name]
        by_date = _by_date(batch, fallback, starts) if fallback else np.zeros(batch.num_rows, dtype=np.int64)
        found = pc.index_in(batch.column("term").cast(pa.string()), value_set=pa.array(terms, pa.string()))
        by_term = found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        return np.where(by_term >= 0, by_term, by_date)
    return _by_date(batch, table.date_column, starts)


def _by_date(batch: pa.RecordBatch, column: str | None, starts: np.ndarray) -> np.ndarray:
    if column is None or column not in batch.schema.names:
        return np.zeros(batch.num_rows, dtype=np.int64)
    dates = _dates(batch.column(column))
    index = np.searchsorted(starts, dates, side="right") - 1
    # Before the first term → the first export; missing or unreadable (NaT) → the first too.
    return np.where(np.isnat(dates), 0, np.clip(index, 0, len(starts) - 1))


def _dates(values: pa.Array) -> np.ndarray:
    """Days as datetime64[D], NaT where missing or unreadable (text is read as YYYY-MM-DD)."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        values = pc.strptime(pc.utf8_trim_whitespace(values), format="%Y-%m-%d", unit="s", error_is_null=True)
    try:
        days = pc.cast(values, pa.date32())
    except pa.ArrowInvalid:
        return np.full(len(values), np.datetime64("NaT"), dtype="datetime64[D]")
    return days.to_numpy(zero_copy_only=False).astype("datetime64[D]")


def _is_term(text: str) -> bool:
    try:
        parse_term(text)
    except ValueError:
        return False
    return True


def _schema(path: Path) -> pa.Schema:
    if path.suffix.lower() == ".csv":
        return _csv_reader(path).schema
    return pq.ParquetFile(path).schema_arrow


def _batches(path: Path):  # noqa: ANN202 - an iterator of record batches
    if path.suffix.lower() == ".csv":
        yield from _csv_reader(path)
    else:
        yield from pq.ParquetFile(path).iter_batches(batch_size=_BATCH_ROWS)


def _csv_reader(path: Path) -> pacsv.CSVStreamingReader:
    # Every column as text, empty as empty: the rows are copied, not interpreted.
    with path.open(encoding="utf-8-sig") as handle:
        names = [c.strip().strip('"') for c in handle.readline().strip().split(",")]
    convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in names}, strings_can_be_null=True,
                                   null_values=[""])
    return pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=16 << 20), convert_options=convert)
