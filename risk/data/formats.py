"""Source files: which files hold a table, and their rows as Arrow record batches.

A file's format is told by its suffix: Parquet (typed, as stored), CSV and Excel
``.xlsx`` (both as text throughout: the contract types are applied by
:mod:`risk.data.values`, so one bad value costs one row, not the file). A source
profile (:mod:`risk.data.profile`) may rename headers, map values and name the
encoding or sheet; batches always come out with contract column names.

CSV may be UTF-8, UTF-8 with a BOM, or TIS-620/cp874 (Thai Windows): the encoding is
told from the first bytes unless the profile names it, and the file is transcoded
while it streams, so a national attendance table never sits in memory whole. An
Excel sheet (at most 1,048,576 rows) is parsed whole by python-calamine, then turned
into text a chunk at a time.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import itertools
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import BaseModel
from python_calamine import CalamineError, CalamineSheet, CalamineWorkbook

from risk.data.contract import Table
from risk.data.profile import (
    SourceProfile,
    TableProfile,
    apply_values,
    check_columns,
    map_headers,
    mapped_headers,
)
from risk.errors import ContractError

__all__ = ["SUFFIXES", "FileInfo", "check_columns", "detect_encoding", "describe_file", "file_batches",
           "inspect_file", "parquet_chunks", "source_files"]

SUFFIXES = (".parquet", ".csv", ".xlsx")
# Enough of a file to tell UTF-8 from cp874: Thai text shows up in the first rows of
# any table that has it (names, remarks); a later surprise still gets a clear error.
SAMPLE_BYTES = 4 << 20
_BOM = codecs.BOM_UTF8


class FileInfo(BaseModel):
    """How one source file was read: for the validation report and ``risk inspect``.

    ``columns`` maps each header in the file to the contract column it gives; ``unmapped``
    lists the headers no column takes (kept aside, not used); ``missing`` the required
    columns no header gives. ``encoding`` is set for CSV only, ``sheet`` for Excel only;
    ``rows`` is None when it was not counted.
    """

    path: str
    format: Literal["parquet", "csv", "xlsx"]
    encoding: str | None = None
    sheet: str | None = None
    rows: int | None = None
    columns: dict[str, str] = {}
    unmapped: list[str] = []
    missing: list[str] = []


def source_files(source_dir: Path, table: Table) -> list[Path]:
    """The files holding ``table`` in ``source_dir``: ``<table>.parquet|csv|xlsx`` or ``<table>/*``.

    Excel's lock files (``~$…``) and hidden files are not data. Raises ContractError when there is none.
    """
    candidates = [source_dir / f"{table.name}{s}" for s in SUFFIXES]
    files = [p for p in candidates if p.is_file()]
    folder = source_dir / table.name
    if folder.is_dir():
        files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()
                        and not p.name.startswith(("~$", ".")))
    if not files:
        raise ContractError(
            f"no file for table {table.name!r} in {source_dir}: expected {table.name}.parquet, "
            f"{table.name}.csv, {table.name}.xlsx or a folder {table.name}/ of such files"
        )
    return files


def _format(path: Path) -> Literal["parquet", "csv", "xlsx"]:
    suffix = path.suffix.lower()
    return "csv" if suffix == ".csv" else "xlsx" if suffix == ".xlsx" else "parquet"


def describe_file(path: Path, table: Table, profile: SourceProfile | None = None, *, count_rows: bool = False,
                  root: Path | None = None, check: bool = False) -> FileInfo:
    """How ``path`` reads as ``table``: format, encoding or sheet, header mapping, and rows if known.

    Parquet rows come from its footer; CSV and Excel rows only with ``count_rows``
    (CSV: data lines, counted by a fast scan of the bytes). ``path`` is shown relative to
    ``root`` when given. Missing required columns are recorded in ``missing``, or raised
    as ContractError under ``check``. Raises ContractError when the file cannot be read at all.
    """
    wanted = _table_profile(profile, table)
    shown = str(path.relative_to(root)) if root is not None else str(path)
    kind = _format(path)
    if kind == "csv":
        encoding = csv_encoding(path, wanted)
        headers = _csv_header(path, table, encoding)
        rows = _csv_lines(path) if count_rows else None
        info = FileInfo(path=shown, format=kind, encoding=encoding, rows=rows)
    elif kind == "xlsx":
        name, sheet = _xlsx_sheet(path, table, wanted)
        rows_iter = _nonempty_rows(sheet)
        headers = _cell_headers(next(rows_iter, []))
        rows = sum(1 for _ in rows_iter) if count_rows else None
        info = FileInfo(path=shown, format=kind, sheet=name, rows=rows)
    else:
        parquet = _open_parquet(path)
        headers = parquet.schema_arrow.names
        info = FileInfo(path=shown, format=kind, rows=parquet.metadata.num_rows)
    mapped = (mapped_headers if check else map_headers)(path, headers, table, wanted)
    return info.model_copy(update={"columns": mapped.by_header, "unmapped": list(mapped.unmapped),
                                   "missing": list(mapped.missing)})


def inspect_file(path: Path, table: Table, profile: SourceProfile | None = None) -> int | None:
    """Check that ``path`` can be read and has ``table``'s required columns; return its row count if known.

    Raises ContractError naming the file and the missing columns.
    """
    return describe_file(path, table, profile, check=True).rows


def file_batches(path: Path, table: Table, chunk_rows: int,
                 profile: SourceProfile | None = None) -> Generator[pa.RecordBatch, None, None]:
    """The contract columns of ``path`` as record batches named after them (CSV, Excel: all text; Parquet: as stored).

    The profile's header aliases and value maps are applied.
    """
    wanted = _table_profile(profile, table)
    kind = _format(path)
    batches = (_csv_batches(path, table, wanted) if kind == "csv" else
               _xlsx_batches(path, table, wanted, chunk_rows) if kind == "xlsx" else
               _parquet_batches(path, table, wanted, chunk_rows))
    return (apply_values(b, wanted) for b in batches)


def _table_profile(profile: SourceProfile | None, table: Table) -> TableProfile | None:
    return profile.table(table.name) if profile is not None else None


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


# Parquet ----------------------------------------------------------------------------------

def _parquet_batches(path: Path, table: Table, wanted: TableProfile | None,
                     chunk_rows: int) -> Iterator[pa.RecordBatch]:
    parquet = _open_parquet(path)
    mapped = mapped_headers(path, parquet.schema_arrow.names, table, wanted)
    stored = [mapped.headers[i] for i in mapped.columns.values()]
    try:
        for batch in parquet.iter_batches(batch_size=chunk_rows, columns=stored):
            yield batch.rename_columns(list(mapped.columns))
    except (pa.ArrowException, OSError) as exc:
        raise ContractError(f"{path}: Parquet file is damaged ({exc})") from exc


def _open_parquet(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise ContractError(f"{path}: cannot read as Parquet ({exc})") from exc


# CSV --------------------------------------------------------------------------------------

def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` (a BOM), ``utf-8`` (the first bytes are valid UTF-8) or ``cp874`` (they are not).

    Only the first :data:`SAMPLE_BYTES` are read; a character cut at the sample's end is not a fault.
    Raises ContractError when the sample is neither UTF-8 nor cp874.
    """
    try:
        with path.open("rb") as handle:
            sample = handle.read(SAMPLE_BYTES)
            whole = not handle.read(1)
    except OSError as exc:
        raise ContractError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if sample.startswith(_BOM):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ContractError(f"{path}: UTF-16 text (Excel's 'Unicode Text'); save it as 'CSV UTF-8' or as .xlsx")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=whole)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        sample.decode("cp874")
    except UnicodeDecodeError as exc:
        raise ContractError(f"{path}: neither UTF-8 nor TIS-620/cp874 text (byte {sample[exc.start]:#04x} at "
                            f"{exc.start:,}); save it as UTF-8 CSV") from exc
    return "cp874"


def csv_encoding(path: Path, wanted: TableProfile | None) -> str:
    """The profile's encoding for the file's table, or the one its bytes tell."""
    named = wanted.encoding if wanted is not None else "auto"
    return detect_encoding(path) if named == "auto" else named


def _encoding_fault(path: Path, table: Table, encoding: str, detail: object) -> ContractError:
    return ContractError(f"{path}: not readable as {encoding} text ({detail}); set encoding: (utf-8, utf-8-sig or "
                         f"cp874) under tables.{table.name} in the source profile (--profile)")


def _csv_header(path: Path, table: Table, encoding: str) -> list[str]:
    try:
        with path.open("rb") as handle:
            line = handle.readline()
    except OSError as exc:
        raise ContractError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        text = line.decode("utf-8-sig" if encoding.startswith("utf-8") else encoding)
    except UnicodeDecodeError as exc:
        raise _encoding_fault(path, table, encoding, f"header, byte {line[exc.start]:#04x}") from exc
    text = text.rstrip("\r\n")
    return next(csv.reader([text])) if text.strip() else []


def _csv_lines(path: Path) -> int:
    """Data lines of a CSV: line breaks counted in 16 MB blocks (a field with a line break in quotes counts twice)."""
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        while block := handle.read(16 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return max(lines + (last != b"\n") - 1, 0)


def _csv_batches(path: Path, table: Table, wanted: TableProfile | None) -> Iterator[pa.RecordBatch]:
    encoding = csv_encoding(path, wanted)
    headers = _csv_header(path, table, encoding)
    mapped = mapped_headers(path, headers, table, wanted)
    # Columns are named by position: headers may repeat, carry spaces or be Thai; the
    # header line itself is skipped and the batches renamed to contract names.
    positions = [str(i) for i in range(len(headers))]
    # cp874 shares ASCII with UTF-8, so the parser splits its bytes as they are; only the
    # contract columns are transcoded, and only those holding Thai (attendance holds none).
    single_byte = encoding == "cp874"
    convert = pacsv.ConvertOptions(
        column_types={p: pa.binary() if single_byte else pa.string() for p in positions},
        include_columns=[positions[i] for i in mapped.columns.values()],
        strings_can_be_null=True,
        null_values=[""],
    )
    read = pacsv.ReadOptions(block_size=16 << 20, column_names=positions, skip_rows=1)
    names = list(mapped.columns)
    try:
        for batch in pacsv.open_csv(path, read_options=read, convert_options=convert):
            columns = [cp874_text(c) for c in batch.columns] if single_byte else batch.columns
            yield pa.RecordBatch.from_arrays(columns, names=names)
    except UnicodeDecodeError as exc:
        raise _encoding_fault(path, table, encoding, f"byte {exc.object[exc.start]:#04x}") from exc
    except (pa.ArrowException, OSError) as exc:
        if "invalid UTF8" in str(exc):
            raise _encoding_fault(path, table, encoding, "bytes that are not UTF-8 past the first "
                                  f"{SAMPLE_BYTES >> 20} MB") from exc
        raise ContractError(f"{path}: cannot read as CSV ({exc})") from exc


def _utf8_lengths() -> np.ndarray:
    lengths = np.ones(256, dtype=np.int64)
    for byte in range(0x80, 0x100):
        # A byte cp874 does not define keeps 1: decoding its column raises before the length is used.
        lengths[byte] = len(bytes([byte]).decode("cp874", errors="ignore").encode("utf-8")) or 1
    return lengths


# UTF-8 length of each cp874 byte: 1 for ASCII, 3 for Thai, 2 for the no-break space (0xA0).
_CP874_UTF8_LENGTH = _utf8_lengths()


def cp874_text(values: pa.Array) -> pa.Array:
    """A binary array of cp874 text as a UTF-8 string array (values, nulls and boundaries kept).

    One codec call for the whole buffer: cp874 has one byte per character, so each value's
    new boundary is the UTF-8 length of the bytes before it. Raises UnicodeDecodeError on a
    byte cp874 does not define.
    """
    if values.offset:
        values = pa.concat_arrays([values])  # a slice's buffers start before it
    validity, offsets_buffer, data_buffer = values.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32, count=len(values) + 1)
    data = np.frombuffer(data_buffer, dtype=np.uint8, count=offsets[-1])[offsets[0]:] if data_buffer else \
        np.empty(0, dtype=np.uint8)
    if not (data >= 0x80).any():
        return values.cast(pa.string())
    text = data.tobytes().decode("cp874").encode("utf-8")
    ends = np.zeros(len(data) + 1, dtype=np.int64)
    np.cumsum(_CP874_UTF8_LENGTH[data], out=ends[1:])
    moved = ends[offsets - offsets[0]]
    kind, width = (pa.string(), np.int32) if moved[-1] < 2**31 else (pa.large_string(), np.int64)
    return pa.Array.from_buffers(kind, len(values), [validity, pa.py_buffer(moved.astype(width)), pa.py_buffer(text)],
                                 null_count=values.null_count)


# Excel ------------------------------------------------------------------------------------

def _xlsx_sheet(path: Path, table: Table, wanted: TableProfile | None) -> tuple[str, CalamineSheet]:
    """The sheet of ``table``: the profile's, else the one named after the table, else the first."""
    try:
        book = CalamineWorkbook.from_path(path)
        names = book.sheet_names
        named = wanted.sheet if wanted is not None else None
        if named is not None and named not in names:
            raise ContractError(f"{path}: no sheet {named!r} (sheets: {', '.join(names)}); correct sheet: under "
                                f"tables.{table.name} in the source profile")
        by_table = [n for n in names if n.strip().lower() == table.name]
        name = named or (by_table[0] if by_table else names[0] if names else None)
        if name is None:
            raise ContractError(f"{path}: the workbook has no sheet")
        return name, book.get_sheet_by_name(name)
    except (CalamineError, OSError) as exc:
        raise ContractError(f"{path}: cannot read as an Excel .xlsx workbook ({exc})") from exc


def _nonempty_rows(sheet: CalamineSheet) -> Iterator[list[object]]:
    # A wholly empty row is layout, not data (as an empty line in a CSV); it is skipped.
    return (row for row in sheet.iter_rows() if any(v != "" for v in row))


def _cell_headers(row: list[object]) -> list[str]:
    return [_cell_text(v) or "" for v in row]


def _xlsx_batches(path: Path, table: Table, wanted: TableProfile | None,
                  chunk_rows: int) -> Iterator[pa.RecordBatch]:
    _, sheet = _xlsx_sheet(path, table, wanted)
    rows = _nonempty_rows(sheet)
    mapped = mapped_headers(path, _cell_headers(next(rows, [])), table, wanted)
    names, positions = list(mapped.columns), list(mapped.columns.values())
    while chunk := list(itertools.islice(rows, chunk_rows)):
        # Rows are as wide as the sheet's used area, but a short row is padded safely anyway.
        arrays = [cell_texts([r[p] if p < len(r) else "" for r in chunk]) for p in positions]
        yield pa.RecordBatch.from_arrays(arrays, names=names)


def cell_texts(cells: list[object]) -> pa.Array:
    """Excel cells as the text a CSV export would hold, so that one parser serves both.

    Whole numbers → their digits (a 13-digit ID in a number cell is exact in a float64:
    ``1103700000001``, never ``1.1037E+12`` or ``…01.0``); other numbers → the shortest
    text that reads back the same; date and date-time cells → ISO ``YYYY-MM-DD``; flags →
    ``true``/``false``; empty cells → null.
    """
    if all(type(v) is str for v in cells):
        return pa.array([v or None for v in cells], pa.string())
    return pa.array([_cell_text(v) for v in cells], pa.string())


def _cell_text(value: object) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    # Times of day and durations have no contract column; as text the checks reject them.
    return str(value)
