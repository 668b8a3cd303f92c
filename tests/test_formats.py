"""File readers: Excel number and date cells, CSV encodings, and every file read with contract names."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pyarrow as pa
import pytest
from conftest import SCHOOL_A, STUDENTS

from risk.data.contract import TABLES
from risk.data.formats import (
    SAMPLE_BYTES,
    cell_texts,
    describe_file,
    detect_encoding,
    file_batches,
    inspect_file,
    source_files,
)
from risk.errors import ContractError

HEALTH = TABLES["health"]
SCHOOLS = TABLES["schools"]
HEALTH_ROWS = [(STUDENTS[0], "2024-06-04", "35", "142"), (STUDENTS[1], "2024-06-04", "48.5", "160.2")]


def _rows(path: Path, table=HEALTH, chunk_rows: int = 1000, profile=None) -> list[dict]:
    batches = list(file_batches(path, table, chunk_rows, profile))
    return pa.Table.from_batches(batches).to_pylist() if batches else []


def _workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


# ---------------------------------------------------------------- Excel

def test_number_cell_ids_and_codes_read_as_their_digits(tmp_path):
    path = _workbook(tmp_path / "schools.xlsx", {"schools": [
        ["school_id", "name", "province_code", "district_code", "region", "size", "area", "affiliation"],
        [int(SCHOOL_A), "โรงเรียนบ้านหนองบัว", 40, 4001, "northeast", "small", "rural", "obec"],
    ]})
    row = _rows(path, SCHOOLS)[0]
    assert (row["school_id"], row["province_code"], row["district_code"]) == (SCHOOL_A, "40", "4001")


def test_thirteen_digit_id_in_a_number_cell_keeps_every_digit(tmp_path):
    path = _workbook(tmp_path / "health.xlsx", {"Sheet1": [
        ["student_id", "measured_on", "weight_kg", "height_cm"],
        [int(STUDENTS[0]), dt.date(2024, 6, 4), 35, 142.5],
        [float(STUDENTS[1]), dt.datetime(2024, 6, 4, 9, 30), 48.5, None],
    ]})
    rows = _rows(path)
    assert [r["student_id"] for r in rows] == STUDENTS[:2]
    assert [r["measured_on"] for r in rows] == ["2024-06-04", "2024-06-04"]
    assert [(r["weight_kg"], r["height_cm"]) for r in rows] == [("35", "142.5"), ("48.5", None)]


def test_cells_become_the_text_a_csv_would_hold():
    cells = [1103700000001.0, 0.1, 1e-05, True, False, "", "16/06/2567", dt.date(2024, 1, 2), 2.0]
    assert cell_texts(cells).to_pylist() == [
        "1103700000001", "0.1", "1e-05", "true", "false", None, "16/06/2567", "2024-01-02", "2"]


def test_sheet_named_after_the_table_wins_over_the_first(tmp_path):
    path = _workbook(tmp_path / "health.xlsx", {
        "notes": [["written by the district office"]],
        "Health": [["student_id", "measured_on", "weight_kg", "height_cm"], list(HEALTH_ROWS[0])],
    })
    assert describe_file(path, HEALTH).sheet == "Health"
    assert _rows(path)[0]["student_id"] == STUDENTS[0]


def test_header_is_the_first_non_empty_row_and_empty_rows_are_skipped(tmp_path):
    path = _workbook(tmp_path / "health.xlsx", {"data": [
        [None], ["student_id", "measured_on", "weight_kg", "height_cm"],
        list(HEALTH_ROWS[0]), [None, None, None, None], list(HEALTH_ROWS[1]),
    ]})
    assert [r["student_id"] for r in _rows(path)] == STUDENTS[:2]
    assert describe_file(path, HEALTH, count_rows=True).rows == 2


def test_excel_rows_come_in_batches_of_chunk_rows(tmp_path):
    rows = [["student_id", "measured_on", "weight_kg", "height_cm"]] + [list(HEALTH_ROWS[0])] * 5
    path = _workbook(tmp_path / "health.xlsx", {"health": rows})
    assert [b.num_rows for b in file_batches(path, HEALTH, 2)] == [2, 2, 1]


def test_a_file_that_is_not_a_workbook_is_one_clear_error(tmp_path):
    path = tmp_path / "health.xlsx"
    path.write_text("student_id,measured_on\n")
    with pytest.raises(ContractError, match=r"health\.xlsx: cannot read as an Excel \.xlsx workbook"):
        _rows(path)


def test_xlsx_files_are_found_beside_csv_and_parquet_but_not_excel_lock_files(tmp_path):
    folder = tmp_path / "health"
    folder.mkdir()
    for name in ("a.xlsx", "~$a.xlsx", "b.csv"):
        (folder / name).write_text("")
    assert [p.name for p in source_files(tmp_path, HEALTH)] == ["a.xlsx", "b.csv"]
    (tmp_path / "schools.xlsx").write_text("")
    assert source_files(tmp_path, SCHOOLS) == [tmp_path / "schools.xlsx"]


# ---------------------------------------------------------------- CSV encodings

def _csv(path: Path, text: str, encoding: str) -> Path:
    path.write_bytes(text.encode(encoding))
    return path


GRADES_TEXT = "student_id,term,subject_code,credits,grade,recorded_on\n" + "".join(
    f"{STUDENTS[0]},2567-1,ท1610{i},1.5,มส,2024-10-20\n" for i in range(3))


@pytest.mark.parametrize("encoding, detected", [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("cp874", "cp874")])
def test_thai_csv_reads_the_same_in_every_encoding(tmp_path, encoding, detected):
    path = _csv(tmp_path / "grades.csv", GRADES_TEXT, encoding)
    assert detect_encoding(path) == detected
    rows = _rows(path, TABLES["grades"])
    assert [r["subject_code"] for r in rows] == ["ท16100", "ท16101", "ท16102"]
    assert {r["grade"] for r in rows} == {"มส"}
    assert rows[0]["student_id"] == STUDENTS[0]


def test_cp874_csv_with_thai_headers_maps_through_the_profile(tmp_path):
    from risk.data.profile import SourceProfile

    text = "เลขประจำตัวประชาชน,วันที่ชั่ง,น้ำหนัก,ส่วนสูง,หมายเหตุ\n" + f"{STUDENTS[0]},2024-06-04,35,142,ปกติ\n"
    path = _csv(tmp_path / "health.csv", text, "cp874")
    profile = SourceProfile(tables={"health": {"columns": {
        "เลขประจำตัวประชาชน": "student_id", "วันที่ชั่ง": "measured_on", "น้ำหนัก": "weight_kg", "ส่วนสูง": "height_cm"}}})
    assert _rows(path, profile=profile) == [
        {"student_id": STUDENTS[0], "measured_on": "2024-06-04", "weight_kg": "35", "height_cm": "142"}]
    info = describe_file(path, HEALTH, profile)
    assert (info.encoding, info.unmapped, info.missing) == ("cp874", ["หมายเหตุ"], [])
    assert info.columns["น้ำหนัก"] == "weight_kg"


def test_a_thai_character_cut_at_the_sample_end_is_still_utf8(tmp_path):
    head = b"student_id,measured_on,weight_kg,height_cm\n"
    # "ก" is 3 bytes in UTF-8; the sample ends after its first byte.
    body = b"x" * (SAMPLE_BYTES - len(head) - 1) + "ก\n".encode()
    path = tmp_path / "health.csv"
    path.write_bytes(head + body)
    assert detect_encoding(path) == "utf-8"


def test_bytes_neither_utf8_nor_cp874_are_one_clear_error(tmp_path):
    path = tmp_path / "health.csv"
    path.write_bytes(b"student_id,measured_on\n\xff\xfe,1\n")
    with pytest.raises(ContractError, match="neither UTF-8 nor TIS-620/cp874"):
        detect_encoding(path)


def test_a_file_undecodable_past_the_sample_names_the_encoding_option(tmp_path):
    head = "student_id,measured_on,weight_kg,height_cm\n"
    path = tmp_path / "health.csv"
    path.write_bytes(head.encode() + f"{STUDENTS[0]},2024-06-04,35,142\n".encode() * (SAMPLE_BYTES // 30)
                     + "x,ปกติ,1,2\n".encode("cp874"))
    assert detect_encoding(path) == "utf-8"
    with pytest.raises(ContractError, match=r"health\.csv: not readable as utf-8 .*set encoding: .*tables\.health"):
        _rows(path, chunk_rows=10_000_000)


def test_a_profile_encoding_that_is_wrong_names_the_option(tmp_path):
    from risk.data.profile import SourceProfile

    path = _csv(tmp_path / "grades.csv", GRADES_TEXT, "cp874")
    profile = SourceProfile(tables={"grades": {"encoding": "utf-8"}})
    with pytest.raises(ContractError, match=r"not readable as utf-8 .*tables\.grades"):
        _rows(path, TABLES["grades"], profile=profile)


def test_csv_rows_are_counted_from_their_lines(tmp_path):
    path = _csv(tmp_path / "grades.csv", GRADES_TEXT.rstrip("\n"), "utf-8")
    assert describe_file(path, TABLES["grades"], count_rows=True).rows == 3


# ---------------------------------------------------------------- headers

def test_headers_match_after_trimming_spaces_and_a_bom(tmp_path):
    path = _csv(tmp_path / "health.csv", " student_id , measured_on,weight_kg,height_cm \n1,2,3,4\n", "utf-8-sig")
    assert _rows(path) == [{"student_id": "1", "measured_on": "2", "weight_kg": "3", "height_cm": "4"}]


def test_a_missing_column_points_to_risk_contract_and_the_profile(tmp_path):
    path = _csv(tmp_path / "health.csv", "เลขประจำตัว,measured_on,weight_kg,height_cm\n1,2,3,4\n", "utf-8")
    with pytest.raises(ContractError, match=r"missing required column\(s\) student_id.*`risk contract`.*"
                                            r"tables\.health\.columns"):
        inspect_file(path, HEALTH)


def test_two_headers_for_one_column_are_an_error(tmp_path):
    path = _csv(tmp_path / "health.csv", "student_id,student_id ,measured_on,weight_kg,height_cm\n", "utf-8")
    with pytest.raises(ContractError, match="both give column 'student_id'"):
        inspect_file(path, HEALTH)


def test_parquet_columns_are_renamed_by_the_profile(tmp_path):
    import pyarrow.parquet as pq

    from risk.data.profile import SourceProfile

    path = tmp_path / "health.parquet"
    pq.write_table(pa.table({"cid": [STUDENTS[0]], "measured_on": [dt.date(2024, 6, 4)],
                             "weight_kg": [35.0], "height_cm": [142.0]}), path)
    profile = SourceProfile(tables={"health": {"columns": {"cid": "student_id"}}})
    assert inspect_file(path, HEALTH, profile) == 1
    assert _rows(path, profile=profile)[0]["student_id"] == STUDENTS[0]


def test_cp874_text_keeps_values_nulls_and_boundaries():
    from risk.data.formats import cp874_text

    values = ["มส", None, "", "ผ", "2/1", "\u00a0ท21101", "€"]
    raw = pa.array([None if v is None else v.encode("cp874") for v in values], pa.binary())
    assert cp874_text(raw).to_pylist() == values
    assert cp874_text(raw.slice(3)).to_pylist() == values[3:]
    assert cp874_text(pa.array([b"present", None], pa.binary())).type == pa.string()


def test_an_undefined_byte_in_a_cp874_column_names_the_encoding_option(tmp_path):
    from risk.data.profile import SourceProfile

    path = tmp_path / "grades.csv"
    path.write_bytes(GRADES_TEXT.encode("cp874") + f"{STUDENTS[0]},2567-1,".encode() + b"\xdb,1,4,2024-10-20\n")
    profile = SourceProfile(tables={"grades": {"encoding": "cp874"}})
    with pytest.raises(ContractError, match=r"grades\.csv: not readable as cp874 text \(byte 0xdb\).*tables\.grades"):
        _rows(path, TABLES["grades"], profile=profile)


def test_a_cp874_byte_in_a_column_the_contract_does_not_use_is_never_decoded(tmp_path):
    from risk.data.profile import SourceProfile

    path = tmp_path / "health.csv"
    path.write_bytes(b"student_id,measured_on,weight_kg,height_cm,note\n" + STUDENTS[0].encode() + b",2024-06-04,35,142,\xdb\n")
    profile = SourceProfile(tables={"health": {"encoding": "cp874"}})
    assert _rows(path, profile=profile)[0]["weight_kg"] == "35"


def test_a_checked_file_info_raises_for_a_missing_column_and_records_how_it_read(tmp_path):
    path = _csv(tmp_path / "grades.csv", GRADES_TEXT, "cp874")
    info = describe_file(path, TABLES["grades"], root=tmp_path, check=True)
    assert (info.path, info.format, info.encoding, info.sheet, info.rows) == ("grades.csv", "csv", "cp874", None, None)
    with pytest.raises(ContractError, match="missing required column"):
        describe_file(path, TABLES["health"], check=True)
    assert describe_file(path, TABLES["health"]).missing == ["measured_on", "weight_kg", "height_cm"]


def _typed(path: Path, table, profile=None):
    from risk.data.values import typed_frame

    frame, bad = typed_frame(pa.Table.from_batches(list(file_batches(path, table, 1000, profile))), table,
                             source="export")
    return frame, bad


@pytest.mark.parametrize("name", ["household", "grades", "enrollments"])
def test_every_reader_gives_the_same_typed_table(tmp_path, name):
    import pandas as pd
    from conftest import clean_tables

    table, frame = TABLES[name], clean_tables()[name]
    frame.to_parquet(tmp_path / "p.parquet", index=False)
    written = {"parquet": tmp_path / "p.parquet"}
    for encoding in ("utf-8", "utf-8-sig", "cp874"):
        written[encoding] = tmp_path / f"{encoding}.csv"
        frame.to_csv(written[encoding], index=False, encoding=encoding, date_format="%Y-%m-%d")
    # Excel as people type it: IDs and codes in number cells, dates in date cells, flags as flags.
    cells = frame.astype(object).where(frame.notna(), None)
    for column in ("student_id", "school_id"):
        if column in cells:
            cells[column] = [int(v) if v.isdigit() else v for v in cells[column]]
    written["xlsx"] = _workbook(tmp_path / "x.xlsx", {name: [list(frame.columns)] + cells.values.tolist()})
    expected, _ = _typed(written["parquet"], table)
    for kind, path in written.items():
        got, bad = _typed(path, table)
        assert bad == {}, kind
        pd.testing.assert_frame_equal(got, expected, obj=kind)


def test_utf16_text_says_how_to_save_it(tmp_path):
    path = _csv(tmp_path / "health.csv", "student_id,measured_on\n", "utf-16")
    with pytest.raises(ContractError, match="UTF-16 text.*save it as 'CSV UTF-8'"):
        detect_encoding(path)
