"""A payload checked in one pass of plain Python: the service's fast way past the contract checks.

The checks of :mod:`risk.online.payload` (pandas and the pandera checks, ~60 ms
however few the records) reach verdicts a direct look at each value can reach too:
:class:`CleanPayloads` walks the records once against the same contract
(:data:`risk.data.contract.TABLES`: each column's kind, required, allowed values,
pattern, range, step; the JSON types of :func:`risk.online.payload_records.json_fault`;
the table rules; the references a validated folder knows; the duplicate keys) and
returns the student's valid records typed as :mod:`risk.online.rowwise` reads
them, with every other record left out under the rule the full checks give it
(the first of its rules in :data:`risk.data.rule_codes.RULES` order) and a detail in
their words.

Where it cannot be sure of the full checks' verdict it says so (:class:`Deferred`,
with the reason) and the payload takes the full checks. The kinds it defers, all
rare in what upstream systems send:

- text with padding (the reader trims with Arrow's idea of white space);
- a date not written ``YYYY-MM-DD`` that holds a digit (Arrow's ``strptime`` reads
  some of them: ``2026-7-20``), or ``YYYY-MM-DD`` that is no real day (Arrow reads
  ``2024-02-30`` as 1 March);
- a number as text that is not a plain decimal (``1e3``, ``inf``), or off its step
  by less than the checks' tolerance;
- records of another student, or no valid enrollment (the payload is refused: the
  full checks word the message);
- a student with two enrollments the evaluator cannot place.

``tests/test_online_rowwise.py`` holds the two side by side on clean payloads and
on every kind of broken one: the same records left out with the same rules, and
the same vector.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from risk.data.contract import TABLES, Column, Table, term_of_date, term_start
from risk.data.ids import is_valid_student_id, masked_id, pseudonym
from risk.data.rule_codes import RULES
from risk.data.schemas import BUDDHIST_ERA_YEARS_FROM, EARLIEST_YEAR, References
from risk.data.values import FALSE_WORDS, TRUE_WORDS
from risk.features.sources import STUDENT_TABLES
from risk.online.payload import Rejected
from risk.online.payload_records import MAX_TEXT_CHARS, excerpt, json_fault, json_type
from risk.online.rowwise import StudentRecords

__all__ = ["CleanPayload", "CleanPayloads", "Deferred"]

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TERM = re.compile(r"^\d{4}-[12]$")
_NUMBER = re.compile(r"^-?\d{1,15}(\.\d{1,15})?$")  # plain decimals only: what float() and pandas read alike
_ASCII_DIGIT = re.compile(r"[0-9]")
_INFINITE = frozenset({"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})
_PRIORITY = {rule: i for i, rule in enumerate(RULES)}
_ROW = "(row)"  # a table rule's failure names the row, as the quarantine does


_AS_SENT = frozenset({"id", "text", "term"})  # kinds whose checked value is the value sent


class _NotSure(Exception):
    """A verdict the fast pass cannot vouch for: the payload takes the full checks (the argument says why)."""


@dataclass(frozen=True)
class _Bad:
    """A value that breaks rules: ``failures`` (rule, value as shown); ``parsed`` the value read, when there is one."""

    failures: tuple[tuple[str, str], ...]
    parsed: Any = None


@dataclass(frozen=True)
class _Refused:
    reason: str


_UNSEEN = object()
_MEMO_LIMIT = 100_000  # remembered (table, column, type, value) verdicts; past this the memory starts afresh


@dataclass(frozen=True)
class Deferred:
    """Why the fast pass left a payload to the full checks (a short phrase, for the metric and the log)."""

    reason: str


@dataclass(frozen=True)
class CleanPayload:
    """A payload checked by the fast pass: its student, valid records typed, and the records left out."""

    student_key: int
    id_hint: str
    records: StudentRecords
    rejected: tuple[Rejected, ...] = ()


@dataclass
class _Table:
    """One table's records that are objects: ``at`` their positions, ``columns`` their verdicts, ``failures`` by row."""

    at: list[int]
    columns: dict[str, Any]
    failures: dict[int, list[tuple[int, str, str, str]]]  # row → (priority, column, rule, shown)
    dropped: list[tuple[int, str]]  # (position, what) of records that are no JSON object

    def add(self, row: int, column: str, rule: str, shown: str) -> None:
        self.failures.setdefault(row, []).append((_PRIORITY[rule], column, rule, shown))


class CleanPayloads:
    """Checks payloads against one validated folder's references (see the module docstring).

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

    def check(self, payload: Mapping[str, Any], key: bytes) -> CleanPayload | Deferred:
        """The payload's student, valid records and left-out records; or why the full checks must decide."""
        try:
            return self._check(payload, key)
        except _NotSure as exc:
            return Deferred(str(exc))

    def _check(self, payload: Mapping[str, Any], key: bytes) -> CleanPayload:
        if not isinstance(payload, Mapping) or set(payload) - set(STUDENT_TABLES):
            raise _NotSure("tables outside the contract")
        student_id = _student(payload.get("enrollments"))
        tables: dict[str, dict[str, np.ndarray]] = {}
        rejected: list[Rejected] = []
        enrolled: dict[str, str] = {}  # term → school of the student's valid enrollment
        for name in STUDENT_TABLES:
            rows = payload.get(name) or []
            if not isinstance(rows, list):
                raise _NotSure("a table that is not a list")
            table = TABLES[name]
            checked = self._table(table, rows, student_id)
            if name == "enrollments":
                _ages(checked)
            elif name == "attendance_daily":
                self._school_days(checked, enrolled)
            kept = _without_duplicates(table, checked)
            rejected += _rejected(name, checked)
            columns = {c: _take(v, kept) for c, v in checked.columns.items()}
            if name == "enrollments":
                if not kept:
                    raise _NotSure("no valid enrollment")
                enrolled = dict(zip(columns["term"], columns["school_id"], strict=True))
            elif name == "attendance_daily":
                columns = _with_term_and_school(columns, enrolled)
            tables[name] = _typed(table, columns)
        return CleanPayload(pseudonym(student_id, key), masked_id(student_id), StudentRecords(tables),
                            tuple(rejected))

    def _table(self, table: Table, rows: list[Any], student_id: str) -> _Table:
        """Every value of every record checked: the verdicts by column, and each record's failures."""
        if set(map(type, rows)) - {dict}:
            dropped = [(i, json_type(r)) for i, r in enumerate(rows) if type(r) is not dict]
            at = [i for i, r in enumerate(rows) if type(r) is dict]
            rows = [rows[i] for i in at]
        else:
            dropped, at = [], list(range(len(rows)))
        out = _Table(at, {}, {}, dropped)
        given = self._given(table, rows)
        n = len(rows)
        for column in table.columns:
            values = given.get(column.name) or [None] * n
            if column.kind == "id":  # one student's payload: every record names the student (a valid ID)
                out.columns[column.name] = values
                if values.count(student_id) != n:
                    for row, value in enumerate(values):
                        if value != student_id:
                            self._foreign_id(out, row, column.name, value)
                continue
            if column.kind == "date" and column.required and n:
                days = self._dates(column, values)
                if days is not None:
                    out.columns[column.name] = days
                    continue
            verdicts = self._verdicts(table.name, column, values)
            out.columns[column.name] = verdicts
            if _Bad in set(map(type, verdicts)):
                for row, verdict in enumerate(verdicts):
                    if type(verdict) is _Bad:
                        for rule, shown in verdict.failures:
                            out.add(row, column.name, rule, shown)
        return out

    def _given(self, table: Table, rows: list[dict]) -> dict[str, list[Any]]:
        """Each contract column's values over the records (absent keys as None); a key outside the contract is ignored.

        As batch reads only the contract's columns of an export file, a record is judged on those alone.
        """
        spec = self._columns[table.name]
        if not rows:
            return {}
        keys = tuple(rows[0])
        # The usual case: every record carries the first one's keys (as many, each found; any order); then
        # one C-level pass per column takes its values. Keys outside the contract are taken (so that every
        # record is seen to hold the same keys) and then dropped.
        if set(map(len, rows)) == {len(keys)}:
            try:
                given = {k: list(map(itemgetter(k), rows)) for k in keys}
            except KeyError:
                pass
            else:
                return given if spec.keys() >= given.keys() else {k: v for k, v in given.items() if k in spec}
        return {name: [r.get(name) for r in rows] for name in spec}

    def _foreign_id(self, out: _Table, row: int, column: str, value: Any) -> None:
        """A record's student_id that is not the payload's student: its rule, or not sure."""
        if value is None:
            out.add(row, column, "missing_required", "")
        elif json_fault("id", value):
            out.add(row, column, "bad_type", "unreadable")
        elif value != value.strip():
            raise _NotSure("padded text")
        elif is_valid_student_id(value):
            raise _NotSure("records of another student")
        else:
            out.add(row, column, "invalid_id", masked_id(value))

    def _verdicts(self, table: str, column: Column, values: list[Any]) -> list[Any]:
        """Each value's verdict: its typed value, or a :class:`_Bad`; raises _NotSure at a value it cannot judge."""
        # Each distinct value is checked once (a year of attendance repeats five statuses hundreds of
        # times); by type too, as True, 1 and 1.0 are one dict key. A column of one type (the usual
        # case) is keyed by value alone, so both passes stay in C.
        types = set(map(type, values))
        try:
            if len(types) == 1:
                (sent_type,) = types
                typed = {v: self._remembered(table, column, sent_type, v) for v in set(values)}
                if column.kind in _AS_SENT and not any(type(v) is _Bad for v in typed.values()):
                    return values  # checked text comes back as sent: no second pass
                if len(typed) == 1:
                    return [next(iter(typed.values()))] * len(values)
                return list(map(typed.__getitem__, values))
            typed = {memo: self._remembered(table, column, *memo)
                     for memo in dict.fromkeys(zip(map(type, values), values, strict=True))}
            return [typed[type(v), v] for v in values]
        except TypeError:  # an unhashable value (a list or an object): judged one by one, unremembered
            return [self._remembered(table, column, type(v), v) if _hashable(v) else self._judged(table, column, v)
                    for v in values]

    def _remembered(self, table: str, column: Column, sent_type: type, value: Any) -> Any:
        """:meth:`_value`, looked up first among the verdicts already reached (raises TypeError when unhashable)."""
        key = (table, column.name, sent_type, value)
        verdict = self._memo.get(key, _UNSEEN)
        if verdict is _UNSEEN:
            try:
                verdict = self._judged(table, column, value)
            except _NotSure as exc:
                verdict = _Refused(str(exc))
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            if sent_type is not str or len(value) <= MAX_TEXT_CHARS:  # a long text is no memory's business
                self._memo[key] = verdict
        if type(verdict) is _Refused:
            raise _NotSure(verdict.reason)
        return verdict

    def _judged(self, table: str, column: Column, value: Any) -> Any:
        """A value that cannot be of the column's type is ``bad_type``; the others are :meth:`_value`'s."""
        if json_fault(column.kind, value) or value != value:  # (NaN only from Python callers: JSON has none)
            return _Bad((("bad_type", "unreadable"),))
        return self._value(table, column, value)

    def _value(self, table: str, column: Column, value: Any) -> Any:
        """The typed value, or a :class:`_Bad` with the full checks' failures (json_fault already passed)."""
        if value is None:
            return _Bad((("missing_required", ""),)) if column.required else None
        kind = column.kind
        if kind in ("text", "term"):
            return self._text(table, column, value)
        if kind == "date":
            return self._date(column, value)
        if kind in ("float", "int"):
            return self._number(column, value)
        if kind == "bool":
            if isinstance(value, bool):
                return 1.0 if value else 0.0
            if value != value.strip():
                raise _NotSure("padded text")
            word = value.lower()
            return 1.0 if word in TRUE_WORDS else 0.0 if word in FALSE_WORDS else _Bad((("bad_type", "unreadable"),))
        raise _NotSure(f"a column of kind {kind}")

    def _text(self, table: str, column: Column, value: str) -> str | _Bad:
        if value != value.strip():
            raise _NotSure("padded text")
        failures = []
        if column.kind == "term":
            if not _TERM.match(value):
                failures.append("bad_format")
            if self.refs.terms is not None and value not in self.refs.terms:
                failures.append("unknown_term")
        pattern = self._patterns.get((table, column.name))
        if pattern is not None and not pattern.match(value):
            failures.append("bad_format")
        if column.allowed is not None and value not in column.allowed:
            failures.append("not_allowed")
        if column.name == "school_id" and self.refs.school_ids is not None and value not in self.refs.school_ids:
            failures.append("unknown_school")
        if not failures:
            return value
        shown = excerpt(value)
        return _Bad(tuple((rule, shown) for rule in dict.fromkeys(failures)), value)

    def _date(self, column: Column, value: str) -> dt.date | _Bad:
        if value != value.strip():
            raise _NotSure("padded text")
        if not _DATE.match(value):
            if _ASCII_DIGIT.search(value):
                raise _NotSure("a date not written YYYY-MM-DD")
            return _Bad((("bad_type", "unreadable"),))  # no digit: nothing reads it as a day
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            raise _NotSure("YYYY-MM-DD that is no real day") from None
        window = self.refs.window
        if not EARLIEST_YEAR <= day.year < BUDDHIST_ERA_YEARS_FROM or (window is not None and (
                day > window[1] or (column.name != "birth_date" and day < window[0]))):
            return _Bad((("bad_date", day.isoformat()),), day)
        return day

    def _number(self, column: Column, value: Any) -> float | _Bad:
        if isinstance(value, str):
            if _NUMBER.match(value):  # a CSV-born export sends numbers as text
                number = float(value)
            elif value != value.strip() or value.lower() in _INFINITE or any(c.isdigit() for c in value):
                raise _NotSure("a number as text that is not a plain decimal")
            else:
                return _Bad((("bad_type", "unreadable"),))
        else:
            number = float(value)
        failures = []
        if column.kind == "int" and number != math.floor(number):
            failures.append("bad_type")
        if (column.minimum is not None and number < column.minimum) or (
                column.maximum is not None and number > column.maximum):
            failures.append("out_of_range")
        if column.step and number / column.step != round(number / column.step):
            if np.isclose(number / column.step, np.round(number / column.step)):
                raise _NotSure("a number off its step by less than the checks' tolerance")
            failures.append("out_of_range")
        if not failures:
            return number
        return _Bad(tuple((rule, excerpt(number)) for rule in dict.fromkeys(failures)), number)

    def _dates(self, column: Column, values: list[Any]) -> np.ndarray | None:
        """A required date column at once when every value is a plain, valid day; None sends it value by value."""
        if set(map(type, values)) - {str} or set(map(len, values)) - {10}:
            return None
        # YYYY-MM-DD in ASCII digits, checked on the values joined, by string methods in C (a regex per
        # value costs ~10×): every tenth character from the 5th and the 8th a dash, no other dash, the rest digits.
        text, n = "".join(values), len(values)
        if not (text.isascii() and text.count("-") == 2 * n and text[4::10] == text[7::10] == "-" * n
                and text.replace("-", "").isdigit()):
            return None
        try:
            days = np.array(values, dtype="datetime64[D]")
        except ValueError:  # 2024-02-30 and the like
            return None
        # The range decides the year and window checks (year 0000 is no datetime.date: .item() gives an int).
        first, last = days.min().item(), days.max().item()
        if not isinstance(first, dt.date) or first.year < EARLIEST_YEAR or last.year >= BUDDHIST_ERA_YEARS_FROM:
            return None
        window = self.refs.window
        if window is not None and (last > window[1] or (column.name != "birth_date" and first < window[0])):
            return None
        return days  # kept as numpy: typed records want it so, and back from dates it costs ~1 µs a value

    def _school_days(self, checked: _Table, enrolled: Mapping[str, str]) -> None:
        """Each day (read as one) is a school day of the school the student was enrolled at that term.

        As in the full checks, a record with other failures is looked at too: its detail lists all.
        Days are grouped by month (a term is whole months), so the term and school are looked up
        once a month and each term's days are matched to that school's sorted calendar at once.
        """
        days = _day_array(checked.columns["date"])
        if not len(days):
            return
        months, inverse = np.unique(days.astype("datetime64[M]").astype(np.int64), return_inverse=True)
        dated = ~np.isnat(days)
        month_terms = np.array([term_of_date(dt.date(1970 + m // 12, m % 12 + 1, 1)) if m > -(2**62) else ""
                                for m in months.tolist()], dtype=object)
        terms = month_terms[inverse]
        not_enrolled = np.zeros(len(days), dtype=bool)
        closed = np.zeros(len(days), dtype=bool)
        for term in set(month_terms.tolist()) - {""}:
            rows = (terms == term) & dated
            school = enrolled.get(term)
            if school is None:
                not_enrolled |= rows
                continue
            open_days = self.calendar(school, term)
            wanted = days[rows]
            at = np.minimum(np.searchsorted(open_days, wanted), max(len(open_days) - 1, 0))
            found = open_days[at] == wanted if len(open_days) else np.zeros(len(wanted), dtype=bool)
            closed[np.flatnonzero(rows)[~found]] = True
        for row in np.flatnonzero(not_enrolled).tolist():
            checked.add(row, "enrolled_that_term", "no_enrollment_that_term", "False")
        for row in np.flatnonzero(closed).tolist():
            checked.add(row, "school_day", "not_a_school_day", "False")


def _student(enrollments: Any) -> str:
    """The student of the payload: the first valid ID among its enrollments (the full checks word every other case)."""
    for record in enrollments if isinstance(enrollments, list) else []:
        value = record.get("student_id") if isinstance(record, dict) else None
        if isinstance(value, str) and len(value) == 13 and is_valid_student_id(value):
            return value
    raise _NotSure("no enrollment with a valid student_id")


def _plain(values: Any) -> list[Any]:
    """A column's values as Python objects (days as ``datetime.date``, so all of a column compare alike)."""
    return values.tolist() if isinstance(values, np.ndarray) else values


def _hashable(value: Any) -> bool:
    return not isinstance(value, list | dict)


def _day_array(values: Any) -> np.ndarray:
    """A date column's verdicts as ``datetime64[D]``: the day read (a bad date's too), else NaT."""
    if isinstance(values, np.ndarray):
        return values
    parsed = [v.parsed if type(v) is _Bad else v for v in values]
    return np.array([v if isinstance(v, dt.date) else np.datetime64("NaT") for v in parsed], dtype="datetime64[D]")


def _day(value: Any) -> dt.date:
    return value.item() if isinstance(value, np.datetime64) else value


def _ages(checked: _Table) -> None:
    """Age 3–22 at term start, on every enrollment whose term reads as a term (no birth date fails it too).

    Records with other failures are looked at too, as the full checks do: their detail lists every rule.
    """
    terms, births = checked.columns["term"], checked.columns["birth_date"]
    for row in range(len(checked.at)):
        term, birth = terms[row], births[row]
        if type(term) is _Bad:
            term = term.parsed
        if type(birth) is _Bad:
            birth = birth.parsed
        if not isinstance(term, str) or not _TERM.fullmatch(term):
            continue
        if birth is None or not 3 <= (term_start(term) - _day(birth)).days / 365.25 < 23:
            checked.add(row, _ROW, "out_of_range", "")


def _without_duplicates(table: Table, checked: _Table) -> list[int]:
    """Batch's duplicate rules on the records without failures: of those sharing a key the first is kept.

    Returns the rows kept; the others get ``duplicate`` (an exact copy of an earlier
    one) or ``duplicate_key`` (another value under the same key).
    """
    rows = [row for row in range(len(checked.at)) if row not in checked.failures]
    data_cols = [c for c in table.column_names if c != "student_id"]
    key_cols = [c for c in table.unique_key if c != "student_id"] or data_cols
    # The usual case, no two records with one key, is told by one set in C.
    keys = [_plain(checked.columns[c]) for c in key_cols]
    if len(rows) != len(checked.at):
        keys = [[column[r] for r in rows] for column in keys]
    row_keys = keys[0] if len(keys) == 1 else list(zip(*keys, strict=True))
    if len(set(row_keys)) == len(rows):
        return rows
    counts = Counter(row_keys)
    plain = {c: _plain(checked.columns[c]) for c in data_cols}
    first: dict[object, int] = {}
    seen: set[tuple] = set()
    kept = []
    for row, key in zip(rows, row_keys, strict=True):
        if counts[key] == 1:  # only records sharing a key are compared
            kept.append(row)
            continue
        data = tuple(plain[c][row] for c in data_cols)
        if key not in first:
            first[key] = row
            seen.add(data)
            kept.append(row)
            continue
        source = f"row {checked.at[first[key]]} of payload:{table.name}"
        if data in seen:
            checked.failures[row] = [(_PRIORITY["duplicate"], "", "duplicate", f"copy of {source}")]
        else:
            checked.failures[row] = [(_PRIORITY["duplicate_key"], "", "duplicate_key", f"same key as {source}")]
            seen.add(data)
    return kept


def _rejected(name: str, checked: _Table) -> list[Rejected]:
    """The table's left-out records in their order: the first rule by priority, all of them in the detail."""
    out = [(position, Rejected(name, position, "bad_type", f"the record is not a JSON object ({what})"))
           for position, what in checked.dropped]
    for row, failures in checked.failures.items():
        failures = sorted(set(failures))
        rule = failures[0][2]
        if rule in ("duplicate", "duplicate_key"):
            detail = failures[0][3]
        else:
            detail = "; ".join(f"{rule}: {RULES[rule]}" if column == _ROW else f"{column} = {shown}: {rule}"
                               for _, column, rule, shown in failures)
        out.append((checked.at[row], Rejected(name, checked.at[row], rule, detail)))
    return [r for _, r in sorted(out, key=lambda item: item[0])]


def _take(values: Any, kept: list[int]) -> Any:
    if isinstance(values, np.ndarray):
        return values[kept] if len(kept) != len(values) else values
    return values if len(kept) == len(values) else [values[i] for i in kept]


def _with_term_and_school(columns: dict[str, Any], enrolled: Mapping[str, str]) -> dict[str, Any]:
    """Attendance with the term of each day and the school the student was enrolled at then.

    Days are grouped by month (a term is whole months), so the term is worked out once a month.
    """
    days = np.asarray(columns["date"], dtype="datetime64[D]")
    months, inverse = np.unique(days.astype("datetime64[M]").astype(np.int64), return_inverse=True)
    month_terms = [term_of_date(dt.date(1970 + m // 12, m % 12 + 1, 1)) for m in months.tolist()]
    terms = np.array(month_terms, dtype=object)[inverse] if len(days) else np.empty(0, dtype=object)
    schools = np.array([enrolled[t] for t in month_terms], dtype=object)[inverse] if len(days) else \
        np.empty(0, dtype=object)
    return {**columns, "date": days, "term": terms, "school_id": schools}


def _typed(table: Table, columns: dict[str, Any]) -> dict[str, np.ndarray]:
    """Lists of checked values as the arrays of :class:`risk.online.rowwise.StudentRecords`."""
    kinds = {c.name: c.kind for c in table.columns}
    out = {}
    for name, values in columns.items():
        kind = kinds.get(name, "text")
        if name == "student_id":
            continue
        if isinstance(values, np.ndarray) and (kind == "date" or name in ("term", "school_id")):
            out[name] = values
        elif kind == "date":
            out[name] = np.array([np.datetime64("NaT") if v is None else v for v in values], dtype="datetime64[D]")
        elif kind in ("float", "int", "bool"):
            out[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        else:
            out[name] = np.array(values, dtype=object)
    return out

