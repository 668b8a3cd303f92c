"""The validated files written from the staged buckets: the contract's types, one file a folder, repeats left out."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from conftest import clean_tables, write_source

from risk.data.validate import validate_sources


def _export_with_repeats(folder: Path) -> tuple[Path, pd.DataFrame]:
    """The clean export, its attendance sent twice over (an exact copy of row 0, a conflicting row 1)."""
    tables = clean_tables()
    attendance = tables["attendance_daily"]
    copy, conflict = attendance.iloc[[0]], attendance.iloc[[1]].assign(status="absent")
    assert attendance.iloc[1]["status"] != "absent"
    tables["attendance_daily"] = pd.concat([attendance, copy, conflict], ignore_index=True)
    return write_source(tables, folder), attendance


def test_validated_attendance_keeps_the_first_of_each_key_in_contract_types(tmp_path: Path, id_key: bytes):
    source, attendance = _export_with_repeats(tmp_path / "source")
    out = tmp_path / "validated"
    report = validate_sources(source, out, key=id_key, buckets=4, progress=False)

    counts = next(t for t in report.tables if t.table == "attendance_daily")
    assert counts.by_rule == {"duplicate": 1, "duplicate_key": 1}
    files = sorted((out / "attendance_daily").rglob("*.parquet"))
    # One file per bucket and term folder, named by the run's batch.
    assert len({f.parent for f in files}) == len(files)
    assert all(f.name == f"part-{report.batch}-0.parquet" for f in files)
    expected = pa.schema([("student_key", pa.int64()), ("date", pa.date32()), ("status", pa.string()),
                          ("school_id", pa.string())])
    assert all(pq.read_schema(f).remove_metadata().equals(expected) for f in files)
    rows = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
    # The first row of each key stays as it was sent: row 1's status, not the conflicting row's.
    assert len(rows) == len(attendance) == counts.used
    assert sorted(rows["status"]) == sorted(attendance["status"])
