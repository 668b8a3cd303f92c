"""Reading an action file: actions recorded outside the engine (CSV or Excel), pseudonymised on arrival.

A school or an area office that keeps its own record of home visits, referrals and
scholarship checks exports it as CSV (UTF-8 or cp874) or ``.xlsx``, one action a row:

============  =========================================================================
column        meaning
============  =========================================================================
student_id    the 13-digit Thai national ID or DMC G-code (or give ``student_key``)
student_key   the student's pseudonym, a signed 64-bit integer (instead of the ID)
date          the day the action was taken: ISO or Thai day-first, either era
code          one configured action code (``home_visit``; configs/scoring.yaml ``action_codes``)
note          optional free text
school_id     optional 10-digit school code (default: the student's alert's, else where scored)
============  =========================================================================

The file is read by the export readers (:mod:`risk.data.reading`), so it may be written
as any export is (Thai digits, ``16/06/2569``). IDs become pseudonyms here, as in
validation (:func:`risk.data.ids.pseudonyms`), and go no further: what comes out holds
the pseudonym and the masked hint only. A bad row is quarantined once, under its first
rule in :data:`RULES`' order, with the value as written (an ID masked); every row read
comes out either clean or quarantined, so ``rows = len(clean) + len(quarantined)``.

A pseudonym in an Excel *number* cell is not exact past 15 digits (Excel keeps no more):
it reads as another number, which matches no stored student and is quarantined later
(``unknown_student``). Write pseudonyms as text, or give IDs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from risk.data.contract import Column, Table
from risk.data.ids import masked_id, pseudonyms, valid_student_id_mask
from risk.data.reading import iter_chunks
from risk.errors import ContractError

__all__ = ["ACTION_FILE", "RULES", "ActionFile", "read_action_file"]

ACTION_FILE = Table("actions", "student × action × day", (
    Column("student_id", "id", "13-digit Thai national ID or DMC G-code; or give student_key", required=False),
    Column("student_key", "text", "the student's pseudonym (signed 64-bit integer), instead of the ID",
           required=False),
    Column("date", "date", "the day the action was taken"),
    Column("code", "text", "a configured action code (configs/scoring.yaml action_codes)"),
    Column("note", "text", "free text", required=False),
    Column("school_id", "text", "10-digit OBEC school code", required=False, pattern=r"^\d{10}$"),
))
# code -> what it means; a row breaking several rules is quarantined under the first.
RULES: dict[str, str] = {
    "missing_required": "no student_id nor student_key, or no date or code",
    "invalid_id": "student_id is not a 13-digit Thai ID with a valid check digit, nor a G-code",
    "bad_format": "student_key is not a whole number of 64 bits, or school_id not 10 digits",
    "key_mismatch": "student_id and student_key are both given and are not the same student",
    "bad_type": "the date could not be read as a date",
    "bad_date": "the date is after today, or before the earliest day (a two-digit year read as 19xx?)",
    "not_allowed": "the code is not a configured action code",
}
EARLIEST = dt.date(2000, 1, 1)
CHUNK_ROWS = 100_000
INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class ActionFile:
    """An action file read: ``rows`` read, the clean rows and the quarantined ones.

    ``clean`` has columns ``row`` (1-based data row of the file), ``student_key`` (int64),
    ``id_hint``, ``school_id`` (None when not given), ``code``, ``acted_on`` (date) and
    ``note`` (None when empty); ``quarantined`` has ``row``, ``rule``, ``column``, ``value``
    (as written; an ID masked) and ``detail``. No raw ID is in either.
    """

    rows: int
    clean: pd.DataFrame
    quarantined: pd.DataFrame


def read_action_file(path: Path, key: bytes, codes: Collection[str], *, today: dt.date | None = None) -> ActionFile:
    """Read, check and pseudonymise the action file ``path`` (CSV or ``.xlsx``) against the configured ``codes``.

    Raises
    ------
    ContractError
        When the file cannot be read, is neither CSV nor Excel, or lacks the ``date`` or ``code`` column.
    """
    if path.suffix.lower() not in (".csv", ".xlsx"):
        raise ContractError(f"{path}: an action file is CSV or Excel .xlsx, not {path.suffix or 'a file without a suffix'}")
    if not path.is_file():
        raise ContractError(f"{path}: no such file")
    if not codes:
        raise ContractError("no action codes are configured (action_codes in configs/scoring.yaml): nothing to import")
    today = today or dt.date.today()
    clean, quarantined, rows = [], [], 0
    for chunk in iter_chunks(path, ACTION_FILE, CHUNK_ROWS, path.parent):
        frame = chunk.frame.assign(row=chunk.row + 1)
        if "date" in chunk.text:  # a date that could not be read is reported as written
            frame["date_text"] = chunk.text["date"].to_pandas().to_numpy()
        rule, column, detail = _first_rules(frame, chunk.bad_type, set(codes), today, key)
        bad = rule.notna().to_numpy()
        quarantined.append(_quarantined(frame[bad], rule[bad], column[bad], detail[bad]))
        clean.append(_clean(frame[~bad], key))
        rows += len(frame)
    return ActionFile(rows, _concat(clean, _clean(_empty_frame(), key)),
                      _concat(quarantined, _quarantined(_empty_frame(), *[pd.Series(dtype=object)] * 3)))


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in (*ACTION_FILE.column_names, "row")})


def _concat(parts: list[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else empty


def _text(values: pd.Series) -> pd.Series:
    """Text values with missing and blank ones as ''."""
    return values.astype(object).where(values.notna(), "").map(lambda v: str(v).strip())


def _keys(values: pd.Series) -> pd.Series:
    """Each pseudonym written as text as an int (None when empty or not a 64-bit whole number)."""
    def one(text: str) -> int | None:
        try:
            number = int(text)
        except ValueError:
            return None
        return number if INT64[0] <= number <= INT64[1] else None

    # Python ints in an object column: pandas would make ints and None a float column, rounding them.
    return pd.Series([one(t) if t else None for t in _text(values)], index=values.index, dtype=object)


def _first_rules(frame: pd.DataFrame, bad_type: dict[str, np.ndarray], codes: set[str], today: dt.date,
                 key: bytes) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Per row: the first rule it breaks (None: clean), the column, and what was expected."""
    ids, key_text, code, school = (_text(frame[c]) for c in ("student_id", "student_key", "code", "school_id"))
    given_key = _keys(frame["student_key"])
    valid_id = pd.Series(valid_student_id_mask(ids.where(ids != "", None)), index=frame.index)
    # Compared as Python ints: a float on the way would round a 64-bit pseudonym.
    mismatch = pd.Series([bool(v) and g is not None and int(h) != g for h, v, g in
                          zip(pseudonyms(ids, key), valid_id, given_key, strict=True)], index=frame.index, dtype=bool)
    date = pd.to_datetime(frame["date"]).dt.date
    unreadable_date = pd.Series(bad_type.get("date", np.zeros(len(frame), bool)), index=frame.index)
    checks = [  # (rule, column, broken, detail), in RULES' order
        ("missing_required", "student_id", (ids == "") & (key_text == ""), "give student_id or student_key"),
        ("missing_required", "date", frame["date"].isna() & ~unreadable_date, "the day the action was taken"),
        ("missing_required", "code", code == "", "an action code"),
        ("invalid_id", "student_id", (ids != "") & ~valid_id, "a 13-digit Thai ID with its check digit, or a G-code"),
        ("bad_format", "student_key", (key_text != "") & given_key.isna(), "a whole number of 64 bits"),
        ("bad_format", "school_id", (school != "") & ~school.str.fullmatch(r"\d{10}"), "10 digits"),
        ("key_mismatch", "student_key", mismatch, "the pseudonym of the student_id given beside it"),
        ("bad_type", "date", unreadable_date, "a date: YYYY-MM-DD or day/month/year (either era)"),
        ("bad_date", "date", date.notna() & ((date > today) | (date < EARLIEST)),
         f"a day from {EARLIEST.isoformat()} to today ({today.isoformat()})"),
        ("not_allowed", "code", (code != "") & ~code.isin(codes), "one of " + ", ".join(sorted(codes))),
    ]
    rule = pd.Series(None, index=frame.index, dtype=object)
    column, detail = rule.copy(), rule.copy()
    for name, where, broken, expected in checks:
        first = broken.fillna(False).astype(bool) & rule.isna()
        rule[first], column[first], detail[first] = name, where, expected
    return rule, column, detail


def _quarantined(frame: pd.DataFrame, rule: pd.Series, column: pd.Series, detail: pd.Series) -> pd.DataFrame:
    """One line per bad row; the value as written, a student ID masked."""
    values = [_shown(frame.at[i, "date_text" if c == "date" and "date_text" in frame else c], c)
              for i, c in zip(frame.index, column, strict=True)]
    return pd.DataFrame({"row": frame["row"].astype("int64"), "rule": rule.astype(object),
                         "column": column.astype(object), "value": values, "detail": detail.astype(object)})


def _shown(value: object, column: str) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    text = value.isoformat() if isinstance(value, dt.date | pd.Timestamp) else str(value)
    return masked_id(text) if column == "student_id" else text


def _clean(frame: pd.DataFrame, key: bytes) -> pd.DataFrame:
    """The clean rows as stored: the pseudonym (hashed from the ID, else as given) and the hint, no raw ID."""
    ids = _text(frame["student_id"])
    hashed = pseudonyms(ids, key)
    given = _keys(frame["student_key"])
    # Python ints throughout: a float on the way would round a 64-bit pseudonym.
    student_key = np.array([int(h) if i else g for h, i, g in zip(hashed, ids, given, strict=True)], dtype=np.int64)
    school, note = _text(frame["school_id"]), _text(frame["note"])
    return pd.DataFrame({
        "row": frame["row"].astype("int64"),
        "student_key": pd.Series(student_key, index=frame.index, dtype="int64"),
        "id_hint": [masked_id(i) if i else "" for i in ids],
        "school_id": pd.Series([v or None for v in school], index=frame.index, dtype=object),
        "code": _text(frame["code"]),
        "acted_on": pd.to_datetime(frame["date"]).dt.date,
        "note": pd.Series([v or None for v in note], index=frame.index, dtype=object),
    })
