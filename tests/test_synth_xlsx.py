"""The field style's workbook writer: every cell reads back, in calamine (what risk validate reads with)
and in openpyxl, as the value and kind a school's export holds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pyarrow as pa
import pytest
from python_calamine import CalamineWorkbook

from risk.data.synth.field_files import XlsxParts
from risk.data.synth.xlsx import Xlsx, _column_letters

HEADER = ["รหัส", "name", "born", "lat", "count", "flag"]


def _batch(codes: list, names: list, days: list, lats: list, counts: list, flags: list) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array(codes, pa.string()), pa.array(names, pa.string()), pa.array(days, pa.int32()).view(pa.date32()),
         pa.array(lats, pa.float64()), pa.array(counts, pa.int64()), pa.array(flags, pa.bool_())],
        names=["code", "name", "born", "lat", "count", "flag"])


@pytest.fixture()
def book(tmp_path: Path) -> Path:
    path = tmp_path / "book.xlsx"
    out = Xlsx(path, sheet="ข้อมูล", header=HEADER, covers=[("คำชี้แจง", "a note & <more>")], numbers={"code"})
    out.append(_batch(["1103700000001", "0123", "1234567890123456", None],
                      ["ชาย", " padded ", "a & b < c > d", ""],
                      [19890, None, 0, -1], [13.7563, None, 0.1, -100.5], [5, None, 0, -3], [True, None, False, True]))
    out.append(_batch(["42"], ["second batch"], [1], [1e-7], [2**40], [False]))
    assert out.rows == 5
    out.close()
    return path


def test_cells_read_back_in_calamine_as_written(book: Path) -> None:
    workbook = CalamineWorkbook.from_path(book)
    assert workbook.sheet_names == ["คำชี้แจง", "ข้อมูล"]
    assert workbook.get_sheet_by_name("คำชี้แจง").to_python() == [["a note & <more>"]]
    header, *rows = workbook.get_sheet_by_name("ข้อมูล").to_python()
    assert header == HEADER
    # codes of digits (no leading zero, <= 15 digits) are number cells; others stay text; empty → no cell
    assert rows[0] == [1103700000001.0, "ชาย", dt.date(2024, 6, 16), 13.7563, 5.0, True]
    assert rows[1] == ["0123", " padded ", "", "", "", ""]
    assert rows[2] == ["1234567890123456", "a & b < c > d", dt.date(1970, 1, 1), 0.1, 0.0, False]
    assert rows[3] == ["", "", dt.date(1969, 12, 31), -100.5, -3.0, True]
    assert rows[4] == [42.0, "second batch", dt.date(1970, 1, 2), 1e-7, float(2**40), False]


def test_cells_read_back_in_openpyxl(book: Path) -> None:
    sheet = openpyxl.load_workbook(book, read_only=True)["ข้อมูล"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[1] == (1103700000001, "ชาย", dt.datetime(2024, 6, 16), 13.7563, 5, True)
    assert rows[3][:2] == ("1234567890123456", "a & b < c > d")


def test_a_control_character_or_nan_is_refused_with_the_file_and_column(tmp_path: Path) -> None:
    out = Xlsx(tmp_path / "bad.xlsx", sheet="s", header=HEADER)
    with pytest.raises(ValueError, match=r"bad\.xlsx: column name holds a control character"):
        out.append(_batch(["1"], ["bell\x07"], [0], [0.0], [0], [True]))
    with pytest.raises(ValueError, match="column lat holds NaN"):
        out.append(_batch(["1"], ["x"], [0], [float("nan")], [0], [True]))
    out.close()


def test_parts_split_rows_across_workbooks_in_order(tmp_path: Path) -> None:
    parts = XlsxParts(tmp_path, "part-00000", sheet="s", header=["n"], max_rows=3)
    for start in (0, 4):
        parts.append(pa.RecordBatch.from_arrays([pa.array([str(i) for i in range(start, start + 4)])], names=["n"]))
    pieces = parts.close("t")
    assert pieces == [("t/part-00000-01.xlsx", 0, 3), ("t/part-00000-02.xlsx", 3, 3), ("t/part-00000-03.xlsx", 6, 2)]
    read = [CalamineWorkbook.from_path(tmp_path / p.split("/")[1]).get_sheet_by_name("s").to_python()[1:]
            for p, _, _ in pieces]
    assert [v for rows in read for (v,) in rows] == ["0", "1", "2", "3", "4", "5", "6", "7"]


def test_column_letters_follow_excel() -> None:
    assert [_column_letters(i) for i in (0, 25, 26, 51, 52, 701, 702)] == ["A", "Z", "AA", "AZ", "BA", "ZZ", "AAA"]
