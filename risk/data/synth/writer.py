"""Part files: one Parquet (or CSV) file per table per student chunk.

A :class:`PartSink` appends batches to ``out_dir/<table>/part-NNNNN.<ext>``,
keeps the running row count (the manifest's ``row`` is the 0-based data row in
the file), and writes the duplicated rows of the error injection last, so each
duplicate is an exact copy appended after its original.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from risk.data.synth.frames import Batch, IdDictionary, arrow_schema, concat_batches, to_arrow

__all__ = ["PartSink", "part_path"]


def part_path(table: str, part: int, csv: bool) -> str:
    """Path of a part file relative to the output folder, e.g. ``grades/part-00003.csv``."""
    return f"{table}/part-{part:05d}.{'csv' if csv else 'parquet'}"


class PartSink:
    """Writes the batches of one table for one chunk.

    Parameters
    ----------
    out_dir : the run's output folder
    table : contract table name
    part : part number (the chunk index)
    csv : write CSV (UTF-8, header, ``,``, ISO dates) instead of Parquet
    row_group_rows, compression : Parquet settings
    """

    def __init__(self, out_dir: Path, table: str, part: int, *, csv: bool, row_group_rows: int,
                 compression: str) -> None:
        self.table = table
        self.csv = csv
        self.relpath = part_path(table, part, csv)
        self.path = Path(out_dir) / self.relpath
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.row_group_rows = row_group_rows
        self.compression = compression
        self.rows = 0
        self._writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
        self._schema: pa.Schema | None = None
        self._duplicates: list[Batch] = []

    def write(self, batch: Batch, ids: IdDictionary) -> int:
        """Append ``batch``; returns the file row number of its first row."""
        start = self.rows
        n = batch.n
        if n == 0:
            return start
        step = n if self.csv else self.row_group_rows
        for lo in range(0, n, step):
            part = batch if (lo == 0 and n <= step) else batch.slice(lo, min(lo + step, n))
            self._write_table(to_arrow(part, ids, plain=self.csv))
        self.rows += n
        return start

    def add_duplicates(self, batch: Batch) -> None:
        """Rows to append when the file is closed (exact copies of earlier rows)."""
        if batch.n:
            self._duplicates.append(batch)

    def close(self, ids: IdDictionary) -> tuple[int, int]:
        """Write the duplicates and close; returns (row of the first duplicate, number of duplicates)."""
        first = self.rows
        count = 0
        if self._duplicates:
            dup = concat_batches(self._duplicates) if len(self._duplicates) > 1 else self._duplicates[0]
            count = dup.n
            self.write(dup, ids)
        if self._writer is None:
            self._open_empty(ids)
        assert self._writer is not None
        self._writer.close()
        return first, count

    def _write_table(self, table: pa.Table) -> None:
        if self._writer is None:
            self._open(table.schema)
        elif not table.schema.equals(self._schema):
            table = table.cast(self._schema)
        assert self._writer is not None
        self._writer.write_table(table)

    def _open(self, schema: pa.Schema) -> None:
        self._schema = schema
        if self.csv:
            self._writer = pacsv.CSVWriter(str(self.path), schema)
        else:
            self._writer = pq.ParquetWriter(str(self.path), schema, compression=self.compression,
                                            store_schema=False)

    def _open_empty(self, ids: IdDictionary) -> None:
        self._open(arrow_schema(self.table))
