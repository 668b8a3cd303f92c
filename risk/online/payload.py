"""Students' payloads → validated frames, with each bad record left out and named, as batch does.

A payload holds the contract's student tables for one student as JSON records
(raw ``student_id`` included). Every record goes through the rules the
validator applies to an export (:mod:`risk.data.validate`): the contract's
reader, the table's pandera schema (the same ``Check`` objects), the references
a validated folder knows (schools, calendar terms and days, the data window, the
student's own valid enrollments) and the duplicate rules. A record that breaks
one is left out and reported with its rule; the rest is scored.

:meth:`PayloadRules.check_many` checks a micro-batch of payloads in one pass per
table: each table's records of every payload are typed, checked and split
together, each row carrying its payload and record position, and each rejected
row is handed back to its payload. The checks are per record, so a record's
verdict is the one it gets alone (a test holds the two side by side); what a
pass costs is mostly fixed (~60 pandas calls), so eight students cost little
more than one.

The checks are evaluated by :func:`schema_failures`, which calls each check of
the schema directly instead of through pandera's engine: on a payload of a few
hundred records pandera's per-call machinery cost ~50 ms, the checks themselves
well under one. Its output goes through the same post-processing as the
validator's (:mod:`risk.data.quarantine`), so a rejected record carries the same
rule and detail it would in batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pandera.backends.pandas.builtin_checks  # noqa: F401  (pandas implementations of Check.isin, …)
import pandera.pandas as pdr

from risk.data.checks import check_passes
from risk.data.contract import TABLES, Table
from risk.data.duplicates import duplicate_rows
from risk.data.ids import masked_id, pseudonym
from risk.data.quarantine import ROW, failures_from_cases, split_chunk, unparsed_failures
from risk.data.schemas import (
    LOOKUP_COLUMNS,
    References,
    attach_lookups,
    build_schema,
    enrollment_key,
    term_codes,
)
from risk.errors import ContractError
from risk.features.sources import STUDENT_TABLES, empty_frame
from risk.online.payload_records import Records, excerpt, parse_many, the_students

__all__ = ["CheckedBatch", "CheckedPayload", "PayloadRules", "Rejected", "schema_failures"]

# The columns of a pandera failure-cases frame that the quarantine post-processing reads.
_CASES = ("index", "column", "check", "failure_case", "schema_context")
_NO_FAILURES = unparsed_failures(pd.DataFrame(), {})  # never modified: split_chunk only reads an empty one


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
class CheckedBatch:
    """The valid records of the students checked together (each once), one frame per table in the validated layout.

    Registered as they are, the frames are what the feature plan reads for all of these students at once.
    """

    frames: dict[str, pd.DataFrame]


@dataclass(frozen=True)
class CheckedPayload:
    """One payload's pseudonym, its rejected records, and the batch holding its valid records."""

    student_key: int
    rejected: tuple[Rejected, ...]
    batch: CheckedBatch

    @property
    def frames(self) -> dict[str, pd.DataFrame]:
        """This student's valid records alone, per table (the batch's rows of ``student_key``)."""
        return {name: frame[frame["student_key"] == self.student_key].reset_index(drop=True)
                for name, frame in self.batch.frames.items()}


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
            failed = ~check_passes(check, checked)
            if failed.any():  # the usual case is a clean column: no pandas indexing for it
                cases += [(int(i), name, _rule(check), v, "Column")
                          for i, v in zip(checked.index[failed], checked[failed], strict=True)]
    for check in schema.checks:
        failed = ~check_passes(check, frame)
        if check.ignore_na and failed.any():
            failed &= ~frame.isna().all(axis="columns").to_numpy()
        cases += [(int(i), ROW, _rule(check), "", "DataFrameSchema") for i in frame.index[failed]]
    parts = [unparsed_failures(frame, dict(bad_type))] if bad_type else []
    if cases:
        parts.append(failures_from_cases(pd.DataFrame(cases, columns=list(_CASES)).astype({"column": object}),
                                   dict(bad_type)))
    parts = [p for p in parts if len(p)]
    if not parts:
        return _NO_FAILURES
    return pd.concat(parts, ignore_index=True).drop_duplicates(["row", "column", "rule"])


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
        self._empty = {name: empty_frame(TABLES[name]) for name in STUDENT_TABLES}

    def check(self, tables: Mapping[str, list[dict[str, Any]]], key: bytes) -> CheckedPayload:
        """Check one student's payload; raise ContractError when nothing scorable is left."""
        (result,) = self.check_many([tables], key)
        if isinstance(result, ContractError):
            raise result
        return result

    def check_many(self, payloads: Sequence[Mapping[str, list[dict[str, Any]]]],
                   key: bytes) -> list[CheckedPayload | ContractError]:
        """Check many students' payloads in one pass per table; each comes back checked or with its ContractError.

        Each table's records of all payloads are parsed and checked together (the
        rules are per record, so a record's verdict does not depend on its
        neighbours), then split back by payload. Payloads of the same student go
        to separate passes, so the duplicate rules never compare two payloads.
        Every :class:`CheckedPayload` of one pass shares one :class:`CheckedBatch`.
        """
        out: list[CheckedPayload | ContractError | None] = [None] * len(payloads)
        for i, tables in enumerate(payloads):
            unknown = set(tables) - set(STUDENT_TABLES)
            if unknown:
                out[i] = ContractError(f"payload has tables that are not student tables: {', '.join(sorted(unknown))}")
        live = [i for i, item in enumerate(out) if item is None]
        parsed = {name: parse_many(name, [(i, payloads[i].get(name) or []) for i in live], out)
                  for name in STUDENT_TABLES}
        students = the_students(parsed, [i for i in live if out[i] is None], out)
        pending = {i: (sid, pseudonym(sid, key)) for i, sid in students.items()}
        while pending:  # one pass per round of distinct students (two payloads of one student: two rounds)
            round_, seen = {}, set()
            for i, (sid, skey) in pending.items():
                if skey not in seen:
                    round_[i] = (sid, skey)
                    seen.add(skey)
            self._check_round(parsed, round_, out)
            pending = {i: v for i, v in pending.items() if i not in round_}
        return out  # type: ignore[return-value]

    def _check_round(self, parsed: Mapping[str, Records | None], students: Mapping[int, tuple[str, int]],
                     out: list[CheckedPayload | ContractError | None]) -> None:
        """Check the payloads of ``students`` (payload → (student_id, pseudonym)), all of different students."""
        size = len(out)
        keys = np.zeros(size, dtype=np.int64)
        hints = np.full(size, "", dtype=object)
        alive = np.zeros(size, dtype=bool)
        for i, (sid, skey) in students.items():
            keys[i], hints[i], alive[i] = skey, masked_id(sid), True
        rejected: dict[int, list[Rejected]] = {i: [] for i in students}
        for name, p in parsed.items():  # records that are no JSON object: nothing else can be said of them
            for i, record, what in [] if p is None else p.dropped:
                if i in rejected:
                    rejected[i].append(Rejected(name, record, "bad_type", f"the record is not a JSON object ({what})"))
        rows = {name: None if p is None else p.take(alive[p.payload]) for name, p in parsed.items()}
        enrollments, enrolled = self._clean("enrollments", rows["enrollments"], keys, self.refs, rejected)
        for i in students:
            if not (enrolled == i).any():
                found = [r for r in rejected[i] if r.table == "enrollments"][:3]
                out[i] = ContractError("the payload has no valid enrollment: "
                                       + "; ".join(f"enrollments record {r.record}: {r.detail}" for r in found))
                alive[i] = False
        if not alive.any():
            return
        if not alive[enrolled].all():
            enrollments = enrollments[alive[enrolled]].reset_index(drop=True)
            enrolled = enrolled[alive[enrolled]]
        enrollments.insert(1, "id_hint", pd.array(hints[enrolled], dtype="str"))
        frames = {"enrollments": enrollments}
        refs = References(school_ids=self.refs.school_ids, terms=self.refs.terms, window=self.refs.window,
                          enrollment_keys=pd.Index(enrollment_key(enrollments["student_key"].to_numpy(),
                                                                  term_codes(enrollments["term"]))),
                          enrollment_school=enrollments["school_id"].astype("int64").to_numpy(),
                          school_days=pd.Index(self.school_days(sorted(set(enrollments["school_id"])))))
        for name in STUDENT_TABLES[1:]:
            part = rows[name]
            frames[name] = self._clean(name, None if part is None else part.take(alive[part.payload]), keys, refs,
                                       rejected)[0]
        batch = CheckedBatch(frames)
        for i in students:
            if alive[i]:
                found = sorted(rejected[i], key=lambda r: (STUDENT_TABLES.index(r.table), r.record))
                out[i] = CheckedPayload(int(keys[i]), tuple(found), batch)

    def _clean(self, name: str, rows: Records | None, keys: np.ndarray, refs: References,
               rejected: dict[int, list[Rejected]]) -> tuple[pd.DataFrame, np.ndarray]:
        """The table's valid records in the validated layout and the payload of each; the others go to ``rejected``."""
        table = TABLES[name]
        if rows is None or rows.frame.empty:
            return self._empty[name].copy(), np.empty(0, dtype=np.int64)
        # A shallow copy: the parsed rows are shared by every round of the call and keep their columns.
        frame, payload, record = rows.frame.copy(deep=False), rows.payload, rows.record
        frame.insert(0, "student_key", keys[payload])
        attach_lookups(frame, table, refs)
        failures = _echoed(schema_failures(self.schemas[name], frame, rows.bad))
        if not failures.empty:
            clean, reasons = split_chunk(frame, failures)
            for row, rule, detail in zip(reasons.index, reasons["rule"], reasons["detail"], strict=True):
                rejected[int(payload[row])].append(Rejected(name, int(record[row]), str(rule), str(detail)))
            frame, payload, record = frame[clean].reset_index(drop=True), payload[clean], record[clean]
        kept, duplicates = _without_duplicates(table, frame, payload, record)
        for p, row, rule, detail in zip(duplicates["_payload"], duplicates["_row"], duplicates["rule"],
                                        duplicates["detail"], strict=True):
            rejected[int(p)].append(Rejected(name, int(row), str(rule), str(detail)))
        if not kept.all():
            frame, payload = frame[kept], payload[kept]
        return _validated_layout(table, frame), payload


def _echoed(failures: pd.DataFrame) -> pd.DataFrame:
    """The failures with each value as it may be echoed back (a key outside the contract is none: it is not read)."""
    if failures.empty:
        return failures
    values = failures["value"].to_numpy(dtype=object)
    missing = (failures["rule"] == "missing_required").to_numpy()  # nothing to show (an ID column would mask "nan")
    return failures.assign(value=[None if m else excerpt(v) if isinstance(v, str) else v
                                  for v, m in zip(values, missing, strict=True)])


def _without_duplicates(table: Table, frame: pd.DataFrame, payload: np.ndarray,
                        record: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    """Batch's duplicate rules: of records sharing a key, the first is kept (exact copy or conflict).

    Returns which rows of ``frame`` are kept, and the others with ``_payload``, ``_row`` (record), ``rule``, ``detail``.
    """
    data_cols = ["student_key", *(c for c in table.column_names if c != "student_id")]
    key_cols = [("student_key" if c == "student_id" else c) for c in table.unique_key] or data_cols
    repeated = frame.duplicated(key_cols, keep=False).to_numpy()
    if not repeated.any():
        return np.ones(len(frame), dtype=bool), _NO_DUPLICATES
    # _row: the record's position in its payload, as a source row in batch; a pass holds each student once.
    groups = frame[repeated].assign(_file=f"payload:{table.name}", _row=record[repeated], _payload=payload[repeated],
                                    _at=np.flatnonzero(repeated))
    duplicates = duplicate_rows(groups, key_cols, data_cols)
    kept = np.ones(len(frame), dtype=bool)
    kept[duplicates["_at"].to_numpy(dtype=np.int64)] = False
    return kept, duplicates


_NO_DUPLICATES = pd.DataFrame({"_payload": [], "_row": [], "rule": [], "detail": []})


def _validated_layout(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Columns as ``risk validate`` writes them: no raw ID, attendance with the term and school of its date."""
    out = frame.drop(columns=["student_id", *LOOKUP_COLUMNS], errors="ignore")
    if table.name == "attendance_daily":
        codes = out.pop("term_code").to_numpy()
        schools = out.pop("school_code").to_numpy()
        out["term"] = _texts(codes, lambda c: f"{c // 10}-{c % 10}")
        out["school_id"] = _texts(schools, lambda s: f"{int(s):010d}")
    return out.reset_index(drop=True)


def _texts(values: np.ndarray, fmt: Callable[[Any], str]) -> pd.api.extensions.ExtensionArray:
    """``fmt`` of each value as a string array, formatting each distinct value once (a term has ~100 days)."""
    distinct, inverse = np.unique(values, return_inverse=True)
    return pd.array(np.array([fmt(v) for v in distinct], dtype=object)[inverse], dtype="str")
