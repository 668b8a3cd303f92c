"""``risk validate``: read source exports, check them against the contract, pseudonymise, quarantine.

Two passes per table, both streaming:

1. Row rules, chunk by chunk (pandera over each parsed chunk): types, allowed
   values, ranges, ID check digits, and references to tables validated before
   (known schools and terms, enrolled students, school days). Student IDs become
   keyed pseudonyms here; clean rows go to a staging folder, bad ones to quarantine.
2. Duplicates, over the whole table (DuckDB over the staging Parquet): an exact
   copy of an earlier row, or a second row for the same key.

Tables are taken in contract order (schools, calendar, enrollments, then the
student tables), so each can be checked against the ones before it. Every run
accounts for every row: in = used + quarantined, per table.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from pydantic import BaseModel

from risk.data.contract import TABLE_ORDER, TABLES, Table
from risk.data.ids import Pseudonymizer
from risk.data.reading import inspect_file, source_files
from risk.data.row_rules import RowPass, run_row_pass, write_rows
from risk.data.schemas import (
    References,
    enrollment_key,
    school_day_codes,
    term_codes,
)
from risk.errors import ContractError
from risk.logs import get_logger
from risk.progress import Progress, TaskID

__all__ = ["DERIVED", "TableCounts", "ValidationReport", "validate_sources"]

log = get_logger(__name__)
STAGING = "_staging"
# Caches computed from validated tables (e.g. past dropout rates); stale once tables change.
DERIVED = "_derived"
QUARANTINE = "quarantine"
REPORT_FILE = "validation_report.json"
# Dates of events (screenings, payments, grades) must fall inside the calendar's
# span, widened for screenings before the first term and grades entered after the last.
WINDOW_BEFORE = dt.timedelta(days=365)
WINDOW_AFTER = dt.timedelta(days=183)


class TableCounts(BaseModel):
    """Rows of one table: read, used, quarantined (in total and per rule)."""

    table: str
    files: int
    rows_in: int
    used: int
    quarantined: int
    by_rule: dict[str, int]

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.used + self.quarantined


class ValidationReport(BaseModel):
    source: str
    output: str
    seconds: float
    tables: list[TableCounts]

    def summary_lines(self) -> list[str]:
        lines = [f"{'table':<18}{'in':>14}{'used':>14}{'quarantined':>13}  top reasons"]
        for t in self.tables:
            top = ", ".join(f"{r} {n:,}" for r, n in sorted(t.by_rule.items(), key=lambda kv: -kv[1])[:3])
            lines.append(f"{t.table:<18}{t.rows_in:>14,}{t.used:>14,}{t.quarantined:>13,}  {top}")
        total_in = sum(t.rows_in for t in self.tables)
        total_q = sum(t.quarantined for t in self.tables)
        lines.append(f"{'all':<18}{total_in:>14,}{total_in - total_q:>14,}{total_q:>13,}  in {self.seconds:.1f} s")
        return lines


def validate_sources(
    source_dir: Path, out_dir: Path, *, key: bytes, chunk_rows: int = 1_000_000, buckets: int = 32,
    progress: bool = True, memory_limit: str = "4GB", workers: int = 1,
) -> ValidationReport:
    """Validate every contract table in ``source_dir`` into ``out_dir``.

    Writes ``out_dir/<table>/`` (clean rows, pseudonymised; student tables
    hive-partitioned by ``bucket`` = student_key mod ``buckets``, attendance also by ``term``),
    ``out_dir/quarantine/<table>.parquet`` (rejected rows with ``rule``, ``rules``,
    ``detail``, ``_file``, ``_row``) and ``out_dir/validation_report.json``.

    ``workers`` processes share the row-rules pass of tables held in several files.

    Raises
    ------
    ContractError
        When a table's file is missing, unreadable, or lacks required columns.
    """
    started = time.perf_counter()
    # Every file is opened and its header checked before any work, so a broken
    # export fails in seconds, not after an hour of attendance.
    files = {name: source_files(source_dir, TABLES[name]) for name in TABLE_ORDER}
    known_rows = {name: _known_rows(paths, TABLES[name]) for name, paths in files.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / DERIVED, ignore_errors=True)
    con = _duckdb(out_dir, memory_limit)
    refs = References()
    pseudonymize = Pseudonymizer(key)
    counts = []
    with Progress(enabled=progress) as bar:
        for name in TABLE_ORDER:
            table = TABLES[name]
            task = bar.add(f"validate {name}", total=known_rows[name])
            counts.append(_validate_table(table, files[name], source_dir, out_dir, pseudonymize, refs, chunk_rows,
                                          con, bar, task, buckets, workers))
            pseudonymize.freeze()
            refs = _extend_references(refs, table, out_dir, con)
    shutil.rmtree(out_dir / STAGING, ignore_errors=True)
    report = ValidationReport(source=str(source_dir), output=str(out_dir),
                              seconds=round(time.perf_counter() - started, 2), tables=counts)
    (out_dir / REPORT_FILE).write_text(json.dumps(report.model_dump(), indent=2, ensure_ascii=False))
    return report


def _duckdb(out_dir: Path, memory_limit: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET temp_directory = '{out_dir / '_duckdb_tmp'}'")
    con.execute("SET preserve_insertion_order = false")
    return con


def _validate_table(table: Table, files: list[Path], source_dir: Path, out_dir: Path, pseudonymize: Pseudonymizer,
                    refs: References, chunk_rows: int, con: duckdb.DuckDBPyConnection, bar: Progress,
                    task: TaskID, buckets: int, workers: int) -> TableCounts:
    staging = out_dir / STAGING / table.name
    quarantine = out_dir / QUARANTINE / table.name
    for folder in (staging, quarantine, out_dir / table.name):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    started = time.perf_counter()
    work = RowPass(table, refs, pseudonymize, source_dir, staging, quarantine, chunk_rows)
    rows_in = run_row_pass(work, files, workers=workers, bar=bar, task=task)
    rows_seconds = time.perf_counter() - started
    if not any(staging.iterdir()):
        raise ContractError(f"table {table.name!r} has no rows in {', '.join(str(p) for p in files)}")
    _remove_duplicates(table, staging, quarantine, out_dir / table.name, con, buckets)
    bar.done(task)
    counts = _count(table, len(files), rows_in, out_dir, quarantine, con)
    log.info("table validated", table=table.name, rows_in=counts.rows_in, used=counts.used,
             quarantined=counts.quarantined, row_rules_s=round(rows_seconds, 2),
             duplicates_s=round(time.perf_counter() - started - rows_seconds, 2))
    return counts


def _known_rows(files: list[Path], table: Table) -> int | None:
    """Rows in ``files`` when every one is Parquet (CSV row counts are unknown before reading)."""
    counts = [inspect_file(p, table) for p in files]
    return None if None in counts else sum(counts)


def _remove_duplicates(table: Table, staging: Path, quarantine: Path, final: Path,
                       con: duckdb.DuckDBPyConnection, buckets: int) -> None:
    """Quarantine exact copies and second rows for a key; write the rest as the validated table."""
    source = f"read_parquet('{staging}/*.parquet', union_by_name = true)"
    data_cols = [c for c in table.column_names if c != "student_id"]
    if table.has_student:
        data_cols = ["student_key", *data_cols]
    key_cols = [("student_key" if c == "student_id" else c) for c in table.unique_key] or data_cols
    keys = ", ".join(f'"{c}"' for c in key_cols)
    repeated = f"SELECT {keys} FROM {source} GROUP BY {keys} HAVING count(*) > 1"
    groups = con.execute(f"SELECT s.* FROM {source} s SEMI JOIN ({repeated}) k USING ({keys})").df()
    dups = _duplicate_rows(groups, key_cols, data_cols)
    if len(dups):
        write_rows(dups, quarantine / "duplicates.parquet")
    con.register("dup_rows", dups[["_file", "_row"]] if len(dups) else _NO_ROWS)
    select = ", ".join(_output_column(table, c) for c in _output_columns(table))
    partition = ""
    if table.has_student:
        # Students are spread over buckets by pseudonym, so that feature building can
        # take one bucket of students at a time and read only that bucket's files.
        select += f", ((s.student_key % {buckets}) + {buckets}) % {buckets} AS bucket"
        by = "bucket, term" if table.name == "attendance_daily" else "bucket"
        partition = f", PARTITION_BY ({by}), OVERWRITE_OR_IGNORE"
    target = final if partition else final / "part-00000.parquet"
    con.execute(
        f"COPY (SELECT {select} FROM {source} s ANTI JOIN dup_rows d ON s._file = d._file AND s._row = d._row) "
        f"TO '{target}' (FORMAT parquet, COMPRESSION zstd{partition})"
    )
    con.unregister("dup_rows")


_NO_ROWS = pd.DataFrame({"_file": pd.Series(dtype="str"), "_row": pd.Series(dtype="int64")})


def _duplicate_rows(groups: pd.DataFrame, key_cols: list[str], data_cols: list[str]) -> pd.DataFrame:
    """Of rows sharing a key, all but the first (in file order): exact copies, then conflicts."""
    if groups.empty:
        return groups.assign(rule=pd.Series(dtype="str"), rules=pd.Series(dtype="str"), detail=pd.Series(dtype="str"))
    groups = groups.sort_values(["_file", "_row"], kind="stable").reset_index(drop=True)
    later_key = groups.duplicated(key_cols, keep="first")
    exact = groups.duplicated(data_cols, keep="first")
    first = groups.groupby(key_cols, dropna=False, sort=False)[["_file", "_row"]].transform("first")
    dups = groups.loc[later_key].copy()
    is_exact = exact[later_key].to_numpy()
    dups["rule"] = np.where(is_exact, "duplicate", "duplicate_key")
    dups["rules"] = dups["rule"]
    where = first.loc[later_key]
    dups["detail"] = [
        f"{'copy of' if e else 'same key as'} row {r} of {f}"
        for e, f, r in zip(is_exact, where["_file"], where["_row"], strict=True)
    ]
    return dups


def _output_columns(table: Table) -> list[str]:
    cols = [c for c in table.column_names if c != "student_id"]
    if table.has_student:
        cols = ["student_key", *cols]
    if table.name == "enrollments":
        cols.insert(1, "id_hint")
    if table.name == "attendance_daily":
        cols += ["term", "school_id"]
    return cols


def _output_column(table: Table, name: str) -> str:
    if table.name == "attendance_daily" and name == "term":
        return "concat(s.term_code // 10, '-', s.term_code % 10) AS term"
    if table.name == "attendance_daily" and name == "school_id":
        return "lpad(CAST(CAST(s.school_code AS BIGINT) AS VARCHAR), 10, '0') AS school_id"
    kind = table.column(name).kind if name in table.column_names else None
    if kind == "int":
        return f'CAST(s."{name}" AS BIGINT) AS "{name}"'
    if kind == "date":
        return f'CAST(s."{name}" AS DATE) AS "{name}"'
    return f's."{name}"'


def _count(table: Table, files: int, rows_in: int, out_dir: Path, quarantine: Path,
           con: duckdb.DuckDBPyConnection) -> TableCounts:
    used = con.execute(f"SELECT count(*) FROM read_parquet('{out_dir / table.name}/**/*.parquet')").fetchone()[0]
    q_files = sorted(quarantine.glob("*.parquet"))
    by_rule: dict[str, int] = {}
    if q_files:
        rows = con.execute(
            f"SELECT rule, count(*) FROM read_parquet({[str(p) for p in q_files]}, union_by_name = true) GROUP BY rule"
        ).fetchall()
        by_rule = {rule: n for rule, n in rows}
    counts = TableCounts(table=table.name, files=files, rows_in=rows_in, used=used,
                         quarantined=sum(by_rule.values()), by_rule=by_rule)
    if not counts.balanced:
        raise RuntimeError(f"{table.name}: {rows_in} rows in but {used} used + {counts.quarantined} quarantined; "
                           "report this as a bug")
    return counts


def _extend_references(refs: References, table: Table, out_dir: Path, con: duckdb.DuckDBPyConnection) -> References:
    """What later tables need to know about ``table``, read back from its validated output."""
    source = f"read_parquet('{out_dir / table.name}/**/*.parquet')"
    if table.name == "schools":
        ids = con.execute(f"SELECT DISTINCT school_id FROM {source}").df()["school_id"]
        refs.school_ids = frozenset(ids)
    elif table.name == "calendar":
        days = con.execute(f"SELECT DISTINCT school_id, date::TIMESTAMP AS date, term FROM {source}").df()
        refs.terms = frozenset(days["term"])
        if len(days):
            first, last = days["date"].min().date(), days["date"].max().date()
            refs.window = (first - WINDOW_BEFORE, last + WINDOW_AFTER)
        refs.school_days = pd.Index(np.unique(school_day_codes(days["school_id"], days["date"])))
    elif table.name == "enrollments":
        enrol = con.execute(f"SELECT student_key, term, school_id FROM {source}").df()
        refs.enrolled = pd.Index(np.unique(enrol["student_key"].to_numpy()))
        # (student, term) is unique after the duplicate pass, so the index is too.
        refs.enrollment_keys = pd.Index(enrollment_key(enrol["student_key"].to_numpy(), term_codes(enrol["term"])))
        refs.enrollment_school = enrol["school_id"].astype("int64").to_numpy()
    return refs
