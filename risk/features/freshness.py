"""How fresh each student domain is at ``as_of``, and whether the validated store covers ``as_of`` at all.

Input is a validated folder (``risk validate``) and a point in time; output is one
:class:`DomainFreshness` per student domain: the newest row dated on or before
``as_of``, its age in days, the rows dated inside the scored term (the term of
``as_of``, from its first month up to ``as_of``), and a status:

- ``missing``: no row at all on or before ``as_of``; or, for attendance, none in
  the scored term. Attendance belongs to a term: a term without it makes every
  school day count as not attended (the attendance features' rule), so the
  model would see empty classrooms.
- ``stale``: the newest row is older than ``Settings.freshness.max_age_days``.
  Grades are recorded at a term's end and screenings are yearly, so for them a
  scored term without rows is normal and age is the only rule (240 days for
  grades is one missed term; 400 for screenings is one missed year).
- ``fresh``: neither.

Freshness warns; it never fails a run. The loss gate of ``risk validate`` is
what stops a run whose export was lost; a domain that is old or empty at
``as_of`` can be a fact of the data (a school that never screens), and the
features, scores and report say so beside the numbers instead.

Speed: only the date column's Parquet statistics are read (row-group min and
max, row counts). A row group is scanned only when the statistics cannot decide
it (it spans ``as_of`` or the term's first day), so a national store costs
seconds, not a pass over 100M attendance rows.

:func:`check_as_of_in_data` refuses an ``as_of`` the store does not cover.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import duckdb
import pandas as pd
from pydantic import BaseModel

from risk.config import Settings
from risk.data.contract import TABLES, term_of_date, term_window
from risk.errors import ContractError
from risk.logs import get_logger

__all__ = ["AsOfOutsideDataError", "DOMAINS", "DomainFreshness", "check_as_of_in_data", "domain_freshness",
           "log_freshness", "warnings_of"]

log = get_logger(__name__)

DOMAINS = ("attendance_daily", "grades", "household", "health", "behaviour", "assistance")
# Domains whose rows belong to the term they were taken in: none in the scored term means the
# term's features are empty, whatever the age of the previous term's rows.
TERM_BOUND = frozenset({"attendance_daily"})
DOMAIN_NAMES = {  # (Thai, English), as the report and the CLI name them
    "attendance_daily": ("การมาเรียน", "attendance"),
    "grades": ("ผลการเรียน", "grades"),
    "household": ("การคัดกรองครัวเรือน", "household screening"),
    "health": ("น้ำหนักและส่วนสูง", "health measurement"),
    "behaviour": ("การคัดกรองพฤติกรรม", "behaviour screening"),
    "assistance": ("ความช่วยเหลือ", "assistance"),
}
Status = Literal["fresh", "stale", "missing"]


class AsOfOutsideDataError(ContractError):
    """``--as-of`` lies outside the days the validated store covers, or no student is enrolled in its term."""


class DomainFreshness(BaseModel):
    """One domain at one ``as_of``: newest row, age in days, rows in the scored term, status."""

    domain: str
    as_of: dt.date
    term: str
    newest: dt.date | None
    age_days: int | None
    rows_in_term: int
    max_age_days: int
    status: Status

    @property
    def name_th(self) -> str:
        return DOMAIN_NAMES.get(self.domain, (self.domain, self.domain))[0]

    @property
    def name_en(self) -> str:
        return DOMAIN_NAMES.get(self.domain, (self.domain, self.domain))[1]

    def warning(self) -> str | None:
        """One English sentence for a stale or missing domain; None when fresh."""
        if self.status == "fresh":
            return None
        if self.newest is None:
            return (f"{self.name_en} is missing: no row is dated on or before {self.as_of}, "
                    "so its features are empty for every student.")
        if self.status == "missing":
            return (f"{self.name_en} is missing for term {self.term}: no row from the term's start to {self.as_of} "
                    f"(newest {self.newest}), so every school day so far counts as not attended.")
        return (f"{self.name_en} is stale: its newest row is dated {self.newest}, {self.age_days:,} days before "
                f"{self.as_of} (more than {self.max_age_days:,}), so its features describe older data.")

    def warning_th(self) -> str | None:
        """The same sentence in Thai, for the bilingual report."""
        if self.status == "fresh":
            return None
        if self.newest is None:
            return f"ไม่มีข้อมูล{self.name_th}ที่ลงวันที่ถึง {self.as_of} ตัวแปรด้านนี้จึงว่างสำหรับนักเรียนทุกคน"
        if self.status == "missing":
            return (f"ไม่มีข้อมูล{self.name_th}ในภาคเรียน {self.term} ถึง {self.as_of} (ล่าสุด {self.newest}) "
                    "ทุกวันเรียนจึงนับเป็นไม่มาเรียน")
        return (f"ข้อมูล{self.name_th}ล่าสุดลงวันที่ {self.newest} เก่ากว่า {self.as_of} {self.age_days:,} วัน "
                f"(เกิน {self.max_age_days:,} วัน) ตัวแปรด้านนี้จึงเป็นข้อมูลเก่า")


def domain_freshness(validated: Path, as_of: dt.date, settings: Settings) -> list[DomainFreshness]:
    """Each student domain's freshness at ``as_of`` in the validated folder, in :data:`DOMAINS` order."""
    term = term_of_date(as_of)
    start = term_window(term)[0]
    con = duckdb.connect(config={"threads": settings.features.threads})
    try:
        return [_one_domain(con, validated, name, as_of, term, start, settings) for name in DOMAINS]
    finally:
        con.close()


def _one_domain(con: duckdb.DuckDBPyConnection, validated: Path, name: str, as_of: dt.date, term: str,
                start: dt.date, settings: Settings) -> DomainFreshness:
    column = TABLES[name].date_column
    assert column is not None  # every student domain is dated (risk.data.contract)
    newest, rows = _newest_and_rows_since(con, _files(validated, name), column, as_of, start)
    age = None if newest is None else (as_of - newest).days
    max_age = settings.freshness.max_age_days.get(name, 10**6)
    if newest is None or (name in TERM_BOUND and rows == 0):
        status: Status = "missing"
    elif age is not None and age > max_age:
        status = "stale"
    else:
        status = "fresh"
    return DomainFreshness(domain=name, as_of=as_of, term=term, newest=newest, age_days=age, rows_in_term=rows,
                           max_age_days=max_age, status=status)


def _files(validated: Path, name: str) -> list[Path]:
    return sorted((validated / name).glob("**/*.parquet"))


def _paths(files: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in files) + "]"


def _row_groups(con: duckdb.DuckDBPyConnection, files: list[Path], column: str) -> pd.DataFrame:
    """One row per row group: file, rows, and the date column's min and max (NaT when not recorded)."""
    frame = con.execute(
        f"SELECT file_name AS file, row_group_num_rows AS n, TRY_CAST(stats_min_value AS DATE) AS lo, "
        f"TRY_CAST(stats_max_value AS DATE) AS hi FROM parquet_metadata({_paths(files)}) "
        "WHERE path_in_schema = ?", [column]).df()
    return frame.assign(lo=pd.to_datetime(frame["lo"]), hi=pd.to_datetime(frame["hi"]))


def _newest_and_rows_since(con: duckdb.DuckDBPyConnection, files: list[Path], column: str, as_of: dt.date,
                           start: dt.date) -> tuple[dt.date | None, int]:
    """The newest date on or before ``as_of`` (None if none) and the rows dated ``start``..``as_of``."""
    if not files:
        return None, 0
    groups = _row_groups(con, files, column)
    day, first = pd.Timestamp(as_of), pd.Timestamp(start)
    after = groups["lo"] > day  # NaT compares False: a group without statistics is scanned
    # Decided by statistics: wholly after as_of, or wholly on or before it and wholly on one side of start.
    inside = (groups["hi"] <= day) & (groups["lo"] >= first)
    earlier = groups["hi"] < first
    scan_files = sorted(set(groups.loc[~(after | inside | earlier), "file"]))
    counted = groups.loc[(inside | earlier) & ~groups["file"].isin(scan_files)]
    newest = counted["hi"].max().date() if len(counted) else None
    rows = int(counted.loc[inside, "n"].sum())
    if scan_files:
        scanned, in_term = con.execute(
            f"SELECT max({column}), count(*) FILTER (WHERE {column} >= ?) FROM read_parquet("
            f"{_paths([Path(f) for f in scan_files])}, hive_partitioning = false) WHERE {column} <= ?",
            [start, as_of]).fetchone()
        rows += int(in_term or 0)
        newest = max((d for d in (newest, scanned) if d is not None), default=None)
    return newest, rows


def warnings_of(freshness: list[DomainFreshness]) -> list[str]:
    """The English sentence of every stale or missing domain, in domain order."""
    return [w for f in freshness if (w := f.warning()) is not None]


def log_freshness(freshness: list[DomainFreshness], command: str) -> None:
    """A structured warning per stale or missing domain (pseudonym-free: dates and counts only)."""
    for f in freshness:
        if f.status != "fresh":
            log.warning("domain not fresh", command=command, domain=f.domain, status=f.status, as_of=str(f.as_of),
                        newest=str(f.newest) if f.newest else None, age_days=f.age_days,
                        max_age_days=f.max_age_days, rows_in_term=f.rows_in_term)


def check_as_of_in_data(validated: Path, as_of: dt.date) -> None:
    """Raise :class:`AsOfOutsideDataError` unless the store's calendar covers ``as_of`` and its term has students.

    Covered means from the first school day in the calendar to the end of the
    months of the last school day's term (a date in the break after the last
    term still scores that term).
    """
    con = duckdb.connect(config={"threads": 1})  # statistics and one column of enrollments: one thread is plenty
    try:
        first, last = _calendar_span(con, validated)
        term = term_of_date(as_of)
        if first is None or last is None:
            raise AsOfOutsideDataError(f"{validated} holds no school days in its calendar: run `risk validate` first")
        end = term_window(term_of_date(last))[1]
        span = (f"the store in {validated} covers school days from {first} to {last} "
                f"(terms {term_of_date(first)} to {term_of_date(last)})")
        if as_of < first or as_of > end:
            raise AsOfOutsideDataError(f"--as-of {as_of} is outside the data: {span}")
        if _enrolled(con, validated, term) == 0:
            raise AsOfOutsideDataError(f"--as-of {as_of} falls in term {term}, where no student is enrolled: {span}")
    finally:
        con.close()


def _calendar_span(con: duckdb.DuckDBPyConnection, validated: Path) -> tuple[dt.date | None, dt.date | None]:
    files = _files(validated, "calendar")
    if not files:
        return None, None
    groups = _row_groups(con, files, "date")
    if len(groups) and groups["lo"].notna().all() and groups["hi"].notna().all():
        return groups["lo"].min().date(), groups["hi"].max().date()
    first, last = con.execute(f"SELECT min(date), max(date) FROM read_parquet({_paths(files)}, "
                              "hive_partitioning = false)").fetchone()
    return first, last


def _enrolled(con: duckdb.DuckDBPyConnection, validated: Path, term: str) -> int:
    files = _files(validated, "enrollments")
    if not files:
        return 0
    (count,) = con.execute(f"SELECT count(*) FROM read_parquet({_paths(files)}, hive_partitioning = false) "
                           "WHERE term = ?", [term]).fetchone()
    return int(count)
