"""Field-style files: CSV in a chosen encoding, and Excel workbooks split at the sheet's row limit.

Both take rows batch by batch, so a national attendance table streams through
without being held whole. Clean part files are read by :func:`clean_batches` in
the contract's Arrow types, whatever their format.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from risk.data.synth.frames import arrow_schema
from risk.data.synth.xlsx import Xlsx

__all__ = ["EXCEL_MAX_ROWS", "EncodedCsv", "Piece", "XlsxParts", "clean_batches"]

# Rows of an Excel sheet (1,048,576) less the header row.
EXCEL_MAX_ROWS = 1_048_575
ENCODINGS = ("utf-8", "utf-8-sig", "cp874")
Piece = tuple[str, int, int]  # (file relative to the export, first clean row it holds, rows)


def clean_batches(path: Path, table: str, rows: int) -> Iterator[pa.RecordBatch]:
    """The rows of a clean part file (Parquet or CSV) in the contract's Arrow types, ``rows`` at a time."""
    schema = arrow_schema(table)
    if path.suffix == ".csv":
        convert = pacsv.ConvertOptions(column_types={f.name: f.type for f in schema}, strings_can_be_null=True,
                                       null_values=[""])
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=16 << 20),
                                convert_options=convert)
        batches: Iterable[pa.RecordBatch] = reader
    else:
        batches = pq.ParquetFile(path).iter_batches(batch_size=rows)
    for batch in batches:
        if batch.num_rows:
            yield pa.Table.from_batches([batch]).select(schema.names).cast(schema).combine_chunks().to_batches()[0]


class EncodedCsv:
    """A CSV file written table by table in ``encoding``: ``utf-8``, ``utf-8-sig`` (with BOM) or ``cp874``.

    Arrow writes UTF-8; each batch is transcoded on its own, so memory stays at one batch.
    """

    def __init__(self, path: Path, encoding: str) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"{path}: encoding {encoding!r} is not one of {', '.join(ENCODINGS)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.encoding = path, encoding
        self._handle = path.open("wb")
        self._header = True

    def write(self, table: pa.Table) -> None:
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=self._header, quoting_style="needed"))
        data = sink.getvalue().to_pybytes()
        if self.encoding == "cp874":
            try:
                data = data.decode("utf-8").encode("cp874")
            except UnicodeEncodeError as exc:
                raise ValueError(f"{self.path}: {exc.object[exc.start:exc.end]!r} has no cp874 (TIS-620) "
                                 "code") from exc
        elif self.encoding == "utf-8-sig" and self._header:
            data = codecs.BOM_UTF8 + data
        self._handle.write(data)
        self._header = False

    def close(self) -> None:
        self._handle.close()


class XlsxParts:
    """The rows of one clean part file as workbooks of at most ``max_rows`` data rows.

    One workbook is ``<stem>.xlsx``; when the rows need more, they are
    ``<stem>-01.xlsx``, ``<stem>-02.xlsx`` … (names that sort in row order, so
    "earlier in the export" means the same as in the clean part). ``cover`` puts a
    note sheet before the data sheet, as DMC exports have. ``numbers`` names the text
    columns whose codes of digits go in number cells (:class:`risk.data.synth.xlsx.Xlsx`).
    """

    def __init__(self, folder: Path, stem: str, *, sheet: str, header: list[str], max_rows: int,
                 cover: str | None = None, numbers: Iterable[str] = ()) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.stem, self.sheet, self.header = folder, stem, sheet, header
        self.max_rows, self.cover, self.numbers = max_rows, cover, frozenset(numbers)
        self._pieces: list[tuple[Path, int, int]] = []
        self._book: Xlsx | None = None

    def append(self, batch: pa.RecordBatch) -> None:
        """Write ``batch``'s rows (cell values, :func:`risk.data.synth.field_values.cell_table`) in order."""
        done = 0
        while done < batch.num_rows:
            if self._book is None or self._book.rows == self.max_rows:
                self._next()
            assert self._book is not None
            take = min(self.max_rows - self._book.rows, batch.num_rows - done)
            self._book.append(batch.slice(done, take))
            done += take

    def close(self, table: str) -> list[Piece]:
        """Save the last workbook; returns its pieces as (path relative to the export, first row, rows)."""
        if self._book is None:
            self._next()  # a part without rows still gets its header
        self._save()
        paths = [self.folder / f"{self.stem}.xlsx"] if len(self._pieces) == 1 else \
            [self.folder / f"{self.stem}-{i:02d}.xlsx" for i in range(1, len(self._pieces) + 1)]
        pieces = []
        for (temporary, first, rows), path in zip(self._pieces, paths, strict=True):
            temporary.replace(path)
            pieces.append((f"{table}/{path.name}", first, rows))
        return pieces

    def _next(self) -> None:
        first = 0
        if self._book is not None:
            first = self._pieces[-1][1] + self._save()
        path = self.folder / f".{self.stem}-{len(self._pieces) + 1}.xlsx.tmp"
        covers = [("คำชี้แจง", self.cover)] if self.cover else []
        self._book = Xlsx(path, sheet=self.sheet, header=self.header, covers=covers, numbers=self.numbers)
        self._pieces.append((path, first, 0))

    def _save(self) -> int:
        """Save the open workbook; returns its data rows."""
        assert self._book is not None
        path, first, _ = self._pieces[-1]
        rows = self._book.rows
        self._book.close()
        self._pieces[-1] = (path, first, rows)
        self._book = None
        return rows
