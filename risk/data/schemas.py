"""pandera schemas for the source tables, built from :mod:`risk.data.contract`.

Each check is named after the quarantine rule it enforces (:mod:`risk.data.rule_codes`),
so a pandera failure case maps straight to a row's reason. Checks that need other
tables (known schools, terms, enrolled students, school days) read them from
:class:`References`, filled in as the validator finishes each earlier table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa

from risk.data.contract import (
    AGE_YEARS,
    DAYS_PER_YEAR,
    EARLIEST_YEAR,
    TERM_FORMAT,
    Column,
    Table,
    term_start,
)
from risk.data.ids import valid_student_id_mask
from risk.data.values import BUDDHIST_ERA_YEARS_FROM

__all__ = ["BUDDHIST_ERA_YEARS_FROM", "EARLIEST_YEAR", "LOOKUP_COLUMNS", "References", "attach_lookups", "build_schema",
           "school_day_codes", "term_code_of_dates", "term_codes"]

# Exports' Buddhist-Era years are made CE when read (risk.data.values), so a year this far out
# remains only where no year is taken as BE: a payload (ISO, CE) or an export read with era "ce".
_EPOCH = np.datetime64("1970-01-01", "D")
_DTYPES = {"id": "str", "text": "str", "term": "str", "date": "datetime64[ms]",
           "float": "float64", "int": "float64", "bool": "boolean"}  # fmt: skip


@dataclass
class References:
    """What the checks of later tables know about earlier, validated tables.

    Lookups are pandas indexes: their hash table is built once and reused by
    every chunk (a national attendance table is hundreds of chunks).
    ``school_days`` holds ``school_code * 100_000 + days_since_1970`` per open day;
    ``enrollment_keys`` holds :func:`enrollment_key` of each (student, term) and
    ``enrollment_school`` the school code at the same position.
    """

    school_ids: frozenset[str] | None = None
    terms: frozenset[str] | None = None
    window: tuple[dt.date, dt.date] | None = None
    enrolled: pd.Index | None = None
    school_days: pd.Index | None = None
    enrollment_keys: pd.Index | None = None
    enrollment_school: np.ndarray | None = None


def term_code_of_dates(dates: pd.Series) -> np.ndarray:
    """Term of each date as ``BE_year * 10 + semester``: May–Oct is semester 1, Nov–Apr semester 2; 0 for no date."""
    missing = dates.isna().to_numpy()
    year = dates.dt.year.fillna(0).to_numpy(dtype=np.int64)
    month = dates.dt.month.fillna(1).to_numpy(dtype=np.int64)
    academic_year_ce = np.where(month <= 4, year - 1, year)
    semester = np.where((month >= 5) & (month <= 10), 1, 2)
    return np.where(missing, 0, (academic_year_ce + 543) * 10 + semester)


def enrollment_key(student_key: np.ndarray, term_code: np.ndarray) -> np.ndarray:
    """One int64 per (student, term): the pseudonym mixed with the term (wrapping arithmetic).

    Pseudonyms are uniformly random 64-bit values, so two pairs share a key with
    probability ~n²/2⁶⁵ (under 1e-5 for 10 million pairs).
    """
    with np.errstate(over="ignore"):
        return student_key.astype(np.int64) ^ (term_code.astype(np.int64) * np.int64(0x9E3779B97F4A7C15 - (1 << 64)))


def term_codes(terms: pd.Series) -> np.ndarray:
    """``"2567-1"`` → ``25671``."""
    return terms.str.replace("-", "", regex=False).astype("int64").to_numpy()


def school_day_codes(school_ids: pd.Series, dates: pd.Series) -> np.ndarray:
    days = (dates.to_numpy().astype("datetime64[D]") - _EPOCH).astype(np.int64)
    return school_ids.astype("int64").to_numpy() * 100_000 + days


def _series(like: pd.Series, mask: np.ndarray) -> pd.Series:
    """pandera checks must answer with a Series aligned to their input."""
    return pd.Series(mask, index=like.index)


def build_schema(table: Table, refs: References) -> pa.DataFrameSchema:
    """The pandera schema of ``table``; reference checks are added only when ``refs`` has the data."""
    columns = {c.name: _column(c, refs) for c in table.columns}
    if table.name == "attendance_daily" and refs.enrollment_keys is not None:
        # Booleans made by attach_lookups: one failure case per row, not one per column.
        columns["enrolled_that_term"] = pa.Column("bool", pa.Check(lambda s: s, name="no_enrollment_that_term"))
        columns["school_day"] = pa.Column("bool", pa.Check(lambda s: s, name="not_a_school_day"))
    if table.has_student and refs.enrolled is not None:
        enrolled = refs.enrolled
        columns["student_key"] = pa.Column(
            "int64",
            pa.Check(lambda s: _series(s, enrolled.get_indexer(s.to_numpy()) >= 0), name="orphan_student"),
        )
    return pa.DataFrameSchema(columns, checks=_table_checks(table, refs), strict=False, coerce=False)


def _column(column: Column, refs: References) -> pa.Column:
    checks: list[pa.Check] = []
    if column.kind == "id":
        checks.append(pa.Check(lambda s: _series(s, valid_student_id_mask(s)), name="invalid_id"))
    if column.kind == "term":
        checks.append(pa.Check.str_matches(TERM_FORMAT, error="bad_format"))
        if refs.terms is not None:
            terms = refs.terms
            checks.append(pa.Check(lambda s: s.isin(terms), name="unknown_term"))
    if column.pattern:
        checks.append(pa.Check.str_matches(column.pattern, error="bad_format"))
    if column.allowed is not None:
        checks.append(pa.Check.isin(column.allowed, error="not_allowed"))
    if column.name == "school_id" and refs.school_ids is not None:
        known = refs.school_ids
        checks.append(pa.Check(lambda s: s.isin(known), name="unknown_school"))
    checks += _number_checks(column)
    if column.kind == "date":
        checks += _date_checks(column, refs)
    return pa.Column(_DTYPES[column.kind], checks=checks, nullable=not column.required)


def _number_checks(column: Column) -> list[pa.Check]:
    checks = []
    if column.kind == "int":
        checks.append(pa.Check(lambda s: s == np.floor(s), name="bad_type"))
    if column.minimum is not None or column.maximum is not None:
        low = -np.inf if column.minimum is None else column.minimum
        high = np.inf if column.maximum is None else column.maximum
        checks.append(pa.Check.in_range(low, high, error="out_of_range"))
    if column.step:
        step = column.step
        checks.append(pa.Check(lambda s: _series(s, np.isclose(s / step, np.round(s / step))), name="out_of_range"))
    return checks


def _date_checks(column: Column, refs: References) -> list[pa.Check]:
    checks = [pa.Check(lambda s: (s.dt.year >= EARLIEST_YEAR) & (s.dt.year < BUDDHIST_ERA_YEARS_FROM),
                       name="bad_date")]
    if refs.window is not None and not column.before_window:
        start, end = (pd.Timestamp(d) for d in refs.window)
        checks.append(pa.Check.in_range(start, end, error="bad_date"))
    elif refs.window is not None:
        # error, not name: a built-in check's error is its message, and the quarantine reads the rule from it.
        checks.append(pa.Check.le(pd.Timestamp(refs.window[1]), error="bad_date"))
    return checks


def _table_checks(table: Table, refs: References) -> list[pa.Check]:
    if table.name == "schools":
        return [pa.Check(lambda d: d["district_code"].str[:2] == d["province_code"], name="district_mismatch")]
    if table.name == "calendar":
        return [pa.Check(_date_in_term, name="date_outside_term")]
    if table.name == "enrollments":
        return [pa.Check(_age_in_range, name="out_of_range")]
    return []


def _date_in_term(frame: pd.DataFrame) -> pd.Series:
    ok = frame["term"].str.fullmatch(TERM_FORMAT)
    codes = np.where(ok, frame["term"].str.replace("-", "", regex=False), "0").astype("int64")
    return pd.Series(term_code_of_dates(frame["date"]) == codes, index=frame.index)


def _age_in_range(frame: pd.DataFrame) -> pd.Series:
    """Age at term start must be 3–22 (:data:`risk.data.contract.AGE_YEARS`); a term not YYYY-S is not judged."""
    valid_term = frame["term"].str.fullmatch(TERM_FORMAT)
    starts = {t: pd.Timestamp(term_start(t)) for t in frame.loc[valid_term, "term"].unique()}
    start = frame["term"].map(starts).astype("datetime64[ms]")
    age_years = (start - frame["birth_date"]).dt.days / DAYS_PER_YEAR
    youngest, too_old = AGE_YEARS
    return ~valid_term | ((age_years >= youngest) & (age_years < too_old))


# The columns attach_lookups adds for the reference checks alone: not data, never written
# (term_code and school_code become the validated attendance's term and school_id).
LOOKUP_COLUMNS = ("enrolled_that_term", "school_day")


def attach_lookups(frame: pd.DataFrame, table: Table, refs: References) -> pd.DataFrame:
    """Add the columns reference checks read: for attendance, each row's term and school that term.

    ``frame`` must already carry ``student_key``. Adds ``term_code``, ``school_code``
    (NaN when the student has no valid enrollment in the term of the date),
    ``enrolled_that_term`` and ``school_day`` (true also when not enrolled, which
    is reported by its own rule).
    """
    if table.name != "attendance_daily" or refs.enrollment_keys is None:
        return frame
    frame["term_code"] = term_code_of_dates(frame["date"])
    keys = enrollment_key(frame["student_key"].to_numpy(), frame["term_code"].to_numpy())
    position = refs.enrollment_keys.get_indexer(keys)
    enrolled = position >= 0
    school = refs.enrollment_school[np.maximum(position, 0)]
    frame["school_code"] = np.where(enrolled, school.astype("float64"), np.nan)
    days = (frame["date"].to_numpy().astype("datetime64[D]") - _EPOCH).astype(np.int64)
    open_day = refs.school_days.get_indexer(school * 100_000 + days) >= 0
    # A row without a date is reported as missing it, and for nothing else.
    no_date = frame["date"].isna().to_numpy()
    frame["enrolled_that_term"] = enrolled | no_date
    frame["school_day"] = ~enrolled | open_day | no_date
    return frame
