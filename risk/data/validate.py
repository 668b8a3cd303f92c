"""``risk validate``: read source exports, check them against the contract, pseudonymise, quarantine.

Two passes per table, both streaming:

1. Row rules, chunk by chunk (pandera over each parsed chunk): types, allowed
   values, ranges, ID check digits, and references to tables validated before
   (known schools and terms, enrolled students, school days). Student IDs become
   keyed pseudonyms here; clean rows are staged by student bucket, bad ones quarantined.
2. Duplicates, bucket by bucket (:mod:`risk.data.duplicates`): an exact copy of an
   earlier row, or a second row for the same key, earlier in the export or already
   in the validated store.

Tables are taken in contract order (schools, calendar, enrollments, then the
student tables), so each can be checked against the ones before it.

The output folder is a store that grows run by run (:mod:`risk.data.incremental`):
a new export adds new part files and never rewrites earlier ones; references come
from what the store holds plus the export; an export already taken (same content
hash) is skipped. Every run accounts for every row: in = used + quarantined, per
table, in its own report (``validation_runs/<batch>.json``); ``validation_report.json``
sums the runs that added rows, so it changes exactly when the tables do.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from pydantic import BaseModel

from risk.data.contract import TABLE_ORDER, TABLES, Table
from risk.data.duplicates import DuplicatePass, duplicate_rows
from risk.data.ids import Pseudonymizer
from risk.data.incremental import (
    DERIVED,
    INCOMING,
    QUARANTINE,
    REPORT_FILE,
    StoreManifest,
    clear_store,
    export_hash,
    key_check,
    locked,
    new_batch_id,
    publish,
    read_manifest,
    recover,
    write_commit,
)
from risk.data.reading import inspect_file, source_files
from risk.data.row_rules import RowPass, run_row_pass
from risk.data.schemas import References, enrollment_key, school_day_codes, term_codes
from risk.errors import ContractError
from risk.logs import get_logger
from risk.progress import Progress, TaskID

__all__ = ["DERIVED", "TableCounts", "ValidationReport", "validate_sources"]

log = get_logger(__name__)
# Kept for callers that checked payloads with the validator's own duplicate rule.
_duplicate_rows = duplicate_rows
# Dates of events (screenings, payments, grades) must fall inside the calendar's
# span, widened for screenings before the first term and grades entered after the last.
WINDOW_BEFORE = dt.timedelta(days=365)
WINDOW_AFTER = dt.timedelta(days=183)
# The tables later tables are checked against.
_REFERENCE_TABLES = ("schools", "calendar", "enrollments")


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

    def __add__(self, other: TableCounts) -> TableCounts:
        rules = {r: self.by_rule.get(r, 0) + other.by_rule.get(r, 0) for r in {*self.by_rule, *other.by_rule}}
        return TableCounts(table=self.table, files=self.files + other.files, rows_in=self.rows_in + other.rows_in,
                           used=self.used + other.used, quarantined=self.quarantined + other.quarantined,
                           by_rule=dict(sorted(rules.items())))


class ValidationReport(BaseModel):
    """One run (``batch``), or the store's cumulative state (``runs``: the batches that added rows).

    ``mode`` is ``new`` (a fresh store), ``append`` (into an existing one) or ``skipped``
    (this export was taken before, by ``skipped_as``; nothing was read or written).
    """

    source: str
    output: str
    seconds: float
    tables: list[TableCounts]
    batch: str = ""
    mode: str = "new"
    skipped_as: str = ""
    runs: list[str] = []

    @property
    def skipped(self) -> bool:
        return self.mode == "skipped"

    @property
    def changed(self) -> bool:
        """Whether the run added rows to the validated tables."""
        return any(t.used for t in self.tables)

    def summary_lines(self) -> list[str]:
        if self.skipped:
            return [f"{self.source} was validated into {self.output} before (batch {self.skipped_as}): "
                    "nothing to do; --replace starts the store again"]
        lines = [f"{'table':<18}{'in':>14}{'used':>14}{'quarantined':>13}  top reasons"]
        for t in self.tables:
            top = ", ".join(f"{r} {n:,}" for r, n in sorted(t.by_rule.items(), key=lambda kv: -kv[1])[:3])
            lines.append(f"{t.table:<18}{t.rows_in:>14,}{t.used:>14,}{t.quarantined:>13,}  {top}")
        total_in = sum(t.rows_in for t in self.tables)
        total_q = sum(t.quarantined for t in self.tables)
        lines.append(f"{'all':<18}{total_in:>14,}{total_in - total_q:>14,}{total_q:>13,}  in {self.seconds:.1f} s")
        if self.mode == "append":
            lines.append(f"appended to the validated store in {self.output} as batch {self.batch}"
                         + ("" if self.changed else ": no new rows, the tables are unchanged"))
        return lines


def validate_sources(
    source_dir: Path, out_dir: Path, *, key: bytes, chunk_rows: int = 1_000_000, buckets: int = 32,
    progress: bool = True, memory_limit: str = "4GB", workers: int = 1, replace: bool = False,
) -> ValidationReport:
    """Validate every contract table in ``source_dir`` into the store ``out_dir``; return this run's report.

    A fresh (or ``replace``d) ``out_dir`` gets ``<table>/`` (clean rows, pseudonymised;
    student tables hive-partitioned by ``bucket`` = student_key mod ``buckets``, attendance
    also by ``term``), ``quarantine/<table>/`` (rejected rows with ``rule``, ``rules``,
    ``detail``, ``_file``, ``_row``), the reports and ``store.json``. When ``out_dir``
    already holds a store, the export is appended to it (the store's bucket count wins).

    ``workers`` processes share the row-rules pass of tables held in several files.

    Raises
    ------
    ContractError
        When a table's file is missing, unreadable, or lacks required columns.
    StoreBusyError, StoreMismatchError
        When another run holds the store, or it was made with another key or an older risk.
    """
    started = time.perf_counter()
    # Every file is opened and its header checked before any work, so a broken
    # export fails in seconds, not after an hour of attendance.
    files = {name: source_files(source_dir, TABLES[name]) for name in TABLE_ORDER}
    known_rows = {name: _known_rows(paths, TABLES[name]) for name, paths in files.items()}
    with locked(out_dir):
        recover(out_dir)
        if replace:
            clear_store(out_dir)
        manifest = read_manifest(out_dir, key=key)
        content = export_hash([p for paths in files.values() for p in paths], source_dir)
        if manifest is not None and content in manifest.exports:
            log.info("export already validated", source=str(source_dir), batch=manifest.exports[content])
            return ValidationReport(source=str(source_dir), output=str(out_dir), seconds=0.0, tables=[],
                                    mode="skipped", skipped_as=manifest.exports[content])
        if manifest is None:
            clear_store(out_dir)  # tables of an interrupted first run, if any
            manifest = StoreManifest(buckets=buckets, key_check=key_check(key))
        elif manifest.buckets != buckets:
            log.warning("store keeps its buckets", store_buckets=manifest.buckets, asked=buckets)
        run = _Run(source_dir, out_dir, new_batch_id(content), manifest.buckets, files, known_rows,
                   Pseudonymizer(key), chunk_rows, memory_limit, workers,
                   append=bool(manifest.exports))
        try:
            counts = run.validate_all(progress)
            report = ValidationReport(source=str(source_dir), output=str(out_dir), batch=run.batch,
                                      mode="append" if run.append else "new",
                                      seconds=round(time.perf_counter() - started, 2), tables=counts)
            manifest.exports[content] = run.batch
            write_commit(out_dir, run.batch, run=report.model_dump(),
                         cumulative=_cumulative(out_dir, report).model_dump(), manifest=manifest,
                         changed=report.changed)
        except BaseException:
            # Not committed: nothing of this run may stay (a killed process is cleaned up by the next run).
            shutil.rmtree(out_dir / INCOMING / run.batch, ignore_errors=True)
            raise
        publish(out_dir, run.batch)
    return report


def _cumulative(out_dir: Path, run: ValidationReport) -> ValidationReport:
    """The store's state once ``run`` is in: its counts added to the runs before it."""
    path = out_dir / REPORT_FILE
    if not run.changed and path.exists():
        return ValidationReport.model_validate_json(path.read_text())
    if run.mode == "new" or not path.exists():
        return run.model_copy(update={"runs": [run.batch]})
    before = ValidationReport.model_validate_json(path.read_text())
    earlier = {t.table: t for t in before.tables}
    tables = [earlier[t.table] + t if t.table in earlier else t for t in run.tables]
    return run.model_copy(update={"tables": tables, "seconds": round(before.seconds + run.seconds, 2),
                                  "runs": [*before.runs, run.batch], "mode": "append"})


def _known_rows(files: list[Path], table: Table) -> int | None:
    """Rows in ``files`` when every one is Parquet (CSV row counts are unknown before reading)."""
    counts = [inspect_file(p, table) for p in files]
    return None if None in counts else sum(counts)


class _Run:
    """One batch: every table through both passes into ``_incoming/<batch>/``."""

    def __init__(self, source_dir: Path, out_dir: Path, batch: str, buckets: int, files: dict[str, list[Path]],
                 known_rows: dict[str, int | None], pseudonymize: Pseudonymizer, chunk_rows: int,
                 memory_limit: str, workers: int, *, append: bool) -> None:
        self.source_dir, self.out_dir, self.batch, self.buckets = source_dir, out_dir, batch, buckets
        self.files, self.known_rows, self.pseudonymize = files, known_rows, pseudonymize
        self.chunk_rows, self.memory_limit, self.workers, self.append = chunk_rows, memory_limit, workers, append
        self.incoming = out_dir / INCOMING / batch

    def validate_all(self, progress: bool) -> list[TableCounts]:
        con = _duckdb(self.incoming, self.memory_limit)
        refs = References()
        counts = []
        try:
            with Progress(enabled=progress) as bar:
                for name in TABLE_ORDER:
                    table = TABLES[name]
                    task = bar.add(f"validate {name}", total=self.known_rows[name])
                    counts.append(self._table(table, refs, con, bar, task))
                    self.pseudonymize.freeze()
                    if name in _REFERENCE_TABLES:
                        refs = _extend_references(refs, table, self._table_files(table), con)
        finally:
            con.close()
            shutil.rmtree(self.incoming / "_staging", ignore_errors=True)
            shutil.rmtree(self.incoming / "_duckdb_tmp", ignore_errors=True)
        return counts

    def _table_files(self, table: Table) -> list[Path]:
        """The table's validated files: the store's and this batch's."""
        return sorted((self.out_dir / table.name).rglob("*.parquet")) + sorted(
            (self.incoming / table.name).rglob("*.parquet"))

    def _table(self, table: Table, refs: References, con: duckdb.DuckDBPyConnection, bar: Progress,
               task: TaskID) -> TableCounts:
        staging = self.incoming / "_staging" / table.name
        quarantine = self.incoming / QUARANTINE / table.name
        for folder in (staging, quarantine):
            folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        work = RowPass(table, refs, self.pseudonymize, self.source_dir, staging, quarantine, self.chunk_rows,
                       buckets=self.buckets if table.has_student else 0, prefix=f"{self.batch}-")
        rows_in = run_row_pass(work, self.files[table.name], workers=self.workers, bar=bar, task=task)
        rows_seconds = time.perf_counter() - started
        if not any(staging.rglob("*.parquet")) and not (self.out_dir / table.name).is_dir():
            # A table may add nothing to a store, but a store cannot start without it.
            raise ContractError(f"table {table.name!r} has no rows in "
                                f"{', '.join(str(p) for p in self.files[table.name])}")
        DuplicatePass(table, staging, self.out_dir / table.name, self.incoming / table.name, quarantine,
                      self.batch, self.buckets).run(con)
        bar.done(task)
        counts = _count(table, len(self.files[table.name]), rows_in, self.incoming / table.name, quarantine, con)
        log.info("table validated", table=table.name, batch=self.batch, rows_in=counts.rows_in, used=counts.used,
                 quarantined=counts.quarantined, row_rules_s=round(rows_seconds, 2),
                 duplicates_s=round(time.perf_counter() - started - rows_seconds, 2))
        return counts


def _duckdb(folder: Path, memory_limit: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET temp_directory = '{folder / '_duckdb_tmp'}'")
    con.execute("SET preserve_insertion_order = false")
    return con


def _count(table: Table, files: int, rows_in: int, written: Path, quarantine: Path,
           con: duckdb.DuckDBPyConnection) -> TableCounts:
    new_files = sorted(written.rglob("*.parquet"))
    used = con.execute(f"SELECT count(*) FROM read_parquet({[str(p) for p in new_files]})").fetchall()[0][0] \
        if new_files else 0
    q_files = sorted(quarantine.glob("*.parquet"))
    by_rule: dict[str, int] = {}
    if q_files:
        rows = con.execute(
            f"SELECT rule, count(*) FROM read_parquet({[str(p) for p in q_files]}, union_by_name = true) GROUP BY rule"
        ).fetchall()
        by_rule = dict(sorted(rows))
    counts = TableCounts(table=table.name, files=files, rows_in=rows_in, used=used,
                         quarantined=sum(by_rule.values()), by_rule=by_rule)
    if not counts.balanced:
        raise RuntimeError(f"{table.name}: {rows_in} rows in but {used} used + {counts.quarantined} quarantined; "
                           "report this as a bug")
    return counts


def _extend_references(refs: References, table: Table, files: list[Path],
                       con: duckdb.DuckDBPyConnection) -> References:
    """What later tables need to know about ``table``, read back from its validated files (store and batch)."""
    source = f"read_parquet({[str(p) for p in files]}, hive_partitioning = false)" if files else None
    if table.name == "schools":
        ids = con.execute(f"SELECT DISTINCT school_id FROM {source}").df()["school_id"] if source else []
        refs.school_ids = frozenset(ids)
    elif table.name == "calendar":
        days = con.execute(f"SELECT DISTINCT school_id, date::TIMESTAMP AS date, term FROM {source}").df() \
            if source else pd.DataFrame({"school_id": [], "date": pd.Series(dtype="datetime64[ns]"), "term": []})
        refs.terms = frozenset(days["term"])
        if len(days):
            first, last = days["date"].min().date(), days["date"].max().date()
            refs.window = (first - WINDOW_BEFORE, last + WINDOW_AFTER)
        refs.school_days = pd.Index(np.unique(school_day_codes(days["school_id"], days["date"])))
    elif table.name == "enrollments":
        enrol = con.execute(f"SELECT student_key, term, school_id FROM {source}").df() if source else \
            pd.DataFrame({"student_key": pd.Series(dtype="int64"), "term": pd.Series(dtype="str"),
                          "school_id": pd.Series(dtype="str")})
        refs.enrolled = pd.Index(np.unique(enrol["student_key"].to_numpy()))
        # (student, term) is unique after the duplicate pass, store and batch together, so the index is too.
        refs.enrollment_keys = pd.Index(enrollment_key(enrol["student_key"].to_numpy(), term_codes(enrol["term"])))
        refs.enrollment_school = enrol["school_id"].astype("int64").to_numpy()
    return refs
