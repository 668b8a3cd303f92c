"""Payload records → typed rows for the checks: many payloads' records of a table parsed in one pass.

Used by :mod:`risk.online.payload`. A payload arrives as JSON, so before any
contract rule a record is checked for shape and each value for its JSON type
(:func:`json_fault`): a record that is not an object is left out as ``bad_type``;
a key outside the contract is ignored (as batch ignores an extra column of an
export file: the record is judged on its contract columns); an absent column is
read as empty (``missing_required`` when it is required); a value of the wrong
JSON type (a number for a date, a flag for a number, a list, an object), or a
text longer than :data:`MAX_TEXT_CHARS`, is read as unparseable (``bad_type``).
What is left has one JSON type per column, so every payload's records of a table
go to one Arrow table and one :func:`risk.data.reading.typed_frame`, and a
record's verdict never depends on its neighbours.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, MutableSequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from risk.data.contract import TABLES, Table
from risk.data.ids import valid_student_id_mask
from risk.data.reading import typed_frame
from risk.errors import ContractError

__all__ = ["MAX_TEXT_CHARS", "Records", "excerpt", "json_fault", "parse_many", "the_students"]

# The longest text a record's value may hold. The contract's texts are codes and short labels (the
# longest, a classroom such as "ม.3/2 ห้องเรียนพิเศษ", is ~20 characters); a longer one is no contract
# value, and is left out before it is hashed, parsed or echoed.
MAX_TEXT_CHARS = 100
EXCERPT_CHARS = 40  # of a value, at most this much is echoed back in a detail
_ID_LIKE = re.compile(r"\d{11,}")
_INT64 = 2**63


_MIDNIGHT = re.compile(r"^(\d{4}-\d{2}-\d{2}) 00:00:00$")


def excerpt(value: object) -> str:
    """A client's value as it may be echoed: runs of 11+ digits masked to their last four, cut to 40 characters.

    A day read from a date is shown as ``YYYY-MM-DD``, whichever way the checks held it.
    """
    text = _MIDNIGHT.sub(r"\1", str(value))
    if len(text) > EXCERPT_CHARS:
        text = text[:EXCERPT_CHARS] + "…"
    return _ID_LIKE.sub(lambda m: "•" * (len(m.group()) - 4) + m.group()[-4:], text)


def json_fault(kind: str, value: Any) -> bool:
    """Whether a JSON value cannot be a value of a column of ``kind`` at all (then it is ``bad_type``).

    Text may stand for any kind (a CSV-born export sends numbers, dates and flags
    as text; the contract's reader parses it), up to :data:`MAX_TEXT_CHARS`.
    Numbers stand for numbers (finite, within int64 when whole), flags for flags;
    null is no fault here (the required rule decides). Lists and objects never fit.
    """
    if value is None:
        return False
    if isinstance(value, str):
        return len(value) > MAX_TEXT_CHARS
    if isinstance(value, bool):
        return kind != "bool"
    if isinstance(value, int):
        return kind not in ("float", "int") or not -_INT64 < value < _INT64
    if isinstance(value, float):
        return kind not in ("float", "int") or not math.isfinite(value)
    return True


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for a detail (``list``, ``object``, ``number``…)."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return f"text of {len(value):,} characters" if len(value) > MAX_TEXT_CHARS else "text"
    return type(value).__name__


@dataclass
class Records:
    """One table's records of many payloads, parsed once: ``payload`` and ``record`` say where each row came from.

    ``frame`` has one row per record that is a JSON object (RangeIndex); ``bad``
    maps a column to its mask of unparseable values (keys outside the contract are
    not read); ``payload`` and ``record`` are int64 arrays of shape (n_rows,): the
    payload's position in the call and the record's position in that payload's
    list. ``dropped`` lists the
    records that are no JSON object: (payload, record, what it is).
    """

    frame: pd.DataFrame
    bad: dict[str, np.ndarray]
    payload: np.ndarray
    record: np.ndarray
    dropped: list[tuple[int, int, str]] = field(default_factory=list)

    def take(self, keep: np.ndarray) -> Records:
        if keep.all():
            return self
        bad = {c: m[keep] for c, m in self.bad.items() if m[keep].any()}
        return Records(self.frame[keep].reset_index(drop=True), bad, self.payload[keep], self.record[keep],
                       self.dropped)


def parse_many(name: str, lists: list[tuple[int, Any]], out: MutableSequence[object | None]) -> Records | None:
    """Parse one table of many payloads at once (see the module docstring); None when no payload has a record of it.

    A table that is not a list gets its payload a ContractError in ``out``.
    """
    table = TABLES[name]
    rows: list[dict] = []
    payload: list[int] = []
    record: list[int] = []
    dropped: list[tuple[int, int, str]] = []
    for i, records in lists:
        if out[i] is not None or not records:
            continue
        if not isinstance(records, list):
            out[i] = ContractError(f"payload table {name} must be a list of records; got {json_type(records)}")
            continue
        for j, r in enumerate(records):
            if isinstance(r, dict):
                rows.append(r)
                payload.append(i)
                record.append(j)
            else:
                dropped.append((i, j, json_type(r)))
    if not rows and not dropped:
        return None
    arrow, bad = _arrow(table, rows)
    frame, unparsed = typed_frame(arrow, table)
    for column, mask in unparsed.items():
        bad[column] = bad[column] | mask if column in bad else mask
    return Records(frame, bad, np.array(payload, dtype=np.int64), np.array(record, dtype=np.int64), dropped)


def _arrow(table: Table, rows: list[dict]) -> tuple[pa.Table, dict[str, np.ndarray]]:
    """Every contract column of ``rows`` as Arrow (absent keys as null), and the mask of values of a wrong JSON type.

    A column holds one JSON type after this: values that cannot fit are null (and
    marked); numbers and flags mixed with text go as text, which the reader parses
    to the same value (``repr`` of a float reads back as that float).
    """
    arrays, bad = {}, {}
    for column in table.columns:
        values = [r.get(column.name) for r in rows]
        faults = [json_fault(column.kind, v) for v in values]
        if any(faults):
            bad[column.name] = np.array(faults, dtype=bool)
            values = [None if f else v for v, f in zip(values, faults, strict=True)]
        arrays[column.name] = _column(column.kind, values)
    return pa.table(arrays), bad


def _column(kind: str, values: list[Any]) -> pa.Array:
    if kind in ("float", "int", "bool"):
        if not any(isinstance(v, str) for v in values):
            if kind == "bool":
                return pa.array(values, pa.bool_())
            return pa.array([None if v is None else float(v) for v in values], pa.float64())
        texts = [v if v is None or isinstance(v, str) else ("true" if v else "false") if isinstance(v, bool) else repr(v)
                 for v in values]
        return pa.array(texts, pa.string())
    return pa.array(values, pa.string())


def the_students(parsed: Mapping[str, Records | None], live: list[int],
                 out: MutableSequence[object | None]) -> dict[int, str]:
    """The one valid student_id of each live payload's enrollments; every other valid ID must be the same."""
    ids: dict[int, dict[str, set[str]]] = {i: {} for i in live}
    present = [(name, rows) for name, rows in parsed.items() if rows is not None and len(rows.frame)]
    if present:
        # One validity check over every table's IDs: a payload repeats its student's ID in each record.
        values = np.concatenate([rows.frame["student_id"].to_numpy(dtype=object) for _, rows in present])
        tables = np.repeat(np.arange(len(present)), [len(rows.frame) for _, rows in present])
        payloads = np.concatenate([rows.payload for _, rows in present])
        codes, uniques = pd.factorize(values)
        known = valid_student_id_mask(np.asarray(uniques, dtype=object))
        valid = (codes >= 0) & known[np.maximum(codes, 0)] if len(known) else np.zeros(len(codes), dtype=bool)
        triples = np.unique(np.stack([payloads[valid], tables[valid], codes[valid]]), axis=1)
        for p, t, code in triples.T:
            if int(p) in ids:
                ids[int(p)].setdefault(present[t][0], set()).add(uniques[code])
    found: dict[int, str] = {}
    for i, by_table in ids.items():
        students = by_table.get("enrollments", set())
        if not students:
            out[i] = ContractError("the payload has no enrollment with a valid student_id: nothing can be scored")
        elif len(students) > 1 or any(not seen <= students for seen in by_table.values()):
            out[i] = ContractError("a payload holds one student: every record must carry the student_id of its "
                                   "enrollments")
        else:
            found[i] = next(iter(students))
    return found
