"""Each value of a payload judged against its contract column: the typed value, or the rules it breaks.

Part of :mod:`risk.online.payload_fast`. The rules are the contract's, read once
per column when the checker is built (:func:`column_rules`): allowed values,
pattern, range and step from :data:`risk.data.contract.TABLES`; the term format,
the earliest year, the data window and which dates may precede it from
:mod:`risk.data.contract`; the known schools and terms from the validated folder's
:class:`risk.data.schemas.References`. The pandera schemas of the full checks are
built from the same definitions (:func:`risk.data.schemas.build_schema`), so a
value gets the same rules either way (``tests/test_online_rowwise.py`` holds the
two side by side).

A value the reader would parse in a way this module cannot vouch for raises
:class:`risk.online.payload_tables.NotSure` (padded text, a date not written
``YYYY-MM-DD`` or no real day, a number as text that is not a plain decimal, a
number off its step by less than the checks' tolerance).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from risk.data.contract import EARLIEST_YEAR, TABLES, TERM_FORMAT, Column
from risk.data.schemas import References
from risk.data.values import BUDDHIST_ERA_YEARS_FROM, FALSE_WORDS, TRUE_WORDS
from risk.features.sources import STUDENT_TABLES
from risk.online.payload_records import MAX_TEXT_CHARS, excerpt, json_fault
from risk.online.payload_tables import Bad, NotSure

__all__ = ["ColumnRules", "ValueRules", "column_rules"]

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")  # the payload's dates (the API contract): ISO days only
_NUMBER = re.compile(r"^-?\d{1,15}(\.\d{1,15})?$")  # plain decimals only: what float() and pandas read alike
_ASCII_DIGIT = re.compile(r"[0-9]")
_INFINITE = frozenset({"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})
_TERM = re.compile(TERM_FORMAT)
_AS_SENT = frozenset({"id", "text", "term"})  # kinds whose checked value is the value sent
_UNREADABLE = Bad((("bad_type", "unreadable"),))
_MISSING = Bad((("missing_required", ""),))
_UNSEEN = object()
_MEMO_LIMIT = 100_000  # remembered (table, column, type, value) verdicts; past this the memory starts afresh


@dataclass(frozen=True)
class ColumnRules:
    """One column's rules, read from the contract and the references once, for every value of every payload.

    Text: ``term_format`` (term columns), ``known_terms``, ``pattern``, ``allowed``,
    ``known_schools`` (``school_id``), each None where the rule does not apply, in the
    order the full checks list their failures. Dates: the first and last day a value may
    be (the earliest year, the last year before Buddhist-Era years, the data window),
    as ``datetime.date`` and as ``datetime64[D]``.
    """

    column: Column
    term_format: re.Pattern[str] | None
    known_terms: frozenset[str] | None
    pattern: re.Pattern[str] | None
    allowed: frozenset[str] | None
    known_schools: frozenset[str] | None
    first_day: dt.date
    last_day: dt.date
    first_day64: np.datetime64
    last_day64: np.datetime64


def column_rules(column: Column, refs: References) -> ColumnRules:
    """The rules of ``column`` with what ``refs`` knows (schools, terms, the data window)."""
    first = dt.date(EARLIEST_YEAR, 1, 1)
    last = dt.date(BUDDHIST_ERA_YEARS_FROM - 1, 12, 31)  # a year past this is a Buddhist-Era year left unread
    if refs.window is not None:
        last = min(last, refs.window[1])
        if not column.before_window:
            first = max(first, refs.window[0])
    is_term = column.kind == "term"
    return ColumnRules(
        column=column,
        term_format=_TERM if is_term else None,
        known_terms=refs.terms if is_term else None,
        pattern=re.compile(column.pattern) if column.pattern else None,
        allowed=frozenset(column.allowed) if column.allowed is not None else None,
        known_schools=refs.school_ids if column.name == "school_id" else None,
        first_day=first, last_day=last,
        first_day64=np.datetime64(first, "D"), last_day64=np.datetime64(last, "D"),
    )


class ValueRules:
    """Verdicts on the values of the student tables' columns against one validated folder's references.

    A value's verdict depends only on its column and the references, both fixed for
    this object: statuses, schools, terms, grades and amounts recur across requests,
    so each is judged once and remembered (a dict lookup instead of ~1 µs of rules,
    ~100 values a payload).
    """

    def __init__(self, refs: References) -> None:
        self.rules = {(name, c.name): column_rules(c, refs) for name in STUDENT_TABLES for c in TABLES[name].columns}
        self._memo: dict[tuple[str, str, type, Any], Any] = {}

    def verdicts(self, table: str, column: Column, values: list[Any]) -> list[Any]:
        """Each value's verdict: its typed value, or a :class:`Bad`; raises NotSure at a value it cannot judge."""
        rules = self.rules[table, column.name]
        # Each distinct value is judged once (a year of attendance repeats five statuses hundreds of
        # times); by type too, as True, 1 and 1.0 are one dict key. A column of one type (the usual
        # case) is keyed by value alone, so both passes stay in C.
        types = set(map(type, values))
        try:
            if len(types) == 1:
                (sent_type,) = types
                typed = {v: self._remembered(table, rules, sent_type, v) for v in set(values)}
                if column.kind in _AS_SENT and not any(type(v) is Bad for v in typed.values()):
                    return values  # checked text comes back as sent: no second pass
                if len(typed) == 1:
                    return [next(iter(typed.values()))] * len(values)
                return list(map(typed.__getitem__, values))
            typed = {memo: self._remembered(table, rules, *memo)
                     for memo in dict.fromkeys(zip(map(type, values), values, strict=True))}
            return [typed[type(v), v] for v in values]
        except TypeError:  # an unhashable value (a list or an object): judged one by one, unremembered
            return [self._remembered(table, rules, type(v), v) if _hashable(v) else self.judged(rules, v)
                    for v in values]

    def _remembered(self, table: str, rules: ColumnRules, sent_type: type, value: Any) -> Any:
        """:meth:`judged`, looked up first among the verdicts already reached (raises TypeError when unhashable)."""
        key = (table, rules.column.name, sent_type, value)
        verdict = self._memo.get(key, _UNSEEN)
        if verdict is _UNSEEN:
            try:
                verdict = self.judged(rules, value)
            except NotSure as exc:
                verdict = _Refused(str(exc))
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            if sent_type is not str or len(value) <= MAX_TEXT_CHARS:  # a long text is no memory's business
                self._memo[key] = verdict
        if type(verdict) is _Refused:
            raise NotSure(verdict.reason)
        return verdict

    def judged(self, rules: ColumnRules, value: Any) -> Any:
        """A value that cannot be of the column's type is ``bad_type``; the others are judged by the column's kind."""
        if json_fault(rules.column.kind, value) or value != value:  # (NaN only from Python callers: JSON has none)
            return _UNREADABLE
        if value is None:
            return _MISSING if rules.column.required else None
        kind = rules.column.kind
        if kind in ("text", "term"):
            return _text(rules, value)
        if kind == "date":
            return _date(rules, value)
        if kind in ("float", "int"):
            return _number(rules.column, value)
        if kind == "bool":
            return _flag(value)
        raise NotSure(f"a column of kind {kind}")


@dataclass(frozen=True)
class _Refused:
    """A remembered NotSure: the same value is refused again without being judged."""

    reason: str


def _hashable(value: Any) -> bool:
    return not isinstance(value, list | dict)


def _text(rules: ColumnRules, value: str) -> str | Bad:
    if value != value.strip():
        raise NotSure("padded text")
    failures = []
    if rules.term_format is not None and not rules.term_format.match(value):
        failures.append("bad_format")
    if rules.known_terms is not None and value not in rules.known_terms:
        failures.append("unknown_term")
    if rules.pattern is not None and not rules.pattern.match(value):
        failures.append("bad_format")
    if rules.allowed is not None and value not in rules.allowed:
        failures.append("not_allowed")
    if rules.known_schools is not None and value not in rules.known_schools:
        failures.append("unknown_school")
    if not failures:
        return value
    shown = excerpt(value)
    return Bad(tuple((rule, shown) for rule in dict.fromkeys(failures)), value)


def _date(rules: ColumnRules, value: str) -> dt.date | Bad:
    if value != value.strip():
        raise NotSure("padded text")
    if not _DATE.match(value):
        if _ASCII_DIGIT.search(value):
            raise NotSure("a date not written YYYY-MM-DD")
        return _UNREADABLE  # no digit: nothing reads it as a day
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise NotSure("YYYY-MM-DD that is no real day") from None
    if not rules.first_day <= day <= rules.last_day:
        return Bad((("bad_date", day.isoformat()),), day)
    return day


def _number(column: Column, value: Any) -> float | Bad:
    if isinstance(value, str):
        if _NUMBER.match(value):  # a CSV-born export sends numbers as text
            number = float(value)
        elif value != value.strip() or value.lower() in _INFINITE or any(c.isdigit() for c in value):
            raise NotSure("a number as text that is not a plain decimal")
        else:
            return _UNREADABLE
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
            raise NotSure("a number off its step by less than the checks' tolerance")
        failures.append("out_of_range")
    if not failures:
        return number
    return Bad(tuple((rule, excerpt(number)) for rule in dict.fromkeys(failures)), number)


def _flag(value: str | bool) -> float | Bad:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if value != value.strip():
        raise NotSure("padded text")
    word = value.lower()
    return 1.0 if word in TRUE_WORDS else 0.0 if word in FALSE_WORDS else _UNREADABLE
