"""Test support: the feature vector of one student from a payload, by the batch path's own code (the reference the service's builder is held to).

A payload holds the contract's student tables for one student, as JSON records
(the same columns an export has, raw ``student_id`` included). It is parsed and
checked with the contract's own reader and pandera schemas, pseudonymised, laid
out like validated data, and handed to :func:`risk.features.build.build_features`
beside the reference tables (schools, calendar, past dropout rates) of a
validated folder.

:func:`online_features_many` does the same for many students' payloads in one call:
each table's records of every payload are checked together (the checks are per
record) and the features built in one statement, as batch builds a whole cohort's.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from risk.config import Settings
from risk.data.contract import TABLES
from risk.data.ids import masked_id, pseudonyms
from risk.data.quarantine import row_failures, split_chunk
from risk.data.reading import check_columns, typed_frame
from risk.data.schemas import References, build_schema, term_code_of_dates
from risk.errors import ContractError
from risk.features.base import AsOf
from risk.features.build import build_features
from risk.features.catalog import Catalog
from risk.features.context_rates import open_validated
from risk.features.sources import STUDENT_TABLES, connect, empty_frame, register_frames

__all__ = ["features_from_frames", "online_features", "online_features_many", "payload_frames"]


def payload_frames(tables: dict[str, list[dict[str, Any]]], key: bytes) -> dict[str, pd.DataFrame]:
    """One student's contract records → frames in the validated layout.

    Raises ContractError naming the table, row and rule of the first bad record.
    """
    frames = _checked_frames(tables, key)
    if frames["enrollments"]["student_key"].nunique() > 1 or any(
        not set(f["student_key"]) <= set(frames["enrollments"]["student_key"]) for f in frames.values()
    ):
        raise ContractError("a payload holds one student: every record must carry the student_id of its enrollments")
    frames["attendance_daily"] = _with_term_and_school(frames["attendance_daily"], frames["enrollments"])
    return frames


def _checked_frames(tables: dict[str, list[dict[str, Any]]], key: bytes) -> dict[str, pd.DataFrame]:
    """Each student table's records parsed, checked and pseudonymised (whatever students they hold)."""
    unknown = set(tables) - set(STUDENT_TABLES)
    if unknown:
        raise ContractError(f"payload has tables that are not student tables: {', '.join(sorted(unknown))}")
    frames: dict[str, pd.DataFrame] = {}
    for name in STUDENT_TABLES:
        table = TABLES[name]
        records = tables.get(name) or []
        if not records:
            frames[name] = empty_frame(table)
            continue
        try:
            arrow = pa.Table.from_pylist(records)
        except (pa.ArrowException, TypeError) as exc:
            raise ContractError(f"payload table {name}: records are not uniform JSON objects ({exc})") from exc
        check_columns(Path(f"payload:{name}"), table, arrow.column_names)
        frame, bad = typed_frame(arrow, table)
        frame.insert(0, "student_key", pseudonyms(frame["student_id"].fillna("").to_numpy(), key))
        clean, reasons = split_chunk(frame, row_failures(build_schema(table, References()), frame, bad))
        if not clean.all():
            row = int(reasons.index[0])
            raise ContractError(f"payload table {name}, record {row}: {reasons.iloc[0]['detail']}")
        if name == "enrollments":
            frame.insert(1, "id_hint", [masked_id(v) for v in frame["student_id"]])
        frames[name] = frame.drop(columns=["student_id"])
    return frames


def _with_term_and_school(attendance: pd.DataFrame, enrollments: pd.DataFrame) -> pd.DataFrame:
    """Attendance in the validated layout carries the term of its date and the student's school that term."""
    if attendance.empty:
        return attendance
    codes = term_code_of_dates(attendance["date"])
    terms = pd.Series([f"{c // 10}-{c % 10}" for c in codes], index=attendance.index)
    school_of_term = dict(zip(zip(enrollments["student_key"], enrollments["term"], strict=True),
                              enrollments["school_id"], strict=True))
    student_terms = pd.Series(list(zip(attendance["student_key"], terms, strict=True)), index=attendance.index)
    return attendance.assign(term=terms, school_id=student_terms.map(school_of_term))


def features_from_frames(frames: dict[str, pd.DataFrame], as_of: dt.date, catalog: Catalog,
                         threads: int = 1) -> pd.DataFrame:
    """Feature rows from in-memory frames of every table (validated layout) plus ``context_rates``."""
    con = connect(threads=threads, memory_limit="1GB")
    register_frames(con, frames)
    return build_features(con, AsOf(as_of), catalog)


def online_features(tables: dict[str, list[dict[str, Any]]], as_of: dt.date, *, validated: Path, key: bytes,
                    catalog: Catalog, settings: Settings) -> pd.DataFrame:
    """The feature row of the student in ``tables`` at ``as_of`` (empty when not enrolled then)."""
    con = open_validated(validated, AsOf(as_of), settings, threads=1)
    register_frames(con, payload_frames(tables, key))
    return build_features(con, AsOf(as_of), catalog)


def online_features_many(payloads: list[dict[str, list[dict[str, Any]]]], as_of: dt.date, *, validated: Path,
                         key: bytes, catalog: Catalog, settings: Settings) -> pd.DataFrame:
    """The feature rows of the students of ``payloads`` at ``as_of`` (those enrolled then), one statement for all.

    Each payload must hold one student, as :func:`payload_frames` requires, and no two the same student.
    """
    students = []
    for i, tables in enumerate(payloads):
        ids = {record.get("student_id") for records in tables.values() for record in records}
        if len(ids) != 1:
            raise ContractError(f"payload {i}: a payload holds one student, and every record names them")
        students += ids
    if len(set(students)) < len(students):
        raise ContractError("two payloads hold the same student")
    together = {name: [record for tables in payloads for record in tables.get(name) or []]
                for name in {name for tables in payloads for name in tables}}
    frames = _checked_frames(together, key)
    frames["attendance_daily"] = _with_term_and_school(frames["attendance_daily"], frames["enrollments"])
    con = open_validated(validated, AsOf(as_of), settings, threads=1)
    register_frames(con, frames)
    return build_features(con, AsOf(as_of), catalog)
