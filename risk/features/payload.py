"""One student's payload → validated frames, with each bad record left out and named, as batch does.

A payload holds the contract's student tables for one student as JSON records
(raw ``student_id`` included). Every record goes through the rules the
validator applies to an export (:mod:`risk.data.validate`): the contract's
reader, the table's pandera schema (the same ``Check`` objects), the references
a validated folder knows (schools, calendar terms and days, the data window, the
student's own valid enrollments) and the duplicate rules. A record that breaks
one is left out and reported with its rule; the rest is scored.

The checks are evaluated by :func:`schema_failures`, which calls each check of
the schema directly instead of through pandera's engine: on a payload of a few
hundred records pandera's per-call machinery cost ~50 ms, the checks themselves
well under one. Its output goes through the same post-processing as the
validator's (:mod:`risk.data.quarantine`), so a rejected record carries the same
rule and detail it would in batch (a test holds the two side by side).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.backends.pandas.builtin_checks  # noqa: F401  (pandas implementations of Check.isin, …)
import pandera.pandas as pdr
import pyarrow as pa

from risk.data.contract import TABLES, Table
from risk.data.ids import masked_id, pseudonym, valid_student_id_mask
from risk.data.quarantine import ROW, _from_pandera, _unparsed, split_chunk
from risk.data.reading import check_columns, typed_frame
from risk.data.row_rules import _LOOKUP_COLUMNS
from risk.data.schemas import References, attach_lookups, build_schema, enrollment_key, term_codes
from risk.data.validate import _duplicate_rows
from risk.errors import ContractError
from risk.features.sources import STUDENT_TABLES, empty_frame

__all__ = ["CheckedPayload", "PayloadRules", "Rejected", "schema_failures"]

# The columns of a pandera failure-cases frame that the quarantine post-processing reads.
_CASES = ("index", "column", "check", "failure_case", "schema_context")
_NO_FAILURES = _unparsed(pd.DataFrame(), {})  # never modified: split_chunk only reads an empty one


@dataclass(frozen=True)
class Rejected:
    """A payload record left out: its table, its position in that table's list, the rule and the details.

    ``detail`` names the column, value and rule as the quarantine does (IDs masked).
    """

    table: str
    record: int
    rule: str
    detail: str


@dataclass(frozen=True)
class CheckedPayload:
    """The student's valid records in the validated layout (``frames``), the rejected ones, and the pseudonym."""

    student_key: int
    frames: dict[str, pd.DataFrame]
    rejected: tuple[Rejected, ...]


def schema_failures(schema: pdr.DataFrameSchema, frame: pd.DataFrame,
                    bad_type: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Every rule each row of ``frame`` breaks: :func:`risk.data.quarantine.row_failures` without pandera's engine.

    Nulls fail a non-nullable column (``missing_required``); each check sees the
    column without its nulls (pandera's ``ignore_na``) and a table check a row
    that is not wholly empty. Dtypes are not checked: the contract's reader made them.

    Returns
    -------
    failures : DataFrame with ``row``, ``column``, ``rule``, ``value`` (one line per row, column and rule).
    """
    cases: list[tuple[Any, ...]] = []
    for name, column in schema.columns.items():
        values = frame[name]
        missing = values.isna().to_numpy()
        if not column.nullable and missing.any():
            cases += [(i, name, "not_nullable", values.iat[i], "Column") for i in np.flatnonzero(missing)]
        present = values[~missing] if missing.any() else values
        for check in column.checks:
            checked = present if check.ignore_na else values
            if checked.empty:
                continue
            passed = _apply(check, checked)
            cases += [(int(i), name, _rule(check), v, "Column")
                      for i, v in zip(checked.index[~passed], checked[~passed], strict=True)]
    for check in schema.checks:
        passed = _apply(check, frame)
        if check.ignore_na:
            passed |= frame.isna().all(axis="columns").to_numpy()
        cases += [(int(i), ROW, _rule(check), "", "DataFrameSchema") for i in frame.index[~passed]]
    parts = [_unparsed(frame, dict(bad_type))] if bad_type else []
    if cases:
        parts.append(_from_pandera(pd.DataFrame(cases, columns=list(_CASES)).astype({"column": object}),
                                   dict(bad_type)))
    parts = [p for p in parts if len(p)]
    if not parts:
        return _NO_FAILURES
    return pd.concat(parts, ignore_index=True).drop_duplicates(["row", "column", "rule"])


def _apply(check: pdr.Check, data: pd.Series | pd.DataFrame) -> np.ndarray:
    """The check's verdict per element (True = passes), as pandera computes it."""
    fn = check._check_fn  # the function pandera itself calls: one implementation of each rule
    kwargs = check._check_kwargs
    if check.element_wise:
        out = data.map(lambda v: fn(v, **kwargs)) if isinstance(data, pd.Series) else data.apply(
            lambda r: fn(r, **kwargs), axis=1)
    else:
        out = fn(data, **kwargs)
    if np.ndim(out) == 0:
        return np.full(len(data), bool(out))
    return pd.Series(out).fillna(False).to_numpy(dtype=bool, copy=True)


def _rule(check: pdr.Check) -> str:
    return check.error if check.error is not None else check.name


class PayloadRules:
    """The row rules of every student table, with what a validated folder knows about schools and calendar.

    Built once (schemas are reused by every call); ``school_days(school_ids)``
    returns the open days of those schools as ``school_code * 100_000 + days since 1970``.
    The ``orphan_student`` rule is not needed: a payload with no valid enrollment is refused whole.
    """

    def __init__(self, refs: References, school_days: Callable[[list[str]], np.ndarray]) -> None:
        self.refs = refs
        self.school_days = school_days
        marker = References(school_ids=refs.school_ids, terms=refs.terms, window=refs.window,
                            enrollment_keys=pd.Index([], dtype="int64"))
        self.schemas = {name: build_schema(TABLES[name], refs if name == "enrollments" else marker)
                        for name in STUDENT_TABLES}

    def check(self, tables: Mapping[str, list[dict[str, Any]]], key: bytes) -> CheckedPayload:
        """Check one student's payload; raise ContractError when nothing scorable is left."""
        unknown = set(tables) - set(STUDENT_TABLES)
        if unknown:
            raise ContractError(f"payload has tables that are not student tables: {', '.join(sorted(unknown))}")
        parsed = {name: _parse(name, tables.get(name) or []) for name in STUDENT_TABLES}
        student_id = _the_student(parsed)
        student_key = pseudonym(student_id, key)
        rejected: list[Rejected] = []
        frames: dict[str, pd.DataFrame] = {}
        enrollments = self._clean("enrollments", parsed["enrollments"], student_key, self.refs, rejected)
        if enrollments.empty:
            raise ContractError("the payload has no valid enrollment: "
                                + "; ".join(f"enrollments record {r.record}: {r.detail}" for r in rejected[:3]))
        enrollments.insert(1, "id_hint", masked_id(student_id))
        frames["enrollments"] = enrollments
        schools = sorted(set(enrollments["school_id"]))
        refs = References(school_ids=self.refs.school_ids, terms=self.refs.terms, window=self.refs.window,
                          enrollment_keys=pd.Index(enrollment_key(enrollments["student_key"].to_numpy(),
                                                                  term_codes(enrollments["term"]))),
                          enrollment_school=enrollments["school_id"].astype("int64").to_numpy(),
                          school_days=pd.Index(self.school_days(schools)))
        for name in STUDENT_TABLES:
            if name != "enrollments":
                frames[name] = self._clean(name, parsed[name], student_key, refs, rejected)
        rejected.sort(key=lambda r: (STUDENT_TABLES.index(r.table), r.record))
        return CheckedPayload(student_key, frames, tuple(rejected))

    def _clean(self, name: str, parsed: tuple[pd.DataFrame, dict[str, np.ndarray]] | None, student_key: int,
               refs: References, rejected: list[Rejected]) -> pd.DataFrame:
        """The table's valid records in the validated layout; the others appended to ``rejected``."""
        table = TABLES[name]
        if parsed is None:
            return empty_frame(table)
        frame, bad = parsed
        frame.insert(0, "student_key", np.full(len(frame), student_key, dtype=np.int64))
        attach_lookups(frame, table, refs)
        failures = schema_failures(self.schemas[name], frame, bad)
        if not failures.empty:
            clean, reasons = split_chunk(frame, failures)
            rejected += [Rejected(name, int(row), str(rule), str(detail))
                         for row, rule, detail in zip(reasons.index, reasons["rule"], reasons["detail"], strict=True)]
            frame = frame[clean]
        frame, duplicates = _without_duplicates(table, frame)
        rejected += [Rejected(name, int(row), str(rule), str(detail))
                     for row, rule, detail in zip(duplicates["_row"], duplicates["rule"], duplicates["detail"],
                                                  strict=True)]
        return _validated_layout(table, frame)


def _parse(name: str, records: list[dict[str, Any]]) -> tuple[pd.DataFrame, dict[str, np.ndarray]] | None:
    if not records:
        return None
    table = TABLES[name]
    try:
        arrow = pa.Table.from_pylist(records)
    except (pa.ArrowException, TypeError) as exc:
        raise ContractError(f"payload table {name}: records are not uniform JSON objects ({exc})") from exc
    check_columns(Path(f"payload:{name}"), table, arrow.column_names)
    return typed_frame(arrow, table)


def _the_student(parsed: Mapping[str, tuple[pd.DataFrame, dict] | None]) -> str:
    """The one valid student_id of the payload's enrollments; every other valid ID must be the same."""
    ids: dict[str, set[str]] = {}
    for name, item in parsed.items():
        if item is not None:
            values = item[0]["student_id"]
            ids[name] = set(values[valid_student_id_mask(values)])
    students = ids.get("enrollments", set())
    if not students:
        raise ContractError("the payload has no enrollment with a valid student_id: nothing can be scored")
    if len(students) > 1 or any(not found <= students for found in ids.values()):
        raise ContractError("a payload holds one student: every record must carry the student_id of its enrollments")
    return next(iter(students))


def _without_duplicates(table: Table, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Batch's duplicate rules: of records sharing a key, the first is kept (exact copy or conflict)."""
    data_cols = ["student_key", *(c for c in table.column_names if c != "student_id")]
    key_cols = [("student_key" if c == "student_id" else c) for c in table.unique_key] or data_cols
    repeated = frame.duplicated(key_cols, keep=False).to_numpy()
    if not repeated.any():
        return frame, pd.DataFrame(columns=["_row", "rule", "detail"])
    # _row: the record's position in the payload (the frame's index), as a source row in batch.
    groups = frame[repeated].assign(_file=f"payload:{table.name}", _row=frame.index[repeated])
    duplicates = _duplicate_rows(groups, key_cols, data_cols)
    return frame[~frame.index.isin(duplicates["_row"])], duplicates


def _validated_layout(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Columns as ``risk validate`` writes them: no raw ID, attendance with the term and school of its date."""
    out = frame.drop(columns=["student_id", *_LOOKUP_COLUMNS], errors="ignore")
    if table.name == "attendance_daily":
        codes = out.pop("term_code").to_numpy()
        schools = out.pop("school_code").to_numpy()
        out["term"] = pd.array([f"{c // 10}-{c % 10}" for c in codes], dtype="str")
        out["school_id"] = pd.array([f"{int(s):010d}" for s in schools], dtype="str")
    return out.reset_index(drop=True)
