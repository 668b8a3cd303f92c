"""The first validation pass: row rules, chunk by chunk, in one process or several.

Each source file is read in chunks; every chunk is parsed, pseudonymised, checked
by the table's pandera schema and split into clean rows (staging Parquet) and
quarantined rows (with their reasons). Files are independent, so with
``workers > 1`` they are spread over processes: on two cores the pass takes
about half the time. Part files are named by file and chunk number, so the
result does not depend on the number of workers. One pool of worker processes
serves the whole run (:class:`WorkerPool`): a spawned worker takes seconds to start
(imports), which a pool per table paid again for each of seven tables.

Each pass times its steps (``RowPass.steps``: read, pseudonymise, lookups, checks,
quarantine, stage), for the run's report and the benchmark.

Clean rows of student tables are staged by bucket (``bucket=N/part-<file>.parquet``,
one row group per chunk), so that the duplicate pass can take one bucket at a time:
two rows with the same key have the same student, hence the same bucket.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.parquet as pq

from risk.data.contract import Table
from risk.data.ids import Pseudonymizer, masked_ids
from risk.data.profile import SourceProfile
from risk.data.quarantine import row_failures, split_chunk
from risk.data.reading import Chunk, iter_chunks
from risk.data.schemas import LOOKUP_COLUMNS, References, attach_lookups, build_schema
from risk.progress import Progress, TaskID

__all__ = ["RowPass", "WorkerPool", "run_row_pass", "write_rows"]

def write_rows(frame: pd.DataFrame, path: Path) -> None:
    """Write rows to Parquet without the raw ID: nothing written by validation holds it."""
    frame = frame.drop(columns=["student_id", *LOOKUP_COLUMNS], errors="ignore")
    pq.write_table(pa_arrow.Table.from_pandas(frame, preserve_index=False), path)


@dataclass
class RowPass:
    """Everything the row-rules pass of one table needs (picklable, for worker processes)."""

    table: Table
    refs: References
    pseudonymize: Pseudonymizer
    source_dir: Path
    staging: Path
    quarantine: Path
    chunk_rows: int
    # Student buckets of the staged rows (0: one folder, for reference tables).
    buckets: int = 0
    # Prefix of quarantine file names (the run's batch id), so that runs never overwrite each other.
    prefix: str = ""
    # How the export is written where it differs from the contract (headers, words, encodings, dates).
    profile: SourceProfile | None = None

    @cached_property
    def schema(self) -> pa.DataFrameSchema:
        return build_schema(self.table, self.refs)

    @cached_property
    def steps(self) -> Counter[str]:
        """Seconds spent in each step of the pass so far (in this process)."""
        return Counter()

    def run_file(self, index: int, path: Path, tick: Callable[[int], None]) -> int:
        """Check every row of one file; return how many rows it had."""
        rows = 0
        clock = _Clock(self.steps)
        with _BucketWriters(self.staging, f"part-{index:05d}.parquet", self.buckets) as staged:
            chunks = iter_chunks(path, self.table, self.chunk_rows, self.source_dir, profile=self.profile)
            for number, chunk in enumerate(clock.timed(chunks, "read")):
                frame = self._prepared(chunk, clock)
                failures = row_failures(self.schema, frame, chunk.bad_type, chunk.text)
                clock.lap("checks")
                clean, reasons = split_chunk(frame, failures)
                if not clean.all():
                    name = f"{self.prefix}part-{index:05d}-{number:05d}.parquet"
                    write_rows(frame.loc[~clean].join(reasons), self.quarantine / name)
                clock.lap("quarantine")
                staged.write(_staged_layout(self.table, frame), keep=None if clean.all() else clean)
                clock.lap("stage")
                rows += len(frame)
                tick(len(frame))
        clock.lap("stage")  # closing the writers
        return rows

    def _prepared(self, chunk: Chunk, clock: _Clock) -> pd.DataFrame:
        """The chunk as the schema sees it: source position, pseudonym, display hint and lookups added."""
        frame = chunk.frame
        frame.insert(0, "_file", pd.Categorical.from_codes(np.zeros(len(frame), dtype=np.int8), [chunk.file]))
        frame.insert(1, "_row", chunk.row)
        if self.table.has_student:
            frame.insert(2, "student_key", self.pseudonymize(frame["student_id"]))
            if self.table.name == "enrollments":
                self.pseudonymize.remember(frame["student_id"], frame["student_key"].to_numpy())
                frame.insert(3, "id_hint", masked_ids(frame["student_id"]))
            clock.lap("pseudonymise")
            attach_lookups(frame, self.table, self.refs)
            clock.lap("lookups")
        return frame


class _Clock:
    """Adds the time since the last lap to a step's total."""

    def __init__(self, steps: Counter[str]) -> None:
        self.steps, self.last = steps, time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.steps[step] += now - self.last
        self.last = now

    def timed(self, items: Iterator[Chunk], step: str) -> Iterator[Chunk]:
        """``items``, the time taken to produce each counted to ``step``."""
        self.last = time.perf_counter()
        for item in items:
            self.lap(step)
            yield item
            self.last = time.perf_counter()
        self.lap(step)


def _staged_layout(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Clean attendance rows carry their term and school as the validated table does (text).

    Made here, once per distinct value of a chunk, rather than formatted row by row when
    the validated files are written (a third of that write's time at 100M rows).
    """
    if table.name != "attendance_daily" or "term_code" not in frame:
        return frame
    term = _labels(frame.pop("term_code").to_numpy(np.int64), lambda c: f"{c // 10}-{c % 10}")
    # A row without an enrollment that term has no school (-1): it is quarantined, never staged.
    school_code = frame.pop("school_code").to_numpy()
    school = _labels(np.where(np.isnan(school_code), -1, school_code).astype(np.int64), lambda c: f"{c:010d}")
    return frame.assign(term=term, school_id=school)


def _labels(values: np.ndarray, label: Callable[[int], str]) -> pd.Categorical:
    codes, uniques = pd.factorize(values)
    return pd.Categorical.from_codes(codes, [label(int(u)) for u in uniques])


def _arrow(frame: pd.DataFrame) -> pa_arrow.Table:
    """``frame`` as Arrow with every dictionary indexed by int32, so that all chunks share one schema."""
    table = pa_arrow.Table.from_pandas(frame, preserve_index=False)
    fields = [pa_arrow.field(f.name, pa_arrow.dictionary(pa_arrow.int32(), f.type.value_type))
              if pa_arrow.types.is_dictionary(f.type) else f for f in table.schema]
    return table.cast(pa_arrow.schema(fields))


class _BucketWriters:
    """One Parquet writer per bucket for the clean rows of one source file; one row group per chunk."""

    def __init__(self, staging: Path, name: str, buckets: int) -> None:
        self.staging, self.name, self.buckets = staging, name, buckets
        self.writers: dict[int, pq.ParquetWriter] = {}
        self.schema: pa_arrow.Schema | None = None

    def __enter__(self) -> _BucketWriters:
        return self

    def __exit__(self, *exc: object) -> None:
        for writer in self.writers.values():
            writer.close()

    def write(self, frame: pd.DataFrame, keep: np.ndarray | None = None) -> None:
        """Stage the rows of ``frame`` that ``keep`` marks (shape (n_rows,) of bool; None: all).

        The clean rows are picked by the same ``take`` that sorts them into buckets, not by
        a copy of the frame first.
        """
        if frame.empty or (keep is not None and not keep.any()):
            return
        frame = frame.drop(columns=["student_id", *LOOKUP_COLUMNS], errors="ignore")
        table = _arrow(frame)
        if self.schema is None:
            self.schema = table.schema
        elif not table.schema.equals(self.schema):
            table = table.cast(self.schema)
        if not self.buckets:
            self._writer(-1).write_table(table if keep is None else table.filter(pa_arrow.array(keep)))
            return
        # The same bucket as the validated layout (and DuckDB's): student_key mod buckets, never negative.
        bucket = np.mod(frame["student_key"].to_numpy(), self.buckets).astype(np.uint16)
        # Stable, so rows keep their file order inside a bucket; on small integers numpy's
        # stable sort is a radix sort, ten times faster than on int64.
        order = np.argsort(bucket, kind="stable")
        if keep is not None:
            order = order[keep[order]]
        edges = np.searchsorted(bucket[order], np.arange(self.buckets + 1))
        table = table.take(order)
        for b in range(self.buckets):
            if edges[b + 1] > edges[b]:
                self._writer(b).write_table(table.slice(edges[b], edges[b + 1] - edges[b]))

    def _writer(self, bucket: int) -> pq.ParquetWriter:
        if bucket not in self.writers:
            folder = self.staging / ("all" if bucket < 0 else f"bucket={bucket}")
            folder.mkdir(parents=True, exist_ok=True)
            assert self.schema is not None
            # Staged rows are read once, whole: no statistics, and dictionaries only for text
            # (computing both for every column was half the cost of staging).
            text = [f.name for f in self.schema if pa_arrow.types.is_dictionary(f.type)
                    or pa_arrow.types.is_string(f.type) or pa_arrow.types.is_large_string(f.type)]
            self.writers[bucket] = pq.ParquetWriter(folder / self.name, self.schema, compression="lz4",
                                                    write_statistics=False, use_dictionary=text)
        return self.writers[bucket]


class WorkerPool:
    """Worker processes shared by every table of a run, started when a table first needs them.

    A table's :class:`RowPass` is pickled once to ``<staging>/row_pass.pickle``; each
    task names that file, and a worker loads it on its first task of the table.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._counter = None

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = mp.get_context("spawn")  # no fork: DuckDB and Arrow keep threads in this process
            self._counter = context.Value("q", 0)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_worker,
                                             initargs=(self._counter,))
        return self._pool

    def run(self, work: RowPass, files: list[Path], bar: Progress, task: TaskID) -> int:
        """Run the row rules over ``files`` in the workers; return the number of rows read."""
        pool = self._started()
        shipped = work.staging / "row_pass.pickle"
        shipped.write_bytes(pickle.dumps(work, protocol=pickle.HIGHEST_PROTOCOL))
        futures = [pool.submit(_run_in_worker, str(shipped), i, path) for i, path in enumerate(files)]
        seen = self._counter.value
        try:
            while True:
                done, pending = wait(futures, timeout=0.25, return_when=FIRST_EXCEPTION)
                bar.advance(task, self._counter.value - seen)
                seen = self._counter.value
                if not pending or any(f.exception() for f in done):
                    break
            results = [f.result() for f in futures]  # re-raises a worker's error (e.g. ContractError) here
        finally:
            for future in futures:
                future.cancel()
            shipped.unlink(missing_ok=True)
        for _, remembered, steps in results:
            work.pseudonymize.absorb(remembered)
            work.steps.update(steps)
        return sum(rows for rows, _, _ in results)


def run_row_pass(work: RowPass, files: list[Path], *, pool: WorkerPool, bar: Progress, task: TaskID) -> int:
    """Run the row rules over ``files`` (in ``pool``'s workers when there are several); return the rows read."""
    if pool.workers <= 1 or len(files) <= 1:
        return sum(work.run_file(i, path, lambda n: bar.advance(task, n)) for i, path in enumerate(files))
    return pool.run(work, files, bar, task)


_WORK: tuple[str, RowPass] | None = None
_COUNTER = None


def _start_worker(counter) -> None:  # noqa: ANN001 - a multiprocessing Value
    global _COUNTER
    _COUNTER = counter


def _tick(rows: int) -> None:
    with _COUNTER.get_lock():
        _COUNTER.value += rows


def _run_in_worker(shipped: str, index: int, path: Path) -> tuple[int, list[tuple[np.ndarray, np.ndarray]], dict]:
    global _WORK
    if _WORK is None or _WORK[0] != shipped:
        _WORK = None  # the previous table's pass (its references) is let go before the next is loaded
        with open(shipped, "rb") as handle:
            _WORK = (shipped, pickle.load(handle))  # noqa: S301 - written by this run's parent process
    work = _WORK[1]
    work.steps.clear()
    rows = work.run_file(index, path, _tick)
    return rows, work.pseudonymize.take_remembered(), dict(work.steps)
