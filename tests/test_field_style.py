"""The field style: the same export as schools send it (Excel, cp874, BOM, Buddhist-Era dates)
validates, with the field profile, to exactly what the clean style validates to."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
from python_calamine import CalamineWorkbook

from risk.data.contract import TABLES
from risk.data.profile import apply_values, load_profile
from risk.data.synth import SynthConfig, generate
from risk.data.synth.field import write_field_style
from risk.data.synth.field_values import FieldColumns, date_text
from risk.data.validate import validate_sources

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "synth.yaml"
PROFILE = REPO / "configs" / "profiles" / "field.yaml"
KEY = b"field-style-test-key-0123456789"
# Small enough to split enrollments (about 600 rows) into several workbooks.
SHEET_ROWS = 250


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("field")
    generate(root / "clean", students=300, terms=2, seed=7, config=SynthConfig.from_yaml(CONFIG), progress=False)
    write_field_style(root / "clean", root / "field", profile=PROFILE, max_sheet_rows=SHEET_ROWS)
    return root


@pytest.fixture(scope="module")
def validated(exports: Path):
    clean = validate_sources(exports / "clean", exports / "v_clean", key=KEY, progress=False, buckets=2)
    field = validate_sources(exports / "field", exports / "v_field", key=KEY, progress=False, buckets=2,
                             profile=load_profile(PROFILE))
    return clean, field


def _validated(store: Path, table: str) -> pd.DataFrame:
    frame = duckdb.sql(f"SELECT * FROM read_parquet('{store}/{table}/**/*.parquet', hive_partitioning = true, "
                       "union_by_name = true)").df()
    frame = frame[sorted(frame.columns)]
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def _field_text(path: Path, encoding: str) -> str:
    return path.read_bytes().decode(encoding)


# --- what the field export holds ---------------------------------------------------------


def test_schools_and_enrollments_are_workbooks_with_codes_in_number_cells(exports: Path) -> None:
    schools = CalamineWorkbook.from_path(exports / "field" / "schools" / "part-00000.xlsx")
    header, first = schools.get_sheet_by_name("schools").to_python()[:2]
    assert header[0] == "school_id" and isinstance(first[0], float) and len(str(int(first[0]))) == 10
    book = CalamineWorkbook.from_path(next((exports / "field" / "enrollments").glob("*.xlsx")))
    assert book.sheet_names == ["คำชี้แจง", "ข้อมูลนักเรียน"]  # a cover note before the data, as DMC's
    header, first = book.get_sheet_by_name("ข้อมูลนักเรียน").to_python()[:2]
    assert header[0] == "เลขประจำตัวประชาชน" and isinstance(first[0], float) and len(str(int(first[0]))) == 13
    birth = header.index("วันเกิด")
    assert type(first[birth]).__name__ == "date"


def test_a_part_over_the_sheet_limit_is_split_into_numbered_workbooks(exports: Path) -> None:
    names = sorted(p.name for p in (exports / "field" / "enrollments").iterdir())
    assert len(names) >= 2 and names[:2] == ["part-00000-01.xlsx", "part-00000-02.xlsx"]
    for name in names:
        book = CalamineWorkbook.from_path(exports / "field" / "enrollments" / name)
        assert len(book.get_sheet_by_name("ข้อมูลนักเรียน").to_python()) <= SHEET_ROWS + 1


def test_household_is_cp874_with_thai_headers_be_day_first_dates_and_thai_digits(exports: Path) -> None:
    path = exports / "field" / "household" / "part-00000.csv"
    with pytest.raises(UnicodeDecodeError):
        _field_text(path, "utf-8")
    header, *lines = _field_text(path, "cp874").splitlines()
    assert header.startswith('"เลขประจำตัวประชาชน","วันที่คัดกรอง"')
    screened = [line.split(",")[1].strip('"') for line in lines]
    assert sum(bool(re.fullmatch(r"\d{2}/\d{2}/25\d{2}", d)) for d in screened) > 0.95 * len(lines)
    sizes = [line.split(",")[2].strip('"') for line in lines]
    assert sum(bool(re.fullmatch(r"[๐-๙]+", n)) for n in sizes) > 0.95 * len(lines)


def test_attendance_is_utf8_with_bom_and_buddhist_era_iso_dates(exports: Path) -> None:
    raw = (exports / "field" / "attendance_daily" / "part-00000.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    header, *lines = raw[3:].decode("utf-8").splitlines()
    assert header == '"student_id","date","status"'
    dates = [line.split(",")[1].strip('"') for line in lines]
    assert sum(bool(re.fullmatch(r"25\d{2}-\d{2}-\d{2}", d)) for d in dates) > 0.95 * len(lines)


def test_dates_are_written_as_thai_forms_write_them() -> None:
    days = pa.array([19890, None], pa.int32()).view(pa.date32())  # 2024-06-16
    assert date_text(days, "dmy", "be").to_pylist() == ["16/06/2567", None]
    assert date_text(days, "ymd", "be").to_pylist() == ["2567-06-16", None]
    assert date_text(days, "dmy", "ce").to_pylist() == ["16/06/2024", None]


def test_a_typo_that_is_a_form_word_stays_a_typo_after_the_profile() -> None:
    """Clean ``sex = ชาย`` is an injected typo; written as ``ชาย`` it would read back as male."""
    wanted = load_profile(PROFILE).table("enrollments")
    words = FieldColumns.from_profile("enrollments", wanted).values
    assert words["sex"]["male"] == "ชาย" and words["sex"]["ชาย"] == "ชายย"
    assert words["grade_level"]["ป.6"] == "ป.66"
    written = pa.array([words["sex"][v] for v in ("male", "female", "ชาย")])
    back = apply_values(pa.RecordBatch.from_arrays([written], names=["sex"]), wanted).column("sex").to_pylist()
    assert back[:2] == ["male", "female"] and back[2] not in TABLES["enrollments"].column("sex").allowed


def test_truth_and_report_are_copied_and_the_manifest_names_field_files(exports: Path) -> None:
    clean, field = exports / "clean", exports / "field"
    for name in ("truth.parquet", "synth_report.json"):
        assert (field / name).read_bytes() == (clean / name).read_bytes()
    manifest = pd.read_parquet(field / "_injected.parquet")
    assert len(manifest) == len(pd.read_parquet(clean / "_injected.parquet"))
    assert all((field / f).is_file() for f in manifest["file"].unique())


# --- the field export through the validator -------------------------------------------------


def test_both_styles_give_the_same_counts_per_table_and_rule(validated) -> None:
    clean, field = validated
    assert [(t.table, t.rows_in, t.used, t.by_rule) for t in field.tables] == \
        [(t.table, t.rows_in, t.used, t.by_rule) for t in clean.tables]


@pytest.mark.parametrize("table", list(TABLES))
def test_both_styles_validate_to_the_same_table(exports: Path, validated, table: str) -> None:
    pd.testing.assert_frame_equal(_validated(exports / "v_field", table), _validated(exports / "v_clean", table))


def test_field_quarantine_is_exactly_the_rewritten_manifest(exports: Path, validated) -> None:
    injected = pd.read_parquet(exports / "field" / "_injected.parquet")
    quarantined = pd.concat([pd.read_parquet(f).assign(table=f.parent.name)
                             for f in (exports / "v_field" / "quarantine").glob("*/*.parquet")], ignore_index=True)
    merged = injected.merge(quarantined[["table", "_file", "_row", "rules"]], how="outer", indicator=True,
                            left_on=["table", "file", "row"], right_on=["table", "_file", "_row"])
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
    assert all(kind in rules.split(";") for kind, rules in zip(merged["kind"], merged["rules"], strict=True))


def test_generate_field_style_leaves_only_the_field_export(tmp_path: Path) -> None:
    from risk.data.synth.field import generate_field_style

    synth, field = generate_field_style(tmp_path / "field", profile=PROFILE, students=60, terms=1, seed=2,
                                        config=SynthConfig.from_yaml(CONFIG), progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["field"]  # the clean scratch export is gone
    assert {t.table: t.rows for t in field.tables} == synth.rows
    assert any("xlsx" in line and "enrollments" in line for line in field.summary_lines())
