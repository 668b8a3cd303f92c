"""Per-term aggregates: last term's school days of each student, stored once instead of read from rows at every point.

A feature point at ``as_of`` reads last term's attendance only through the windows that
reach back past this term's first day (``last_days`` scopes and ``trend``:
:func:`risk.features.attendance.horizon`), yet reading it from rows scans the whole of
last term's attendance at every point. Last term is finished at ``as_of``: a date's term
is the term of its months (:func:`risk.data.contract.term_of_date`, which validation holds
the calendar and attendance to), so every day of it lies before ``as_of`` and its
days no longer change with ``as_of``.

So the batch path stores, per finished term and bucket of students, one row per student
enrolled that term: ``student_key`` and ``codes``, one character per school day of the
student's school that term, newest first (``back`` 1 = the term's last day), and the
day's status as a letter (:data:`CODES`; ``m``: no attendance row). That is the relation
:func:`risk.features.attendance.previous_days_sql` gives from rows, so a point reads a
row per student and unfolds only the days its windows reach (:func:`stored_sql`).

Files live under the validated folder,
``_derived/aggregates/attendance_days/<term>-<key>/bucket=N.parquet``, where the key hashes
the files they were built from (the calendar, the enrollments and the term's attendance
folders): a change to any of them makes a new folder, and ``risk validate`` clears
``_derived/aggregates`` whenever it publishes. They are built lazily, by the first point
that needs a bucket's, from the rows that point would have read anyway.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq

from risk.data.incremental import DERIVED
from risk.features.attendance import previous_days_sql
from risk.features.base import AsOf, sql_text

__all__ = ["CODES", "PreviousTermDays"]

# One letter per day's status; "m" is a school day without an attendance row.
CODES = {"present": "p", "absent": "a", "leave": "l", "sick": "s", "late": "t", "missing": "m"}
# Changes when the stored layout or its meaning changes, so older folders are never read.
_FORMAT = "v1"


class PreviousTermDays:
    """The stored days of the term before ``point``'s, for the batch path's buckets of students.

    ``usable(con)`` says whether that term is finished at ``point`` in this store; then
    ``stored_sql(con, buckets)`` builds any missing bucket file from the connection's views
    (which must be over exactly those buckets) and returns the SELECT that replaces the
    ``att_prev_days`` part.
    """

    def __init__(self, validated: Path, point: AsOf) -> None:
        self.validated = validated
        self.point = point
        self.term = point.previous_term
        self.folder = validated / DERIVED / "aggregates" / "attendance_days" / f"{self.term}-{self._key()}"

    def usable(self, con: duckdb.DuckDBPyConnection) -> bool:
        """True when every calendar day of last term is on or before ``as_of`` (a store that keeps the contract)."""
        (last,) = con.execute(f"SELECT max(date) FROM calendar WHERE term = {sql_text(self.term)}").fetchone()
        return last is None or last <= self.point.date

    def stored(self, buckets: Sequence[int]) -> bool:
        """True when the days of every bucket in ``buckets`` are stored already."""
        return all(self._file(b).exists() for b in buckets)

    def stored_sql(self, con: duckdb.DuckDBPyConnection, buckets: Sequence[int]) -> str:
        """The ``att_prev_days`` rows of the cohort, unfolded from the stored codes of ``buckets``.

        Builds the missing ones first, from the connection's views (their attendance must then hold last term).
        """
        files = [self._file(b) for b in buckets]
        if not self.stored(buckets):
            self._build(con, buckets)
        paths = "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"
        decode = " ".join(f"WHEN '{code}' THEN '{status}'" for status, code in CODES.items())
        # att_span.reach: how many of last term's days, counted back from its end, a feature can reach.
        return f"""
            SELECT student_key, back, CASE substr(codes, back, 1) {decode} END AS status
            FROM (SELECT a.student_key, a.codes, unnest(range(1, least(length(a.codes), s.reach) + 1)) AS back
                  FROM read_parquet({paths}) a JOIN att_span s ON s.student_key = a.student_key)
        """

    def _build(self, con: duckdb.DuckDBPyConnection, buckets: Sequence[int]) -> None:
        """Write the codes of every student of ``buckets`` enrolled last term, one file per bucket."""
        encode = " ".join(f"WHEN '{status}' THEN '{code}'" for status, code in CODES.items())
        calendar = f"""(SELECT school_id, term, date,
                               row_number() OVER (PARTITION BY school_id ORDER BY date DESC) AS back
                        FROM calendar WHERE term = {sql_text(self.term)})"""
        days = previous_days_sql(self.point, students=None, reach=None, calendar=calendar)
        table = con.sql(f"""
            SELECT d.student_key, b.bucket,
                   string_agg(CASE d.status {encode} END, '' ORDER BY d.back) AS codes
            FROM ({days}) d
            JOIN (SELECT DISTINCT student_key, bucket FROM enrollments WHERE term = {sql_text(self.term)}) b
              ON b.student_key = d.student_key
            GROUP BY d.student_key, b.bucket
        """).to_arrow_table()
        self.folder.mkdir(parents=True, exist_ok=True)
        for bucket in buckets:
            rows = table.filter(pc.equal(table["bucket"], bucket)).select(["student_key", "codes"])
            target = self._file(bucket)
            # Written aside, then renamed: a reader never sees half a file, and two builders of the
            # same bucket write the same rows.
            partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
            pq.write_table(rows, partial, compression="zstd")
            partial.replace(target)

    def _file(self, bucket: int) -> Path:
        return self.folder / f"bucket={bucket}.parquet"

    def _key(self) -> str:
        """A hash of the files the stored days come from: the calendar, the enrollments, last term's attendance."""
        digest = hashlib.sha256(_FORMAT.encode())
        files = [*sorted((self.validated / "calendar").glob("**/*.parquet")),
                 *sorted((self.validated / "enrollments").glob("**/*.parquet")),
                 *sorted((self.validated / "attendance_daily").glob(f"bucket=*/term={self.term}/*.parquet"))]
        for path in files:
            digest.update(f"{path.relative_to(self.validated)}:{path.stat().st_size};".encode())
        return digest.hexdigest()[:16]
