"""Turning pandera failure cases into per-row quarantine reasons.

A rejected value is reported as it was written when its text is known (``screened_on =
16/06/25x7: bad_type``), so nothing a school sent is lost to ``NaT``; a student ID only ever masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as arrow

from risk.data.checks import schema_cases
from risk.data.ids import masked_id
from risk.data.rule_codes import RULES

_PRIORITY = {code: i for i, code in enumerate(RULES)}

__all__ = ["ROW", "failures_from_cases", "row_failures", "split_chunk", "unparsed_failures"]

_NOT_NULLABLE = "not_nullable"
# The column a table-wide rule's failure names: the row failed, not one of its values.
ROW = "(row)"


def row_failures(schema: pa.DataFrameSchema, frame: pd.DataFrame, bad_type: dict[str, np.ndarray],
                 text: Mapping[str, arrow.Array] | None = None, *,
                 engine: Literal["direct", "pandera"] = "direct") -> pd.DataFrame:
    """Every rule each row of ``frame`` breaks.

    ``text`` maps a column to the text its values were parsed from (one entry per row
    of ``frame``); a failing value of such a column is reported as that text.
    ``engine`` says who runs the schema's checks: ``"direct"`` calls each check itself
    (:mod:`risk.data.checks`, several times faster), ``"pandera"`` is ``schema.validate``;
    both give the same failures (``tests/test_validate_speed_rules.py``).

    Returns
    -------
    failures : DataFrame with columns ``row`` (position in ``frame``), ``column``, ``rule``, ``value``;
        one line per (row, column, rule), empty when every row is clean.
    """
    parts = [unparsed_failures(frame, bad_type)]
    if engine == "direct":
        cases = schema_cases(schema, frame)
        if len(cases):
            parts.append(failures_from_cases(cases, bad_type))
    else:
        try:
            schema.validate(frame, lazy=True)
        except pa.errors.SchemaErrors as errors:
            parts.append(failures_from_cases(errors.failure_cases, bad_type))
    failures = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else parts[0]
    return _as_written(failures.drop_duplicates(["row", "column", "rule"]), text or {})


def _as_written(failures: pd.DataFrame, text: Mapping[str, arrow.Array]) -> pd.DataFrame:
    """Failing values of the columns in ``text`` replaced by their text, taken for the failing rows only."""
    for column, written in text.items():
        at = (failures["column"] == column).to_numpy()
        if column == "student_id" or not at.any():  # raw IDs never leave validation, not even as written
            continue
        rows = failures.loc[at, "row"].to_numpy()
        original = pd.Series(written.take(rows).to_pandas(), index=failures.index[at], dtype=object)
        failures.loc[at, "value"] = original.where(original.notna(), failures.loc[at, "value"])
    return failures


def unparsed_failures(frame: pd.DataFrame, bad_type: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """The values the reader could not parse, as failures: one ``bad_type`` line per (row, column).

    ``bad_type`` maps a column to its mask of unparseable values, shape (n_rows,) of
    ``frame``. Returns the :func:`row_failures` layout (``row``, ``column``, ``rule``,
    ``value`` = ``"unreadable"``), with its dtypes even when empty.
    """
    rows = [
        pd.DataFrame({"row": np.flatnonzero(mask), "column": column, "rule": "bad_type", "value": "unreadable"})
        for column, mask in bad_type.items()
    ]
    if not rows:
        return pd.DataFrame({"row": pd.Series(dtype="int64"), "column": pd.Series(dtype="str"),
                             "rule": pd.Series(dtype="str"), "value": pd.Series(dtype="str")})
    return pd.concat(rows, ignore_index=True)


def failures_from_cases(cases: pd.DataFrame, bad_type: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """pandera's failure cases as failures in the :func:`row_failures` layout (``row``, ``column``, ``rule``, ``value``).

    ``cases`` has pandera's columns ``index`` (row position), ``column``, ``check`` (the
    check's name: a code of :data:`risk.data.rule_codes.RULES`, or ``not_nullable``, read
    as ``missing_required``), ``failure_case`` and ``schema_context`` (``DataFrameSchema``
    for a table-wide check: its failure names the row, :data:`ROW`, with no value).
    Student IDs are masked. A value in ``bad_type`` (unparseable, hence empty) is not
    reported missing: :func:`unparsed_failures` reports it as ``bad_type``.

    Raises
    ------
    RuntimeError
        When a case has no row (the reader and the schema disagree on a dtype) or a
        check names no quarantine rule: both are bugs in risk, not faults of the data.
    """
    if cases["index"].isna().any():
        # A column-level failure (wrong dtype) means the reader produced a frame the
        # schema did not expect: a bug in risk, not a fault of the data.
        broken = cases.loc[cases["index"].isna(), ["column", "check"]].drop_duplicates()
        raise RuntimeError(f"schema/reader mismatch, report this as a bug: {broken.to_dict('records')}")
    rule = cases["check"].astype(str).replace({_NOT_NULLABLE: "missing_required"})
    unknown = set(rule) - set(RULES)
    if unknown:
        raise RuntimeError(f"pandera check without a quarantine rule, report this as a bug: {sorted(unknown)}")
    # A table-wide check reports every column of a failing row; the row is what failed.
    whole_row = (cases["schema_context"] == "DataFrameSchema").to_numpy()
    failures = pd.DataFrame({
        "row": cases["index"].astype("int64").to_numpy(),
        "column": np.where(whole_row, ROW, cases["column"].astype(str).to_numpy()),
        "rule": rule.to_numpy(),
        "value": cases["failure_case"].astype(str).to_numpy(),
    })
    # Raw IDs never leave validation, not even inside a reason.
    is_id = failures["column"] == "student_id"
    failures.loc[is_id, "value"] = [masked_id(v) for v in failures.loc[is_id, "value"]]
    failures.loc[whole_row, "value"] = ""
    # A value that could not be parsed is empty now; it is reported as bad_type, not as missing.
    unparsed = {(int(r), c) for c, mask in bad_type.items() for r in np.flatnonzero(mask)}
    if unparsed:
        keep = [(r, c) not in unparsed or rule != "missing_required"
                for r, c, rule in zip(failures["row"], failures["column"], failures["rule"], strict=True)]
        failures = failures[keep]
    return failures


def split_chunk(frame: pd.DataFrame, failures: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Which rows are clean, and the reasons of the others.

    Returns
    -------
    clean : ndarray of bool, shape (n_rows,)
    reasons : DataFrame indexed by bad row position with ``rule`` (primary), ``rules``
        (all, ``;``-separated, in priority order) and ``detail`` (column = value: rule, for people).
    """
    clean = np.ones(len(frame), dtype=bool)
    if failures.empty:
        return clean, pd.DataFrame(columns=["rule", "rules", "detail"])
    clean[failures["row"].to_numpy()] = False
    failures = failures.assign(
        priority=failures["rule"].map(_PRIORITY),
        value=failures["value"].astype(object).where(failures["value"].notna(), "").astype(str),
    ).sort_values(["row", "priority", "column"])
    text = np.where(failures["column"] == ROW, failures["rule"] + ": " + failures["rule"].map(RULES),
                    failures["column"] + " = " + failures["value"] + ": " + failures["rule"])
    failures = failures.assign(text=text)
    first = failures.drop_duplicates("row").set_index("row")
    distinct = failures.drop_duplicates(["row", "rule"])
    return clean, pd.DataFrame({
        "rule": first["rule"],
        "rules": _joined(distinct["row"], distinct["rule"], ";"),
        "detail": _joined(failures["row"], failures["text"], "; "),
    }).sort_index()


def _joined(rows: pd.Series, texts: pd.Series, separator: str) -> pd.Series:
    """Join the texts of each row, in order, without a Python loop over rows.

    Texts are laid out by their rank within the row (a row rarely breaks more
    than a few rules), then glued rank by rank as whole columns.
    """
    # Most rows break one rule: their text is the whole answer; only the others are laid out.
    several = rows.duplicated(keep=False).to_numpy()
    single = pd.Series(texts.to_numpy()[~several], index=rows.to_numpy()[~several]).astype(str)
    if not several.any():
        return single
    rows, texts = rows[several], texts[several]
    rank = rows.groupby(rows).cumcount().to_numpy()
    wide = pd.DataFrame({"row": rows.to_numpy(), "rank": rank, "text": texts.to_numpy()}).pivot(
        index="row", columns="rank", values="text")
    result = wide[0].astype(str)
    for column in wide.columns[1:]:
        more = wide[column]
        result = result.where(more.isna(), result + separator + more.astype(str))
    return pd.concat([single, result])
