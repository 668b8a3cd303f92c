"""Payload records → typed rows for the checks: many payloads' records of a table parsed in one pass.

Used by :mod:`risk.features.payload`. Each payload's records go to Arrow as they
would alone (a table's columns are those of its first record, as
``pa.Table.from_pylist`` takes them); when every payload agrees on those columns
and on how each column's values are typed, one Arrow table and one
:func:`risk.data.reading.typed_frame` serve them all, else each payload is read
on its own. A payload that cannot be read gets its ContractError in ``out`` (the
call's list of results so far, None where fine) and its records are left behind.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableSequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from risk.data.contract import TABLES, Table
from risk.data.ids import valid_student_id_mask
from risk.data.reading import check_columns, typed_frame
from risk.errors import ContractError

__all__ = ["Records", "parse_many", "the_students"]


@dataclass
class Records:
    """One table's records of many payloads, parsed once: ``payload`` and ``record`` say where each row came from.

    ``frame`` has one row per record (RangeIndex); ``bad`` maps a column to its
    mask of unparseable values; ``payload`` and ``record`` are int64 arrays of
    shape (n_rows,): the payload's position in the call and the record's position
    in that payload's list.
    """

    frame: pd.DataFrame
    bad: dict[str, np.ndarray]
    payload: np.ndarray
    record: np.ndarray

    def take(self, keep: np.ndarray) -> Records:
        if keep.all():
            return self
        bad = {c: m[keep] for c, m in self.bad.items() if m[keep].any()}
        return Records(self.frame[keep].reset_index(drop=True), bad, self.payload[keep], self.record[keep])


# pyarrow types a column may have after JSON → Arrow and still parse as it would alone (see _combined).
_NEUTRAL = {"id": ("string", "null"), "text": ("string", "null"), "term": ("string", "null"),
            "date": ("string", "null"), "float": ("string", "int64", "double", "null"),
            "int": ("string", "int64", "double", "null"), "bool": ("string", "bool", "null")}  # fmt: skip


def parse_many(name: str, lists: list[tuple[int, list[dict[str, Any]]]],
               out: MutableSequence[object | None]) -> Records | None:
    """Parse one table of many payloads at once; a payload whose records cannot be read gets its ContractError.

    The payloads' records go to Arrow one payload at a time (as each would alone:
    the columns are those of its first record) and are typed in one pass. When a
    column's JSON types differ between payloads in a way that could change how a
    value parses (text sent as numbers, say), each payload is typed on its own.
    """
    table = TABLES[name]
    lists = [(i, records) for i, records in lists if records and out[i] is None]
    arrows, where = _as_one(table, lists), [i for i, _ in lists]
    if arrows is None:
        arrows, where = [], []
        for i, records in lists:
            try:
                arrow = pa.Table.from_pylist(records)
                check_columns(Path(f"payload:{name}"), table, arrow.column_names)
            except (pa.ArrowException, TypeError, AttributeError) as exc:
                out[i] = ContractError(f"payload table {name}: records are not uniform JSON objects ({exc})")
                continue
            except ContractError as exc:
                out[i] = exc
                continue
            found = set(arrow.column_names)
            arrows.append(arrow.select([c for c in table.column_names if c in found]))
            where.append(i)
    if not arrows:
        return None
    payload = np.repeat(np.array(where, dtype=np.int64), [a.num_rows for a in arrows])
    record = np.concatenate([np.arange(a.num_rows, dtype=np.int64) for a in arrows])
    combined = _combined(table, arrows)
    if combined is not None:
        frame, bad = typed_frame(combined, table)
        return Records(frame, bad, payload, record)
    typed = [typed_frame(a, table) for a in arrows]
    bad = {c: np.concatenate([b.get(c, np.zeros(a.num_rows, dtype=bool)) for a, (_, b) in zip(arrows, typed, strict=True)])
           for c in {c for _, b in typed for c in b}}
    frame = pd.concat([f for f, _ in typed], ignore_index=True)
    return Records(frame, bad, payload, record)


def _as_one(table: Table, lists: list[tuple[int, list[dict[str, Any]]]]) -> list[pa.Table] | None:
    """All payloads' records as one Arrow table when every payload's first record has the same keys (the usual case).

    Arrow takes a table's columns from its first record, so the payloads then get
    the columns they would get alone. None when they differ, or on any error (each
    payload is then read on its own and gets its own error).
    """
    if len(lists) < 2 or not all(isinstance(records[0], dict) for _, records in lists):
        return None
    keys = lists[0][1][0].keys()
    if any(records[0].keys() != keys for _, records in lists[1:]):
        return None
    try:
        arrow = pa.Table.from_pylist([record for _, records in lists for record in records])
        check_columns(Path(f"payload:{table.name}"), table, arrow.column_names)
    except (pa.ArrowException, TypeError, AttributeError, ContractError):
        return None
    found = set(arrow.column_names)
    arrow = arrow.select([c for c in table.column_names if c in found])
    if _combined(table, [arrow]) is None:
        return None
    offsets = np.cumsum([0, *(len(records) for _, records in lists)])
    return [arrow.slice(start, stop - start) for start, stop in zip(offsets[:-1], offsets[1:], strict=True)]


def _combined(table: Table, arrows: list[pa.Table]) -> pa.Table | None:
    """The payloads' tables as one, or None when a column's type is not one that parses the same in any company."""
    try:
        combined = arrows[0] if len(arrows) == 1 else pa.concat_tables(arrows, promote_options="permissive")
    except (pa.ArrowException, TypeError):
        return None
    kinds = {c.name: c.kind for c in table.columns}
    if any(str(field.type) not in _NEUTRAL[kinds[field.name]] for field in combined.schema):
        return None
    return combined


def the_students(parsed: Mapping[str, Records | None], live: list[int],
                 out: MutableSequence[object | None]) -> dict[int, str]:
    """The one valid student_id of each live payload's enrollments; every other valid ID must be the same."""
    ids: dict[int, dict[str, set[str]]] = {i: {} for i in live}
    present = [(name, rows) for name, rows in parsed.items() if rows is not None]
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
