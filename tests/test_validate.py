"""Validation: every corrupted row is quarantined with its rule, and the counts add up."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from conftest import DAYS_A, SCHOOL_A, STUDENTS, TERM, clean_tables, thai_id, write_source

from risk.data.validate import validate_sources
from risk.errors import ContractError

# Rows appended to a clean export, each broken in one known way: table -> [(rule, row)].
NEW_IDS = [thai_id(f"1103700200{i:02d}") for i in range(20)]
ORPHAN = thai_id("150000099999")


def _enrollment(student_id: str, **changes: object) -> dict:
    row = clean_tables()["enrollments"].iloc[0].to_dict() | {"student_id": student_id}
    return row | changes


def corruptions() -> dict[str, list[tuple[str, dict]]]:
    t = clean_tables()
    school = t["schools"].iloc[0].to_dict()
    first = {name: frame.iloc[0].to_dict() for name, frame in t.items()}
    bad_check = STUDENTS[0][:-1] + str((int(STUDENTS[0][-1]) + 1) % 10)
    return {
        "schools": [
            ("not_allowed", school | {"school_id": "1099900003", "province_code": "99"}),
            ("district_mismatch", school | {"school_id": "1099900004", "district_code": "4101"}),
            ("bad_format", school | {"school_id": "12345"}),
            ("duplicate", school),
        ],
        "calendar": [
            ("unknown_school", {"school_id": "9999999999", "date": DAYS_A[0], "term": TERM}),
            ("date_outside_term", {"school_id": SCHOOL_A, "date": dt.date(2024, 11, 4), "term": TERM}),
            ("duplicate", first["calendar"]),
        ],
        "enrollments": [
            ("invalid_id", _enrollment(bad_check)),
            ("invalid_id", _enrollment("12345")),
            ("not_allowed", _enrollment(NEW_IDS[0], grade_level="P7")),
            ("not_allowed", _enrollment(NEW_IDS[1], sex="femal")),
            ("out_of_range", _enrollment(NEW_IDS[2], birth_date=dt.date(1984, 1, 1))),
            ("unknown_school", _enrollment(NEW_IDS[3], school_id="1000000000")),
            ("bad_format", _enrollment(NEW_IDS[4], term="2567-3")),
            ("unknown_term", _enrollment(NEW_IDS[5], term="2566-2")),
            ("missing_required", _enrollment(NEW_IDS[6], sex=None)),
            ("duplicate_key", _enrollment(STUDENTS[0], grade_level="M1")),
        ],
        "attendance_daily": [
            ("not_a_school_day", {"student_id": STUDENTS[0], "date": dt.date(2024, 6, 9), "status": "present"}),
            # School B is closed on Friday 7 June though school A is open.
            ("not_a_school_day", {"student_id": STUDENTS[2], "date": dt.date(2024, 6, 7), "status": "present"}),
            ("orphan_student", {"student_id": ORPHAN, "date": DAYS_A[0], "status": "present"}),
            ("not_allowed", {"student_id": STUDENTS[0], "date": DAYS_A[1], "status": "Present"}),
            ("bad_date", {"student_id": STUDENTS[0], "date": dt.date(1967, 6, 3), "status": "present"}),
            ("no_enrollment_that_term", {"student_id": STUDENTS[0], "date": dt.date(2024, 12, 2), "status": "present"}),
            ("duplicate", first["attendance_daily"]),
            ("duplicate_key", first["attendance_daily"] | {"status": "absent"}),
        ],
        "grades": [
            ("not_allowed", first["grades"] | {"subject_code": "ท16102", "grade": "5"}),
            ("out_of_range", first["grades"] | {"subject_code": "ท16103", "credits": 0.7}),
            ("bad_format", first["grades"] | {"subject_code": "X21101"}),
            ("missing_required", first["grades"] | {"subject_code": "ท16104", "grade": None}),
            ("bad_type", first["grades"] | {"subject_code": "ท16105", "credits": "abc"}),
            ("unknown_term", first["grades"] | {"term": "2566-2"}),
        ],
        "household": [
            ("out_of_range", first["household"] | {"screened_on": dt.date(2024, 7, 1), "monthly_income_baht": -5.0}),
            ("not_allowed", first["household"] | {"screened_on": dt.date(2024, 7, 2), "cct_status": "Poor"}),
            ("orphan_student", first["household"] | {"student_id": ORPHAN}),
        ],
        "health": [
            ("out_of_range", first["health"] | {"measured_on": dt.date(2024, 7, 1), "height_cm": 2000.0}),
            ("out_of_range", first["health"] | {"measured_on": dt.date(2024, 7, 2), "weight_kg": 0.0}),
            ("invalid_id", first["health"] | {"student_id": "G12345"}),
        ],
        "behaviour": [
            ("out_of_range", first["behaviour"] | {"screened_on": dt.date(2024, 7, 1), "sdq_conduct": 14}),
            ("bad_date", first["behaviour"] | {"screened_on": dt.date(1967, 6, 6)}),
        ],
        "assistance": [
            ("not_allowed", first["assistance"] | {"programme": "cash"}),
            ("out_of_range", first["assistance"] | {"amount_baht": -1.0}),
            ("duplicate", first["assistance"]),
        ],
    }


@pytest.fixture(scope="module")
def corrupted_run(tmp_path_factory: pytest.TempPathFactory):
    """The clean export with every corruption appended, validated once for the module's tests (they only read it)."""
    tmp_path = tmp_path_factory.mktemp("corrupted")
    tables = clean_tables()
    expected: dict[str, set[tuple[int, str]]] = {}
    for name, rows in corruptions().items():
        base = len(tables[name])
        extra = pd.DataFrame([row for _, row in rows])
        if name == "grades":  # CSV: credits may hold text
            extra["credits"] = extra["credits"].astype(object)
        tables[name] = pd.concat([tables[name], extra], ignore_index=True)
        expected[name] = {(base + i, rule) for i, (rule, _) in enumerate(rows)}
    source = write_source(tables, tmp_path / "source")
    report = validate_sources(source, tmp_path / "out", key=b"test-key-0123456789abcdef", progress=False)
    return report, tmp_path / "out", expected, tables


def _quarantined(out: Path, table: str) -> set[tuple[int, str]]:
    frame = pd.read_parquet(out / "quarantine" / table)
    return set(zip(frame["_row"].astype(int), frame["rule"], strict=True))


@pytest.mark.parametrize("table", list(clean_tables()))
def test_each_corrupted_row_is_quarantined_with_its_rule(corrupted_run, table):
    _, out, expected, _ = corrupted_run
    assert _quarantined(out, table) == expected[table]


def test_counts_add_up_and_clean_rows_are_all_used(corrupted_run):
    report, out, expected, tables = corrupted_run
    for counts in report.tables:
        assert counts.rows_in == len(tables[counts.table])
        assert counts.rows_in == counts.used + counts.quarantined
        assert counts.quarantined == len(expected[counts.table])
        assert sum(counts.by_rule.values()) == counts.quarantined


def test_quarantine_keeps_file_and_a_readable_detail(corrupted_run):
    _, out, _, _ = corrupted_run
    health = pd.read_parquet(out / "quarantine" / "health")
    tall = health[health["rule"] == "out_of_range"].sort_values("_row").iloc[0]
    assert tall["_file"] == "health.parquet"
    assert "height_cm = 2000.0" in tall["detail"]


def test_validated_attendance_carries_term_and_school(corrupted_run):
    _, out, _, _ = corrupted_run
    attendance = pd.read_parquet(out / "attendance_daily")
    assert set(attendance["term"].astype(str)) == {TERM}
    assert "student_id" not in attendance.columns
    assert attendance["student_key"].dtype == "int64"


def test_csv_with_thai_text_round_trips(corrupted_run):
    _, out, _, _ = corrupted_run
    schools = pd.read_parquet(out / "schools")
    assert "โรงเรียนบ้านหนองบัว" in set(schools["name"])


def test_missing_required_column_names_file_and_columns(tmp_path: Path, id_key: bytes):
    tables = clean_tables()
    tables["health"] = tables["health"].drop(columns=["height_cm", "weight_kg"])
    source = write_source(tables, tmp_path / "source")
    with pytest.raises(ContractError, match=r"health\.parquet.*height_cm") as caught:
        validate_sources(source, tmp_path / "out", key=id_key, progress=False)
    assert "weight_kg" in str(caught.value)


def test_unreadable_file_is_a_contract_error(tmp_path: Path, id_key: bytes):
    source = write_source(clean_tables(), tmp_path / "source")
    (source / "behaviour.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(ContractError, match=r"behaviour\.parquet"):
        validate_sources(source, tmp_path / "out", key=id_key, progress=False)


def test_missing_table_is_a_contract_error(tmp_path: Path, id_key: bytes):
    source = write_source(clean_tables(), tmp_path / "source")
    (source / "assistance.parquet").unlink()
    with pytest.raises(ContractError, match="assistance"):
        validate_sources(source, tmp_path / "out", key=id_key, progress=False)


def test_folder_of_files_and_small_chunks_give_the_same_result(tmp_path: Path, id_key: bytes):
    tables = clean_tables()
    source = write_source(tables, tmp_path / "source")
    attendance = tables["attendance_daily"]
    (source / "attendance_daily.parquet").unlink()
    (source / "attendance_daily").mkdir()
    attendance.iloc[:7].to_parquet(source / "attendance_daily" / "a.parquet", index=False)
    attendance.iloc[7:].to_parquet(source / "attendance_daily" / "b.parquet", index=False)
    report = validate_sources(source, tmp_path / "out", key=id_key, progress=False, chunk_rows=3)
    counts = {t.table: t for t in report.tables}
    assert counts["attendance_daily"].used == len(attendance)
    assert counts["attendance_daily"].files == 2
