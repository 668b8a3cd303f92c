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

The work is split by what it checks: :mod:`risk.online.payload_values` (each
value against its column's rules, read from the contract once),
:mod:`risk.online.payload_dates` (date columns at once, school days, ages) and
:mod:`risk.online.payload_tables` (a table's verdicts, duplicates, the records
left out, the typed arrays); this module walks a payload through them.

``tests/test_online_rowwise.py`` holds the two side by side on clean payloads and
on every kind of broken one: the same records left out with the same rules, and
the same vector.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from risk.data.contract import TABLES, Column, Table
from risk.data.ids import is_valid_student_id, masked_id, pseudonym
from risk.data.schemas import References
from risk.features.sources import STUDENT_TABLES
from risk.online.payload import Rejected
from risk.online.payload_dates import mark_ages, mark_school_days, valid_days, with_term_and_school
from risk.online.payload_records import json_fault, json_type
from risk.online.payload_tables import (
    Bad,
    CheckedTable,
    NotSure,
    rejected,
    take,
    typed,
    without_duplicates,
)
from risk.online.payload_values import ValueRules
from risk.online.rowwise import StudentRecords

__all__ = ["CleanPayload", "CleanPayloads", "Deferred"]


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


class CleanPayloads:
    """Checks payloads against one validated folder's references (see the module docstring).

    ``calendar(school_id, term)`` returns the school's open days of that term, sorted
    (``datetime64[D]``; empty when the school has none that term). Every column's
    rules are read from the contract and ``refs`` here, once (:class:`ValueRules`).
    """

    def __init__(self, refs: References, calendar: Callable[[str, str], np.ndarray]) -> None:
        self.refs = refs
        self.calendar = calendar
        self.values = ValueRules(refs)
        self._columns = {name: {c.name: c for c in TABLES[name].columns} for name in STUDENT_TABLES}

    def check(self, payload: Mapping[str, Any], key: bytes) -> CleanPayload | Deferred:
        """The payload's student, valid records and left-out records; or why the full checks must decide."""
        try:
            return self._check(payload, key)
        except NotSure as exc:
            return Deferred(str(exc))

    def _check(self, payload: Mapping[str, Any], key: bytes) -> CleanPayload:
        if not isinstance(payload, Mapping) or set(payload) - set(STUDENT_TABLES):
            raise NotSure("tables outside the contract")
        student_id = _student(payload.get("enrollments"))
        tables: dict[str, dict[str, np.ndarray]] = {}
        left_out: list[Rejected] = []
        enrolled: dict[str, str] = {}  # term → school of the student's valid enrollment
        for name in STUDENT_TABLES:
            rows = payload.get(name) or []
            if not isinstance(rows, list):
                raise NotSure("a table that is not a list")
            table = TABLES[name]
            checked = self._table(table, rows, student_id)
            if name == "enrollments":
                mark_ages(checked)
            elif name == "attendance_daily":
                mark_school_days(checked, enrolled, self.calendar)
            kept = without_duplicates(table, checked)
            left_out += rejected(name, checked)
            columns = {c: take(v, kept) for c, v in checked.columns.items()}
            if name == "enrollments":
                if not kept:
                    raise NotSure("no valid enrollment")
                enrolled = dict(zip(columns["term"], columns["school_id"], strict=True))
            elif name == "attendance_daily":
                columns = with_term_and_school(columns, enrolled)
            tables[name] = typed(table, columns)
        return CleanPayload(pseudonym(student_id, key), masked_id(student_id), StudentRecords(tables),
                            tuple(left_out))

    def _table(self, table: Table, rows: list[Any], student_id: str) -> CheckedTable:
        """Every value of every record checked: the verdicts by column, and each record's failures."""
        if set(map(type, rows)) - {dict}:
            dropped = [(i, json_type(r)) for i, r in enumerate(rows) if type(r) is not dict]
            at = [i for i, r in enumerate(rows) if type(r) is dict]
            rows = [rows[i] for i in at]
        else:
            dropped, at = [], list(range(len(rows)))
        out = CheckedTable(at, {}, {}, dropped)
        given = self._given(table, rows)
        n = len(rows)
        for column in table.columns:
            values = given.get(column.name) or [None] * n
            if column.kind == "id":  # one student's payload: every record names the student (a valid ID)
                out.columns[column.name] = values
                if values.count(student_id) != n:
                    for row, value in enumerate(values):
                        if value != student_id:
                            _foreign_id(out, row, column.name, value)
                continue
            if column.kind == "date" and column.required and n:
                split = valid_days(self.values.rules[table.name, column.name], values)
                if split is not None:
                    out.columns[column.name] = self._odd_days(table, column, values, *split, out)
                    continue
            verdicts = self.values.verdicts(table.name, column, values)
            out.columns[column.name] = verdicts
            if Bad in set(map(type, verdicts)):
                for row, verdict in enumerate(verdicts):
                    if type(verdict) is Bad:
                        for rule, shown in verdict.failures:
                            out.add(row, column.name, rule, shown)
        return out

    def _odd_days(self, table: Table, column: Column, values: list[Any], days: np.ndarray, odd: list[int],
                  out: CheckedTable) -> np.ndarray:
        """``days`` with the ``odd`` rows judged one by one: a bad value's failures noted, the day it reads as kept
        (NaT when none), as the value-by-value verdicts give them."""
        if not odd:
            return days
        for row, verdict in zip(odd, self.values.verdicts(table.name, column, [values[i] for i in odd]), strict=True):
            if type(verdict) is Bad:
                for rule, shown in verdict.failures:
                    out.add(row, column.name, rule, shown)
                verdict = verdict.parsed
            days[row] = np.datetime64("NaT") if verdict is None else np.datetime64(verdict, "D")
        return days

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


def _foreign_id(out: CheckedTable, row: int, column: str, value: Any) -> None:
    """A record's student_id that is not the payload's student: its rule, or not sure."""
    if value is None:
        out.add(row, column, "missing_required", "")
    elif json_fault("id", value):
        out.add(row, column, "bad_type", "unreadable")
    elif value != value.strip():
        raise NotSure("padded text")
    elif is_valid_student_id(value):
        raise NotSure("records of another student")
    else:
        out.add(row, column, "invalid_id", masked_id(value))


def _student(enrollments: Any) -> str:
    """The student of the payload: the first valid ID among its enrollments (the full checks word every other case)."""
    for record in enrollments if isinstance(enrollments, list) else []:
        value = record.get("student_id") if isinstance(record, dict) else None
        if is_valid_student_id(value):  # the contract's ID rule (13 characters, check digit or G-code)
            return value
    raise NotSure("no enrollment with a valid student_id")
