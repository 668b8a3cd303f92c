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
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import BaseModel
from python_calamine import CalamineError, CalamineSheet, CalamineWorkbook

from risk.data.contract import Table
from risk.data.profile import HeaderMap, SourceProfile, TableProfile, apply_values, map_headers
from risk.errors import ContractError

__all__ = ["SUFFIXES", "FileInfo", "check_columns", "detect_encoding", "describe_file", "file_batches",
           "inspect_file", "parquet_chunks", "source_files"]

SUFFIXES = (".parquet", ".csv", ".xlsx")
# Enough of a file to tell UTF-8 from cp874: Thai text shows up in the first rows of
# any table that has it (names, remarks); a later surprise still gets a clear error.
SAMPLE_BYTES = 4 << 20
_BOM = codecs.BOM_UTF8
# Python's codec names → the names pyarrow's CSV reader takes (it strips a UTF-8 BOM itself).
_ARROW_ENCODING = {"utf-8": "utf8", "utf-8-sig": "utf8", "cp874": "cp874"}


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


def describe_file(path: Path, table: Table, profile: SourceProfile | None = None, *,
                  count_rows: bool = False, root: Path | None = None) -> FileInfo:
    """How ``path`` reads as ``table``: format, encoding or sheet, header mapping, and rows if known.

    Parquet rows come from its footer; CSV and Excel rows only with ``count_rows``
    (CSV: data lines, counted by a fast scan of the bytes). Missing columns are recorded,
    not raised. Raises ContractError when the file cannot be read at all.
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
    mapped = map_headers(path, headers, table, wanted)
    return info.model_copy(update={"columns": mapped.by_header, "unmapped": list(mapped.unmapped),
                                   "missing": list(mapped.missing)})


def inspect_file(path: Path, table: Table, profile: SourceProfile | None = None) -> int | None:
    """Check that ``path`` can be read and has ``table``'s required columns; return its row count if known.

    Raises ContractError naming the file and the missing columns.
    """
    info = describe_file(path, table, profile)
    if info.missing:
        check_columns(path, table, list(info.columns) + info.unmapped, unmapped=info.unmapped)
    return info.rows


def file_batches(path: Path, table: Table, chunk_rows: int,
                 profile: SourceProfile | None = None) -> Iterator[pa.RecordBatch]:
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


def check_columns(path: Path, table: Table, found: list[str], *, unmapped: list[str] | None = None) -> None:
    """Raise ContractError naming the file and the required columns not in ``found``.

    ``unmapped`` (headers no column takes) adds a pointer to the profile's ``columns:``,
    since such headers are usually the missing columns under another name.
    """
    missing = [c for c in table.required_names if c not in found]
    if not missing:
        return
    hint = "; `risk contract` lists each table's columns"
    if unmapped:
        hint += (f", and a source profile (--profile) maps other headers to them under "
                 f"tables.{table.name}.columns")
    raise ContractError(
        f"{path}: table {table.name!r} is missing required column(s) {', '.join(missing)}; "
        f"found {', '.join(found) or 'no columns'}{hint}"
    )


def _mapped_headers(path: Path, headers: list[str], table: Table, wanted: TableProfile | None) -> HeaderMap:
    mapped = map_headers(path, headers, table, wanted)
    if mapped.missing:
        check_columns(path, table, list(mapped.by_header.values()) + list(mapped.unmapped),
                      unmapped=list(mapped.unmapped))
    return mapped


# Parquet ----------------------------------------------------------------------------------

def _parquet_batches(path: Path, table: Table, wanted: TableProfile | None,
                     chunk_rows: int) -> Iterator[pa.RecordBatch]:
    parquet = _open_parquet(path)
    mapped = _mapped_headers(path, parquet.schema_arrow.names, table, wanted)
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
    mapped = _mapped_headers(path, headers, table, wanted)
    # Columns are named by position: headers may repeat, carry spaces or be Thai; the
    # header line itself is skipped and the batches renamed to contract names.
    positions = [str(i) for i in range(len(headers))]
    convert = pacsv.ConvertOptions(
        column_types={p: pa.string() for p in positions},
        include_columns=[positions[i] for i in mapped.columns.values()],
        strings_can_be_null=True,
        null_values=[""],
    )
    read = pacsv.ReadOptions(block_size=16 << 20, encoding=_ARROW_ENCODING[encoding], column_names=positions,
                             skip_rows=1)
    names = list(mapped.columns)
    try:
        for batch in pacsv.open_csv(path, read_options=read, convert_options=convert):
            yield batch.rename_columns(names)
    except UnicodeDecodeError as exc:
        raise _encoding_fault(path, table, encoding, f"byte {exc.object[exc.start]:#04x}") from exc
    except (pa.ArrowException, OSError) as exc:
        if "invalid UTF8" in str(exc):
            raise _encoding_fault(path, table, encoding, "bytes that are not UTF-8 past the first "
                                  f"{SAMPLE_BYTES >> 20} MB") from exc
        raise ContractError(f"{path}: cannot read as CSV ({exc})") from exc


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
    mapped = _mapped_headers(path, _cell_headers(next(rows, [])), table, wanted)
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
