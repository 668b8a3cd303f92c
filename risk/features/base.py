"""What every feature builder shares: the point in time, and the relations features aggregate over.

A domain module builds *parts*: temporary relations with one or more rows per
student (every row dated on or before ``as_of``), and turns each catalog entry
into a SQL aggregate over one part. The builder runs one query that joins every
part's aggregates onto the cohort. The same SQL runs over Parquet files (batch)
and over one student's payload (online): there is one definition of a feature.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from risk.data.contract import previous_term, term_of_date

__all__ = ["AsOf", "Part", "sql_list", "sql_text"]


@dataclass(frozen=True)
class AsOf:
    """The point in time of a feature vector and the terms it implies."""

    date: dt.date

    @property
    def term(self) -> str:
        return term_of_date(self.date)

    @property
    def previous_term(self) -> str:
        return previous_term(self.term)

    @property
    def sql(self) -> str:
        """The date as a SQL literal."""
        return f"DATE '{self.date.isoformat()}'"


@dataclass(frozen=True)
class Part:
    """A temporary relation named ``name``, created by ``sql`` (a SELECT), that features aggregate over.

    ``shared`` marks a part that reads reference tables only (calendar, schools):
    the batch path builds it once for all buckets of students.
    """

    name: str
    sql: str
    needs: tuple[str, ...] = ()
    shared: bool = False


_SAFE_TEXT = re.compile(r"^[\w\-./ ก-๙]*$")


def sql_text(value: str) -> str:
    """A text literal for values from the catalog or the contract (checked, never from data)."""
    if not _SAFE_TEXT.match(value):
        raise ValueError(f"unexpected characters in {value!r}")
    return "'" + value + "'"


def sql_list(values: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(sql_text(v) for v in values) + "]"
