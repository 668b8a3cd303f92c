"""The "field" style: a clean synthetic export rewritten the way schools and CCT really send it.

``write_field_style(clean_dir, out_dir, profile=…)`` reads an export as
:func:`risk.data.synth.generate` writes it and writes the same rows as:

* Excel workbooks (``schools``, ``enrollments``): IDs and school codes in number
  cells, dates in date cells; DMC's Thai headers and words (``ชาย``, ``ป.6``) and a
  cover sheet before the data for enrollments; a part over Excel's 1,048,576 rows
  is split into ``part-NNNNN-01.xlsx``, ``-02`` …;
* CSV in cp874 (Thai Windows) with Thai form headers and Buddhist-Era day-first
  dates ``16/06/2567`` (``calendar``, ``grades``, ``household``; household sizes in
  Thai digits); attendance as UTF-8 with a BOM, Thai status words and BE ISO dates
  ``2567-06-16``; health as UTF-8 with Gregorian day-first dates ``16/06/2024``;
* ``behaviour`` and ``assistance`` as the clean Parquet files.

Headers, words, encodings, sheets and date forms come from the source profile
(``configs/profiles/field.yaml``), inverted, so ``risk validate --profile`` of the
field export gives the same validated tables and the same counts per rule as the
clean export. The injected errors stay errors: a typo that is one of the file's
words is written with its last letter doubled (see :mod:`risk.data.synth.field_values`).

Rows keep their order, so the error manifest ``_injected.parquet`` is rewritten
with the field files' names and rows (different only where a workbook was split);
``truth.parquet`` and ``synth_report.json`` are copied unchanged, and
``field_style.json`` says what was written how.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from risk.data.contract import TABLE_ORDER
from risk.data.profile import SourceProfile, load_profile
from risk.data.synth.field_files import EXCEL_MAX_ROWS, EncodedCsv, Piece, XlsxParts, clean_batches
from risk.data.synth.field_values import NUMBER_CELLS, FieldColumns, cell_table, csv_table
from risk.data.synth.frames import arrow_schema
from risk.data.synth.report import SynthReport

__all__ = ["FORMATS", "FieldReport", "FieldTable", "generate_field_style", "write_field_style"]

# How each table arrives. Parquet: a system export, taken as the clean style wrote it.
FORMATS = {"schools": "xlsx", "calendar": "csv", "enrollments": "xlsx", "attendance_daily": "csv",
           "grades": "csv", "household": "csv", "health": "csv", "behaviour": "parquet",
           "assistance": "parquet"}  # fmt: skip
# CCT screening forms are filled in by hand on Thai keyboards: counts come in Thai digits.
THAI_DIGIT_COLUMNS = {"household": ("household_size", "dependants")}
COVER = {"enrollments": "ข้อมูลนักเรียนรายบุคคล (DMC) ส่งออกจากระบบ; ข้อมูลอยู่ในแผ่นงานถัดไป"}
_DATE_FORMS = {"dmy": "dd/mm/yyyy", "mdy": "mm/dd/yyyy", "ymd": "yyyy-mm-dd"}
MANIFEST, TRUTH, REPORT, FIELD_REPORT = "_injected.parquet", "truth.parquet", "synth_report.json", "field_style.json"


class FieldTable(BaseModel):
    """What one table became: its format, encoding, files and rows."""

    table: str
    format: str
    encoding: str = ""
    dates: str = ""
    files: list[str]
    rows: int


class FieldReport(BaseModel):
    """A field-style export (also ``field_style.json``): per table, how it was written."""

    source: str
    output: str
    profile: str
    tables: list[FieldTable]

    def summary_lines(self) -> list[str]:
        """One line per table for the CLI."""
        lines = [f"field style of {self.source} in {self.output} (read it back with --profile {self.profile}):"]
        for t in self.tables:
            how = ", ".join(x for x in (t.format, t.encoding, t.dates) if x)
            lines.append(f"  {t.table:<17} {how:<36} {len(t.files):>4} file(s) {t.rows:>14,} rows")
        return lines


def write_field_style(clean_dir: Path, out_dir: Path, *, profile: Path, max_sheet_rows: int = EXCEL_MAX_ROWS,
                      batch_rows: int = 65_536) -> FieldReport:
    """Rewrite the clean export in ``clean_dir`` into ``out_dir`` in the field style; return what was written.

    Parameters
    ----------
    clean_dir : an export written by :func:`risk.data.synth.generate` (read only)
    out_dir : the field export's folder (not ``clean_dir``); earlier part files there are removed
    profile : the field style's source profile (``configs/profiles/field.yaml``)
    max_sheet_rows : data rows per Excel workbook (Excel's limit; smaller in tests to see the split)
    batch_rows : rows converted at a time (memory is about one batch per table)
    """
    clean_dir, out_dir = Path(clean_dir), Path(out_dir)
    if out_dir.resolve() == clean_dir.resolve():
        raise ValueError(f"write the field style to another folder than the clean export ({clean_dir})")
    loaded = load_profile(Path(profile))
    _clear(out_dir)
    written, pieces = [], {}
    for table in TABLE_ORDER:
        result, table_pieces = _write_table(table, clean_dir, out_dir, loaded, max_sheet_rows, batch_rows)
        written.append(result)
        pieces.update(table_pieces)
    _write_manifest(clean_dir / MANIFEST, out_dir / MANIFEST, pieces)
    for name in (TRUTH, REPORT):
        if (clean_dir / name).exists():
            shutil.copy2(clean_dir / name, out_dir / name)
    report = FieldReport(source=str(clean_dir), output=str(out_dir), profile=str(profile), tables=written)
    (out_dir / FIELD_REPORT).write_text(report.model_dump_json(indent=2), encoding="utf-8")
    return report


def generate_field_style(out_dir: Path, *, profile: Path, **generate_args: Any) -> tuple[SynthReport, FieldReport]:
    """``generate(…)`` into a scratch folder beside ``out_dir``, then its field style into ``out_dir``.

    ``generate_args`` are :func:`risk.data.synth.generate`'s keywords (students, terms, seed,
    config, last_term, progress). Returns (the generator's ``SynthReport``, the :class:`FieldReport`).
    """
    from risk.data.synth.engine import generate

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}-clean-", dir=out_dir.parent) as scratch:
        synth = generate(Path(scratch), **generate_args)
        field = write_field_style(Path(scratch), out_dir, profile=profile)
    return synth, field


def _clear(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for table in TABLE_ORDER:
        for old in (out_dir / table).glob("part-*"):
            old.unlink()
    for name in (MANIFEST, TRUTH, REPORT, FIELD_REPORT):
        (out_dir / name).unlink(missing_ok=True)


def _write_table(table: str, clean_dir: Path, out_dir: Path, profile: SourceProfile, max_sheet_rows: int,
                 batch_rows: int) -> tuple[FieldTable, dict[str, list[Piece]]]:
    """Every clean part of ``table`` in its field format; returns the summary and {clean file: pieces}."""
    fmt = FORMATS[table]
    wanted = profile.table(table)
    spec = FieldColumns.from_profile(table, wanted, THAI_DIGIT_COLUMNS.get(table, ()))
    pieces: dict[str, list[Piece]] = {}
    for path in sorted((clean_dir / table).glob("part-*")):
        relative = f"{table}/{path.name}"
        if fmt == "parquet":
            pieces[relative] = _copy_parquet(path, out_dir / relative)
        elif fmt == "csv":
            pieces[relative] = _write_csv(path, out_dir / table, spec, wanted.encoding, batch_rows)
        else:
            parts = XlsxParts(out_dir / table, path.stem, sheet=wanted.sheet or table, max_rows=max_sheet_rows,
                              header=[spec.headers[c] for c in spec.headers], cover=COVER.get(table),
                              numbers=NUMBER_CELLS)
            for batch in clean_batches(path, table, batch_rows):
                parts.append(cell_table(batch, spec))
            pieces[relative] = parts.close(table)
    files = [name for found in pieces.values() for name, _, _ in found]
    dates = {"xlsx": "date cells", "parquet": ""}.get(fmt, _DATE_FORMS[spec.date_order] + f" ({spec.era.upper()})")
    encoding = wanted.encoding if fmt == "csv" else ""
    summary = FieldTable(table=table, format=fmt, encoding=encoding, dates=dates, files=files,
                         rows=sum(n for found in pieces.values() for _, _, n in found))
    return summary, pieces


def _copy_parquet(path: Path, target: Path) -> list[Piece]:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target)
    return [(f"{path.parent.name}/{path.name}", 0, pq.ParquetFile(path).metadata.num_rows)]


def _write_csv(path: Path, folder: Path, spec: FieldColumns, encoding: str, batch_rows: int) -> list[Piece]:
    if encoding == "auto":
        raise ValueError(f"the field profile must name the encoding of {spec.table} (a CSV table)")
    target = folder / f"{path.stem}.csv"
    out = EncodedCsv(target, encoding)
    rows = 0
    try:
        for batch in clean_batches(path, spec.table, batch_rows):
            out.write(csv_table(batch, spec))
            rows += batch.num_rows
        if rows == 0:  # a part without rows still gets its header
            out.write(csv_table(pa.RecordBatch.from_pylist([], schema=arrow_schema(spec.table)), spec))
    finally:
        out.close()
    return [(f"{spec.table}/{target.name}", 0, rows)]


def _write_manifest(source: Path, target: Path, pieces: dict[str, list[Piece]]) -> None:
    """The clean manifest with each (file, row) moved to the field file and row that holds it."""
    if not source.exists():
        return
    manifest = pq.read_table(source)
    files = np.array(manifest.column("file").to_pylist(), dtype=object)
    rows = manifest.column("row").to_numpy().copy()
    for clean in np.unique(files):
        at = np.flatnonzero(files == clean)
        found = pieces.get(str(clean))
        if found is None:
            raise ValueError(f"{source}: the manifest names {clean}, which the clean export does not hold")
        names = np.array([name for name, _, _ in found], dtype=object)
        starts = np.array([first for _, first, _ in found], dtype=np.int64)
        which = np.searchsorted(starts, rows[at], side="right") - 1
        files[at] = names[which]
        rows[at] = rows[at] - starts[which]
    moved = manifest.set_column(manifest.schema.get_field_index("file"), "file", pa.array(files.tolist(), pa.string()))
    moved = moved.set_column(moved.schema.get_field_index("row"), "row", pa.array(rows, pa.int64()))
    pq.write_table(moved, target)
