"""Validated part files written from the staged buckets by Arrow, one row group at a time.

The duplicate pass (:mod:`risk.data.duplicates`) decides which staged rows are left
out; the rest are copied here into the batch's validated files: one file per bucket
folder (and per term folder for attendance), row groups of :data:`ROW_GROUP_ROWS`,
each column cast to its contract type. DuckDB's partitioned COPY of the same rows
cost twice the CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from risk.data.contract import Table

__all__ = ["ROW_GROUP_ROWS", "by_bucket", "write_buckets"]

# Rows per row group of the validated files: DuckDB's default, which the files were written with before.
ROW_GROUP_ROWS = 122_880
# The Arrow type of each contract kind in the validated files (DuckDB's BIGINT, DATE, VARCHAR, ...).
_ARROW_TYPES = {"id": pa.string(), "text": pa.string(), "term": pa.string(), "date": pa.date32(),
                "float": pa.float64(), "int": pa.int64(), "bool": pa.bool_()}


def by_bucket(files: list[Path]) -> dict[str, list[Path]]:
    """Staged files by their bucket folder (``bucket=N``): rows with one key are in one bucket."""
    folders: dict[str, list[Path]] = {}
    for path in files:
        folders.setdefault(path.parent.name, []).append(path)
    return folders


def write_buckets(table: Table, columns: list[str], files: list[Path], left_out: pd.DataFrame, target: Path,
                  batch: str) -> None:
    """Write the staged rows of ``files`` but ``left_out`` (``_file``, ``_row``) as the batch's validated files.

    Staged files are already split by bucket (``bucket=N``), as the validated table is;
    attendance is split again by term. One file ``part-<batch>-0.parquet`` per folder,
    row groups of :data:`ROW_GROUP_ROWS`, ``columns`` (the validated table's) with their
    contract types; nothing is written for a folder without rows. Each staged file comes
    from one source file, so its left-out rows are a set of ``_row`` numbers. Read and
    written by Arrow one row group at a time: DuckDB's partitioned COPY of the same rows
    cost twice the CPU.
    """
    target.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([(c, _arrow_type(table, c)) for c in columns])
    by_term = table.name == "attendance_daily"
    dropped = {str(f): g["_row"].to_numpy(np.int64) for f, g in left_out.groupby("_file", observed=True)}
    for bucket, paths in by_bucket(files).items():
        with _PartWriters(target / bucket, f"part-{batch}-0.parquet", schema, by_term) as out:
            for path in paths:
                parquet = pq.ParquetFile(path)
                for group in range(parquet.num_row_groups):
                    rows = parquet.read_row_group(group)
                    if rows.num_rows == 0:
                        continue
                    drop = dropped.get(rows.column("_file")[0].as_py())
                    if drop is not None:
                        rows = rows.filter(pa.array(~np.isin(rows.column("_row").to_numpy(), drop)))
                    out.write(rows)


def _arrow_type(table: Table, name: str) -> pa.DataType:
    if name == "student_key":
        return pa.int64()
    return _ARROW_TYPES[table.column(name).kind] if name in table.column_names else pa.string()


class _PartWriters:
    """One Parquet file per folder (``term=T`` folders for attendance), rows gathered into full row groups."""

    def __init__(self, folder: Path, name: str, schema: pa.Schema, by_term: bool) -> None:
        self.folder, self.name, self.by_term = folder, name, by_term
        self.schema = pa.schema([f for f in schema if f.name != "term"]) if by_term else schema
        self.pending: dict[str, list[pa.Table]] = {}
        self.writers: dict[str, pq.ParquetWriter] = {}

    def __enter__(self) -> _PartWriters:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                for part in list(self.pending):
                    self._flush(part, last=True)
        finally:
            for writer in self.writers.values():
                writer.close()

    def write(self, rows: pa.Table) -> None:
        if not self.by_term:
            self._add("", rows)
            return
        terms = pc.cast(rows.column("term"), pa.string())
        for term in pc.unique(terms).to_pylist():
            self._add(f"term={term}", rows.filter(pc.equal(terms, term)))

    def _add(self, part: str, rows: pa.Table) -> None:
        columns = [pc.cast(rows.column(f.name), f.type) for f in self.schema]
        pending = self.pending.setdefault(part, [])
        pending.append(pa.table(columns, schema=self.schema))
        if sum(t.num_rows for t in pending) >= ROW_GROUP_ROWS:
            self._flush(part, last=False)

    def _flush(self, part: str, *, last: bool) -> None:
        rows = pa.concat_tables(self.pending.pop(part, []))
        whole = rows.num_rows if last else rows.num_rows - rows.num_rows % ROW_GROUP_ROWS
        if whole:
            if part not in self.writers:
                folder = self.folder / part if part else self.folder
                folder.mkdir(parents=True, exist_ok=True)
                self.writers[part] = pq.ParquetWriter(folder / self.name, self.schema, compression="zstd")
            self.writers[part].write_table(rows.slice(0, whole), row_group_size=ROW_GROUP_ROWS)
        if whole < rows.num_rows:
            self.pending[part] = [rows.slice(whole)]
