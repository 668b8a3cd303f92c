"""A clean payload recognised in one pass of plain Python: the service's fast way past the contract checks.

Most payloads an upstream system sends break no rule. For those, the checks of
:mod:`risk.features.payload` (pandas and the pandera checks, ~60 ms however few the
records) only confirm what a direct look at each value can: :class:`CleanPayloads`
walks the records once against the same contract (:data:`risk.data.contract.TABLES`:
each column's kind, required, allowed values, pattern, range, step; the table rules;
the references a validated folder knows; the duplicate keys) and returns the
student's records typed as :mod:`risk.features.rowwise` reads them.

It only ever says "clean" or "not sure": at the first value it cannot vouch for —
a broken rule, but also a number sent as text, a date not written ``YYYY-MM-DD``,
padding, an unknown key — it answers None and the payload takes the full path,
which decides what is left out and why, as batch does. So a record is never
accepted here that the full checks would reject (``tests/test_online_rowwise.py``
holds the two side by side, on clean payloads and on every kind of broken one).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from risk.data.contract import TABLES, Column, Table, term_of_date, term_start
from risk.data.ids import is_valid_student_id, masked_id, pseudonym
from risk.data.schemas import BUDDHIST_ERA_YEARS_FROM, EARLIEST_YEAR, References
from risk.features.rowwise import StudentRecords
from risk.features.sources import STUDENT_TABLES

__all__ = ["CleanPayload", "CleanPayloads"]

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TERM = re.compile(r"^\d{4}-[12]$")
_NUMBER = re.compile(r"^-?\d{1,15}(\.\d{1,15})?$")  # plain decimals only: what float() and pandas read alike


_AS_SENT = frozenset({"id", "text", "term"})  # kinds whose checked value is the value sent


class _NotSure(Exception):
    """A value the fast pass cannot vouch for: the payload takes the full checks."""


_REFUSED = object()  # a remembered verdict: the value is one the fast pass cannot vouch for
_UNSEEN = object()
_MEMO_LIMIT = 100_000  # remembered (table, column, type, value) verdicts; past this the memory starts afresh


@dataclass(frozen=True)
class CleanPayload:
    """A payload every record of which passes the contract: its student and typed records."""

    student_key: int
    id_hint: str
    records: StudentRecords


class CleanPayloads:
    """Recognises clean payloads against one validated folder's references (see the module docstring).

    ``calendar(school_id, term)`` returns the school's open days of that term, sorted
    (``datetime64[D]``; empty when the school has none that term).
    """

    def __init__(self, refs: References, calendar: Callable[[str, str], np.ndarray]) -> None:
        self.refs = refs
        self.calendar = calendar
        self._columns = {name: {c.name: c for c in TABLES[name].columns} for name in STUDENT_TABLES}
        self._patterns = {(name, c.name): re.compile(c.pattern) for name in STUDENT_TABLES
                          for c in TABLES[name].columns if c.pattern}
        # A value's verdict depends only on its column and the references, both fixed for this
        # object: statuses, schools, terms, grades and amounts recur across requests, so each is
        # checked once (a dict lookup instead of ~1 µs of rules, ~100 values a payload).
        self._memo: dict[tuple[str, str, type, Any], Any] = {}

    def check(self, payload: Mapping[str, Any], key: bytes) -> CleanPayload | None:
        """The payload's student and typed records when every record is clean, else None."""
        try:
            return self._check(payload, key)
        except _NotSure:
            return None

    def _check(self, payload: Mapping[str, Any], key: bytes) -> CleanPayload:
        if not isinstance(payload, Mapping) or set(payload) - set(STUDENT_TABLES):
            raise _NotSure
        enrollments = payload.get("enrollments") or []
        if not isinstance(enrollments, list) or not enrollments or not isinstance(enrollments[0], dict):
            raise _NotSure
        student_id = enrollments[0].get("student_id")
        if not isinstance(student_id, str) or not is_valid_student_id(student_id):
            raise _NotSure
        tables: dict[str, dict[str, np.ndarray]] = {}
        enrolled: dict[str, str] = {}  # term → school of the student's enrollment
        for name in STUDENT_TABLES:
            rows = payload.get(name) or []
            if not isinstance(rows, list):
                raise _NotSure
            columns = self._table(TABLES[name], rows, student_id)
            if name == "enrollments":
                enrolled = self._enrollments(columns)
            elif name == "attendance_daily":
                columns = self._attendance(columns, enrolled)
            tables[name] = _typed(TABLES[name], columns)
        return CleanPayload(pseudonym(student_id, key), masked_id(student_id), StudentRecords(tables))

    def _table(self, table: Table, rows: list[Any], student_id: str) -> dict[str, Any]:
        """The table's columns (lists or arrays of Python values) after every record's every value passed."""
        spec = self._columns[table.name]
        if not rows:
            return {column.name: [] for column in table.columns}
        if set(map(type, rows)) != {dict}:
            raise _NotSure
        # Every record must carry the first one's keys (as many, and each found; any order);
        # anything else takes the full way. Then one C-level pass per column takes its values.
        keys = tuple(rows[0])
        if set(keys) - set(spec) or any(c.required and c.name not in keys for c in table.columns) or \
                set(map(len, rows)) != {len(keys)}:
            raise _NotSure
        try:
            given = {key: list(map(itemgetter(key), rows)) for key in keys}
        except KeyError:
            raise _NotSure from None
        none = [None] * len(rows)
        out: dict[str, Any] = {}
        dates_as_sent: dict[str, list[Any]] = {}  # for the duplicate check: one spelling a day, text hashes fast
        for column in table.columns:
            values = given.get(column.name, none)
            if column.kind == "date" and column.required:
                out[column.name] = self._dates(column, values)
                dates_as_sent[column.name] = values
                continue
            if column.kind == "id":  # one student's payload: every record names the student (a valid ID)
                if values.count(student_id) != len(values):
                    raise _NotSure
                out[column.name] = values
                continue
            # Each distinct value is checked once (a year of attendance repeats five statuses
            # hundreds of times); by type too, as True, 1 and 1.0 are one dict key. A column of one
            # type (the usual case) is keyed by value alone, so both passes stay in C.
            types = set(map(type, values))
            try:
                if len(types) == 1:
                    (sent_type,) = types
                    typed = {v: self._remembered(table.name, column, (sent_type, v)) for v in set(values)}
                    lookup = typed.__getitem__
                else:
                    typed = {memo: self._remembered(table.name, column, memo)
                             for memo in dict.fromkeys(zip(map(type, values), values, strict=True))}

                    def lookup(value: Any, typed: dict = typed) -> Any:
                        return typed[type(value), value]
            except TypeError:  # an unhashable value (a list or an object): not a contract value
                raise _NotSure from None
            if column.kind in _AS_SENT:  # checked text comes back as sent: no second pass
                out[column.name] = values
            elif len(typed) == 1:
                out[column.name] = [next(iter(typed.values()))] * len(values)
            else:
                out[column.name] = list(map(lookup, values))
        self._unique(table, {**out, **dates_as_sent}, len(rows))
        return out

    def _remembered(self, table: str, column: Column, memo: tuple[type, Any]) -> Any:
        """:meth:`_value` of ``memo`` = (type, value), looked up first among the verdicts already reached."""
        if memo[1] != memo[1]:  # NaN: never a contract value (and no two NaNs are one dict key)
            raise _NotSure
        key = (table, column.name, *memo)
        verdict = self._memo.get(key, _UNSEEN)
        if verdict is _UNSEEN:
            try:
                verdict = self._value(table, column, memo[1])
            except _NotSure:
                verdict = _REFUSED
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = verdict
        if verdict is _REFUSED:
            raise _NotSure
        return verdict

    def _value(self, table: str, column: Column, value: Any) -> Any:
        if value is None:
            if column.required:
                raise _NotSure
            return None
        kind = column.kind
        if kind in ("text", "term"):  # (the ID column is checked whole by _table: it must be the student's)
            if not isinstance(value, str) or value != value.strip():
                raise _NotSure
            if kind == "term" and (not _TERM.match(value) or (self.refs.terms is not None
                                                             and value not in self.refs.terms)):
                raise _NotSure
            pattern = self._patterns.get((table, column.name))
            if pattern is not None and not pattern.match(value):
                raise _NotSure
            if column.allowed is not None and value not in column.allowed:
                raise _NotSure
            if column.name == "school_id" and self.refs.school_ids is not None and value not in self.refs.school_ids:
                raise _NotSure
            return value
        if kind == "date":
            if not isinstance(value, str) or not _DATE.match(value):
                raise _NotSure
            try:
                day = dt.date.fromisoformat(value)
            except ValueError:
                raise _NotSure from None
            if not EARLIEST_YEAR <= day.year < BUDDHIST_ERA_YEARS_FROM:
                raise _NotSure
            window = self.refs.window
            if window is not None and (day > window[1] or (column.name != "birth_date" and day < window[0])):
                raise _NotSure
            return day
        if kind in ("float", "int"):
            if isinstance(value, str) and _NUMBER.match(value):  # a CSV-born export sends numbers as text
                number = float(value)
            elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise _NotSure
            else:
                number = float(value)
            if kind == "int" and number != math.floor(number):
                raise _NotSure
            if (column.minimum is not None and number < column.minimum) or (
                    column.maximum is not None and number > column.maximum):
                raise _NotSure
            if column.step and number / column.step != round(number / column.step):  # exact: stricter than isclose
                raise _NotSure
            return number
        if kind == "bool":
            if not isinstance(value, bool):
                raise _NotSure
            return 1.0 if value else 0.0
        raise _NotSure

    def _dates(self, column: Column, values: list[Any]) -> np.ndarray:
        """A required date column at once: ``YYYY-MM-DD`` text only, real days, years and window as :meth:`_value`."""
        if set(map(type, values)) - {str} or set(map(len, values)) - {10}:
            raise _NotSure
        # YYYY-MM-DD in ASCII digits, checked on the values joined, by string methods in C (a regex per
        # value costs ~10×): every tenth character from the 5th and the 8th a dash, no other dash, the rest digits.
        text, n = "".join(values), len(values)
        if not (text.isascii() and text.count("-") == 2 * n and text[4::10] == text[7::10] == "-" * n
                and (not n or text.replace("-", "").isdigit())):
            raise _NotSure
        try:
            days = np.array(values, dtype="datetime64[D]")
        except ValueError:  # 2024-02-30 and the like
            raise _NotSure from None
        if not len(days):
            return days
        # The range decides the year and window checks (year 0000 is no datetime.date: .item() gives an int).
        first, last = days.min().item(), days.max().item()
        if not isinstance(first, dt.date) or first.year < EARLIEST_YEAR or last.year >= BUDDHIST_ERA_YEARS_FROM:
            raise _NotSure
        window = self.refs.window
        if window is not None and (last > window[1] or (column.name != "birth_date" and first < window[0])):
            raise _NotSure
        return days  # kept as numpy: typed records want it so, and back from dates it costs ~1 µs a value

    @staticmethod
    def _unique(table: Table, columns: dict[str, list[Any]], n: int) -> None:
        """No two records share the table's unique key (or, without one, all their values)."""
        key_columns = [columns[c] for c in table.unique_key if c != "student_id"] or list(columns.values())
        seen = set(key_columns[0]) if len(key_columns) == 1 else set(zip(*key_columns, strict=True))
        if len(seen) != n and n:
            raise _NotSure

    @staticmethod
    def _enrollments(columns: dict[str, list[Any]]) -> dict[str, str]:
        """Term → school; every enrollment's age at term start within 3–22."""
        for term, birth in zip(columns["term"], columns["birth_date"].tolist(), strict=True):
            age = (term_start(term) - birth).days / 365.25
            if not 3 <= age < 23:
                raise _NotSure
        return dict(zip(columns["term"], columns["school_id"], strict=True))

    def _attendance(self, columns: dict[str, Any], enrolled: Mapping[str, str]) -> dict[str, Any]:
        """Each day is a school day of the school the student was enrolled at that term; adds term and school.

        Days are grouped by month (a term is whole months), so the term and school are
        looked up once a month and each term's days are matched to that school's sorted
        calendar at once.
        """
        days = np.asarray(columns["date"], dtype="datetime64[D]")
        months, inverse = np.unique(days.astype("datetime64[M]").astype(np.int64), return_inverse=True)
        month_terms = [term_of_date(dt.date(1970 + m // 12, m % 12 + 1, 1)) for m in months.tolist()]
        terms = np.array(month_terms, dtype=object)[inverse]
        schools = np.empty(len(days), dtype=object)
        for term in set(month_terms):
            school = enrolled.get(term)
            if school is None:
                raise _NotSure
            open_days = self.calendar(school, term)
            if not len(open_days):
                raise _NotSure
            rows = terms == term
            wanted = days[rows]
            at = np.minimum(np.searchsorted(open_days, wanted), len(open_days) - 1)
            if (open_days[at] != wanted).any():
                raise _NotSure
            schools[rows] = school
        return {**columns, "term": terms, "school_id": schools}


def _typed(table: Table, columns: dict[str, list[Any]]) -> dict[str, np.ndarray]:
    """Lists of checked values as the arrays of :class:`risk.features.rowwise.StudentRecords`."""
    kinds = {c.name: c.kind for c in table.columns}
    out = {}
    for name, values in columns.items():
        kind = kinds.get(name, "text")
        if name == "student_id":
            continue
        if isinstance(values, np.ndarray):  # a required date column, typed already
            out[name] = values
        elif kind == "date":
            out[name] = np.array([np.datetime64("NaT") if v is None else v for v in values], dtype="datetime64[D]")
        elif kind in ("float", "int", "bool"):
            out[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        else:
            out[name] = np.array(values, dtype=object)
    return out
