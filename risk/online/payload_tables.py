"""One table of a payload as the fast pass checks it: verdicts by column, failures by record, and what is kept.

Part of :mod:`risk.online.payload_fast`. A :class:`CheckedTable` holds the
verdict on every value of a table's records (the typed value, or a :class:`Bad`
naming the rules it breaks) and each record's failures; :func:`without_duplicates`
applies batch's duplicate rules to the records without failures,
:func:`rejected` words the left-out records as the full checks do, and
:func:`typed` makes the kept values the arrays :mod:`risk.online.rowwise` reads.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from risk.data.contract import Table
from risk.data.quarantine import ROW
from risk.data.rule_codes import RULES
from risk.online.payload import Rejected

__all__ = ["PRIORITY", "Bad", "CheckedTable", "NotSure", "plain", "rejected", "take", "typed",
           "without_duplicates"]

# A record breaking several rules is left out under the first of them in this order (as the quarantine does).
PRIORITY = {rule: i for i, rule in enumerate(RULES)}


class NotSure(Exception):
    """A verdict the fast pass cannot vouch for: the payload takes the full checks (the argument says why)."""


@dataclass(frozen=True)
class Bad:
    """A value that breaks rules: ``failures`` (rule, value as shown); ``parsed`` the value read, when there is one."""

    failures: tuple[tuple[str, str], ...]
    parsed: Any = None


@dataclass
class CheckedTable:
    """One table's records that are objects: ``at`` their positions, ``columns`` their verdicts, ``failures`` by row.

    ``columns`` maps a contract column to its verdicts, one per record: a list (typed
    values and :class:`Bad`) or, for a date column whose values are all valid days,
    a ``datetime64[D]`` array. ``dropped`` lists the (position, what) of records that
    are no JSON object.
    """

    at: list[int]
    columns: dict[str, Any]
    failures: dict[int, list[tuple[int, str, str, str]]]  # row → (priority, column, rule, shown)
    dropped: list[tuple[int, str]]

    def add(self, row: int, column: str, rule: str, shown: str) -> None:
        """Record that ``row`` breaks ``rule`` at ``column`` (:data:`ROW` for a table rule), its value shown so."""
        self.failures.setdefault(row, []).append((PRIORITY[rule], column, rule, shown))


def plain(values: Any) -> list[Any]:
    """A column's values as Python objects (days as ``datetime.date``, so all of a column compare alike)."""
    return values.tolist() if isinstance(values, np.ndarray) else values


def without_duplicates(table: Table, checked: CheckedTable) -> list[int]:
    """Batch's duplicate rules on the records without failures: of those sharing a key the first is kept.

    Returns the rows kept; the others get ``duplicate`` (an exact copy of an earlier
    one) or ``duplicate_key`` (another value under the same key).
    """
    rows = [row for row in range(len(checked.at)) if row not in checked.failures]
    data_cols = [c for c in table.column_names if c != "student_id"]
    key_cols = [c for c in table.unique_key if c != "student_id"] or data_cols
    # The usual case, no two records with one key, is told by one set in C.
    keys = [plain(checked.columns[c]) for c in key_cols]
    if len(rows) != len(checked.at):
        keys = [[column[r] for r in rows] for column in keys]
    row_keys = keys[0] if len(keys) == 1 else list(zip(*keys, strict=True))
    if len(set(row_keys)) == len(rows):
        return rows
    counts = Counter(row_keys)
    values = {c: plain(checked.columns[c]) for c in data_cols}
    first: dict[object, int] = {}
    seen: set[tuple] = set()
    kept = []
    for row, key in zip(rows, row_keys, strict=True):
        if counts[key] == 1:  # only records sharing a key are compared
            kept.append(row)
            continue
        data = tuple(values[c][row] for c in data_cols)
        if key not in first:
            first[key] = row
            seen.add(data)
            kept.append(row)
            continue
        source = f"row {checked.at[first[key]]} of payload:{table.name}"
        if data in seen:
            checked.failures[row] = [(PRIORITY["duplicate"], "", "duplicate", f"copy of {source}")]
        else:
            checked.failures[row] = [(PRIORITY["duplicate_key"], "", "duplicate_key", f"same key as {source}")]
            seen.add(data)
    return kept


def rejected(name: str, checked: CheckedTable) -> list[Rejected]:
    """The table's left-out records in their order: the first rule by priority, all of them in the detail."""
    out = [(position, Rejected(name, position, "bad_type", f"the record is not a JSON object ({what})"))
           for position, what in checked.dropped]
    for row, failures in checked.failures.items():
        failures = sorted(set(failures))
        rule = failures[0][2]
        if rule in ("duplicate", "duplicate_key"):
            detail = failures[0][3]
        else:
            detail = "; ".join(f"{rule}: {RULES[rule]}" if column == ROW else f"{column} = {shown}: {rule}"
                               for _, column, rule, shown in failures)
        out.append((checked.at[row], Rejected(name, checked.at[row], rule, detail)))
    return [r for _, r in sorted(out, key=lambda item: item[0])]


def take(values: Any, kept: list[int]) -> Any:
    """The verdicts of the ``kept`` rows (the same object when every row is kept)."""
    if isinstance(values, np.ndarray):
        return values[kept] if len(kept) != len(values) else values
    return values if len(kept) == len(values) else [values[i] for i in kept]


def typed(table: Table, columns: dict[str, Any]) -> dict[str, np.ndarray]:
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
