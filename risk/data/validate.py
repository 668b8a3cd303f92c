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
hash) is skipped. Every run accounts for every row: in = used + unchanged + quarantined,
per table, in its own report (``validation_runs/<batch>.json``); ``validation_report.json``
sums the runs that added rows, so it changes exactly when the tables do. ``unchanged``
rows are those of a reference table sent again as stored (:mod:`risk.data.versions`).

A run that loses too much of a table stops (:mod:`risk.data.loss`): nothing is
published, and its quarantine and report are kept under ``failed_runs/<batch>/``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from risk.data.contract import TABLE_ORDER, TABLES, Table
from risk.data.duplicates import DuplicatePass
from risk.data.formats import FileInfo, describe_file, source_files
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
from risk.data.loss import DataLossError, empty_table_reason, judge_loss, keep_failed_run
from risk.data.profile import SourceProfile
from risk.data.report import TableCounts, ValidationReport
from risk.data.row_pass import RowPass, WorkerPool, run_row_pass
from risk.data.schemas import References, enrollment_key, school_day_codes, term_codes
from risk.data.versions import date_versions, export_start
from risk.errors import ConfigError, ContractError
from risk.logs import get_logger
from risk.progress import Progress, TaskID

__all__ = ["DERIVED", "DataLossError", "TableCounts", "ValidationReport", "validate_sources"]

log = get_logger(__name__)
# Dates of events (screenings, payments, grades) must fall inside the calendar's
# span, widened for screenings before the first term and grades entered after the last.
WINDOW_BEFORE = dt.timedelta(days=365)
WINDOW_AFTER = dt.timedelta(days=183)
# The tables later tables are checked against.
_REFERENCE_TABLES = ("schools", "calendar", "enrollments")


def validate_sources(
    source_dir: Path, out_dir: Path, *, key: bytes, chunk_rows: int = 1_000_000, buckets: int = 32,
    progress: bool = True, memory_limit: str = "4GB", workers: int = 1, replace: bool = False,
    accept_loss: frozenset[str] = frozenset(), loss_warn_share: float = 0.05, loss_fail_share: float = 1.0,
    profile: SourceProfile | None = None,
) -> ValidationReport:
    """Validate every contract table in ``source_dir`` into the store ``out_dir``; return this run's report.

    A fresh (or ``replace``d) ``out_dir`` gets ``<table>/`` (clean rows, pseudonymised;
    student tables hive-partitioned by ``bucket`` = student_key mod ``buckets``, attendance
    also by ``term``), ``quarantine/<table>/`` (rejected rows with ``rule``, ``rules``,
    ``detail``, ``_file``, ``_row``), the reports and ``store.json``. When ``out_dir``
    already holds a store, the export is appended to it (the store's bucket count wins).

    ``workers`` processes share the row-rules pass of tables held in several files.

    ``profile`` says how the export is written where it differs from the contract (Thai
    headers, value words, encodings, sheets, date order and era; :mod:`risk.data.profile`).
    Each file's format, encoding or sheet and header mapping go into the report (``files``).

    The loss gate (:mod:`risk.data.loss`): a table that loses more than ``loss_warn_share`` of
    its incoming rows gets a warning in the report; one that loses ``loss_fail_share`` or more
    stops the run, unless ``accept_loss`` names it.

    Raises
    ------
    DataLossError
        When a table lost ``loss_fail_share`` of its rows (not in ``accept_loss``), or a new store's
        table has no usable row. The store is unchanged; the run's quarantine and report are kept
        in ``out_dir/failed_runs/<batch>/`` (``DataLossError.failed_run``).
    ContractError
        When a table's file is missing, unreadable, or lacks required columns.
    ConfigError
        When ``accept_loss`` names a table the contract does not have.
    StoreBusyError, StoreMismatchError
        When another run holds the store, or it was made with another key or an older risk.
    """
    started = time.perf_counter()
    gate = _Gate(_tables_named(accept_loss), loss_warn_share, loss_fail_share)
    files, read_as = _opened_export(source_dir, profile)
    known_rows = {name: _known_rows(infos) for name, infos in read_as.items()}
    with locked(out_dir):
        recover(out_dir)
        if replace:
            clear_store(out_dir)
        manifest = _store_manifest(out_dir, key, buckets)
        content = export_hash([p for paths in files.values() for p in paths], source_dir,
                              profile.model_dump_json() if profile is not None else "")
        if content in manifest.exports:
            log.info("export already validated", source=str(source_dir), batch=manifest.exports[content])
            return ValidationReport(source=str(source_dir), output=str(out_dir), seconds=0.0, tables=[],
                                    mode="skipped", skipped_as=manifest.exports[content])
        run = _Run(source_dir, out_dir, new_batch_id(content), manifest.buckets, files, known_rows,
                   Pseudonymizer(key), chunk_rows, memory_limit, workers, gate, profile,
                   append=bool(manifest.exports))
        try:
            counts = run.validate_all(progress)
            report = ValidationReport(source=str(source_dir), output=str(out_dir), batch=run.batch,
                                      mode="append" if run.append else "new",
                                      seconds=round(time.perf_counter() - started, 2), tables=counts,
                                      files=read_as, steps=run.step_seconds())
            manifest.exports[content] = run.batch
            write_commit(out_dir, run.batch, run=report.model_dump(),
                         cumulative=_cumulative(out_dir, report).model_dump(), manifest=manifest,
                         changed=report.changed)
        except ContractError as error:
            # A data error (a lost table, a file that breaks off unreadable): keep what the run found.
            raise _failed(run, error, round(time.perf_counter() - started, 2)) from None
        except BaseException:
            # Not committed: nothing of this run may stay (a killed process is cleaned up by the next run).
            shutil.rmtree(out_dir / INCOMING / run.batch, ignore_errors=True)
            raise
        publish(out_dir, run.batch)
    return report


def _opened_export(source_dir: Path,
                   profile: SourceProfile | None) -> tuple[dict[str, list[Path]], dict[str, list[FileInfo]]]:
    """Each contract table's files in ``source_dir``, and how each file is read (format, encoding, headers).

    Every file is opened and its header checked here, before any work, so a broken
    export fails in seconds, not after an hour of attendance (ContractError).
    """
    files = {name: source_files(source_dir, TABLES[name]) for name in TABLE_ORDER}
    read_as = {name: [describe_file(p, TABLES[name], profile, root=source_dir, check=True) for p in paths]
               for name, paths in files.items()}
    return files, read_as


def _store_manifest(out_dir: Path, key: bytes, buckets: int) -> StoreManifest:
    """The manifest of the store in ``out_dir`` (checked against ``key``), or a new one for an empty store.

    A new store starts clean: tables left by an interrupted first run, if any, are removed.
    An existing store keeps its bucket count whatever ``buckets`` asks.
    """
    manifest = read_manifest(out_dir, key=key)
    if manifest is None:
        clear_store(out_dir)
        return StoreManifest(buckets=buckets, key_check=key_check(key))
    if manifest.buckets != buckets:
        log.warning("store keeps its buckets", store_buckets=manifest.buckets, asked=buckets)
    return manifest


@dataclass(frozen=True)
class _Gate:
    """The loss gate's settings (see :func:`risk.data.loss.judge_loss`)."""

    accept_loss: frozenset[str]
    warn_share: float
    fail_share: float


def _tables_named(accept_loss: frozenset[str]) -> frozenset[str]:
    unknown = sorted(set(accept_loss) - set(TABLE_ORDER))
    if unknown:
        raise ConfigError(f"--accept-loss names {', '.join(map(repr, unknown))}, which is not a table of the "
                          f"contract ({', '.join(TABLE_ORDER)})")
    return frozenset(accept_loss)


def _failed(run: _Run, error: ContractError, seconds: float) -> ContractError:
    """Keep the stopped run's quarantine and report, drop the rest of it; the error, naming where they are.

    A :class:`DataLossError` or plain ContractError comes back with the folder in its message;
    another subclass is returned as it was (its folder is in the log).
    """
    report = ValidationReport(source=str(run.source_dir), output=str(run.out_dir), batch=run.batch, mode="failed",
                              seconds=seconds, tables=run.counts, failure=str(error))
    try:
        folder = keep_failed_run(run.out_dir, run.incoming, report)
    finally:
        shutil.rmtree(run.incoming, ignore_errors=True)
    message = f"{error}; the store is unchanged, and this run's quarantine and report are in {folder}"
    if isinstance(error, DataLossError):
        return DataLossError(message, table=error.table, failed_run=folder)
    return ContractError(message) if type(error) is ContractError else error


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


def _known_rows(files: list[FileInfo]) -> int | None:
    """Rows in ``files`` when every one is Parquet (CSV and Excel row counts are unknown before reading)."""
    counts = [info.rows for info in files]
    return None if None in counts else sum(counts)


class _Run:
    """One batch: every table through both passes into ``_incoming/<batch>/``."""

    def __init__(self, source_dir: Path, out_dir: Path, batch: str, buckets: int, files: dict[str, list[Path]],
                 known_rows: dict[str, int | None], pseudonymize: Pseudonymizer, chunk_rows: int,
                 memory_limit: str, workers: int, gate: _Gate, profile: SourceProfile | None, *,
                 append: bool) -> None:
        self.source_dir, self.out_dir, self.batch, self.buckets = source_dir, out_dir, batch, buckets
        self.files, self.known_rows, self.pseudonymize = files, known_rows, pseudonymize
        self.chunk_rows, self.memory_limit, self.workers, self.append = chunk_rows, memory_limit, workers, append
        self.gate, self.profile = gate, profile
        self.incoming = out_dir / INCOMING / batch
        # The tables done so far: a run that stops reports them.
        self.counts: list[TableCounts] = []
        # Schools whose new version waits for its date (the export's first term, known after the calendar).
        self.versions: list[str] = []
        # Seconds per step, over every table (a step run by workers counts each worker's time).
        self.steps: Counter[str] = Counter()

    def step_seconds(self) -> dict[str, float]:
        return {step: round(seconds, 2) for step, seconds in self.steps.items()}

    def validate_all(self, progress: bool) -> list[TableCounts]:
        con = _duckdb(self.incoming, self.memory_limit)
        refs = References()
        try:
            with Progress(enabled=progress) as bar, WorkerPool(self.workers) as pool:
                for name in TABLE_ORDER:
                    table = TABLES[name]
                    task = bar.add(f"validate {name}", total=self.known_rows[name])
                    self._table(table, refs, con, bar, task, pool)
                    started = time.perf_counter()
                    self.pseudonymize.freeze()
                    if name == "calendar" and self.versions:
                        self._date_versions(con)
                    if name in _REFERENCE_TABLES:
                        refs = _extend_references(refs, table, self._table_files(table), con)
                    self.steps["references"] += time.perf_counter() - started
        finally:
            con.close()
            shutil.rmtree(self.incoming / "_staging", ignore_errors=True)
            shutil.rmtree(self.incoming / "_duckdb_tmp", ignore_errors=True)
        return self.counts

    def _date_versions(self, con: duckdb.DuckDBPyConnection) -> None:
        """Date this run's new school versions: the first day of the export's earliest term.

        An export whose calendar has no clean row names no term; its versions are dated
        the day of the run (they were in force by the time the export was taken, at the latest).
        """
        staged = sorted((self.incoming / "_staging" / "calendar").rglob("*.parquet"))
        day = export_start(con, staged) or dt.datetime.now(dt.UTC).date()
        date_versions(con, sorted((self.incoming / "schools").glob("*.parquet")), self.versions, day)
        log.info("school versions dated", schools=len(self.versions), valid_from=day.isoformat(), batch=self.batch)

    def _table_files(self, table: Table) -> list[Path]:
        """The table's validated files: the store's and this batch's."""
        return sorted((self.out_dir / table.name).rglob("*.parquet")) + sorted(
            (self.incoming / table.name).rglob("*.parquet"))

    def _table(self, table: Table, refs: References, con: duckdb.DuckDBPyConnection, bar: Progress,
               task: TaskID, pool: WorkerPool) -> TableCounts:
        staging = self.incoming / "_staging" / table.name
        quarantine = self.incoming / QUARANTINE / table.name
        for folder in (staging, quarantine):
            folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        work = RowPass(table, refs, self.pseudonymize, self.source_dir, staging, quarantine, self.chunk_rows,
                       buckets=self.buckets if table.has_student else 0, prefix=f"{self.batch}-",
                       profile=self.profile)
        rows_in = run_row_pass(work, self.files[table.name], pool=pool, bar=bar, task=task)
        rows_seconds = time.perf_counter() - started
        self.steps.update(work.steps)
        if not any(staging.rglob("*.parquet")) and not (self.out_dir / table.name).is_dir():
            # A table may add nothing to a store, but a store cannot start without it.
            counts = _count(table, len(self.files[table.name]), rows_in, self.incoming / table.name, quarantine,
                            con, unchanged=0)
            self.counts.append(counts)
            raise DataLossError(empty_table_reason(counts, self.files[table.name]), table=table.name)
        repeats = DuplicatePass(table, staging, self.out_dir / table.name, self.incoming / table.name, quarantine,
                                self.batch, self.buckets).run(con)
        self.steps.update(repeats.steps)
        self.versions += repeats.versions
        bar.done(task)
        counting = time.perf_counter()
        counts = _count(table, len(self.files[table.name]), rows_in, self.incoming / table.name, quarantine, con,
                        unchanged=repeats.unchanged)
        self.steps["count"] += time.perf_counter() - counting
        log.info("table validated", table=table.name, batch=self.batch, rows_in=counts.rows_in, used=counts.used,
                 unchanged=counts.unchanged, quarantined=counts.quarantined, new_versions=len(repeats.versions),
                 row_rules_s=round(rows_seconds, 2),
                 duplicates_s=round(time.perf_counter() - started - rows_seconds, 2))
        counts, stop = judge_loss(counts, accept_loss=self.gate.accept_loss, warn_share=self.gate.warn_share,
                                  fail_share=self.gate.fail_share)
        self.counts.append(counts)
        if stop:
            raise DataLossError(stop, table=table.name)
        return counts


def _duckdb(folder: Path, memory_limit: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET temp_directory = '{folder / '_duckdb_tmp'}'")
    con.execute("SET preserve_insertion_order = false")
    return con


def _count(table: Table, files: int, rows_in: int, written: Path, quarantine: Path,
           con: duckdb.DuckDBPyConnection, *, unchanged: int) -> TableCounts:
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
    counts = TableCounts(table=table.name, files=files, rows_in=rows_in, used=used, unchanged=unchanged,
                         quarantined=sum(by_rule.values()), by_rule=by_rule)
    if not counts.balanced:
        raise RuntimeError(f"{table.name}: {rows_in} rows in but {used} used + {unchanged} unchanged + "
                           f"{counts.quarantined} quarantined; report this as a bug")
    return counts


def _extend_references(refs: References, table: Table, files: list[Path],
                       con: duckdb.DuckDBPyConnection) -> References:
    """What later tables need to know about ``table``, read back from its validated files (store and batch)."""
    source = f"read_parquet({[str(p) for p in files]}, hive_partitioning = false, union_by_name = true)" \
        if files else None
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
