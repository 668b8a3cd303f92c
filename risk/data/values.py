"""Source values parsed to the contract's types: text, numbers, dates and flags.

Values are read in one of two ways (``typed_frame(..., source=...)``):

- ``"payload"``, the service's API contract: dates are ISO ``YYYY-MM-DD`` only.
- ``"export"``, files sent by schools (``risk validate``): Thai digits ๐–๙ are
  digits in every text column; dates are ISO or day first (``16/06/2567``,
  ``6/1/2024``, with ``/``, ``-`` or ``.``); a year of 2400 or more is Buddhist
  Era (CE + 543), in typed Parquet dates too. :class:`ParseOptions` per column
  say what the values cannot (a month-first column, an era); a month-first
  column under ``date_order: auto`` is an error (:class:`DateOrderError`), not a guess.

A value that cannot be parsed is reported (a mask per column), never guessed,
so the validator can quarantine its row with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from risk.data.contract import Column, Table
from risk.data.dates import (
    BUDDHIST_ERA_YEARS_FROM,
    DateForm,
    DateOrderError,
    ParseOptions,
    ascii_digits,
    common_era,
    describe_dates,
    text_dates,
    typed_days,
)

__all__ = ["BUDDHIST_ERA_YEARS_FROM", "FALSE_WORDS", "TRUE_WORDS", "DateForm", "DateOrderError", "ParseOptions",
           "ascii_digits", "describe_dates", "typed_frame"]

TRUE_WORDS = {"true", "t", "1", "yes", "y"}
FALSE_WORDS = {"false", "f", "0", "no", "n"}

Source = Literal["payload", "export"]
_DEFAULT_OPTIONS = ParseOptions()


def typed_frame(batch: pa.RecordBatch | pa.Table, table: Table, *, source: Source = "payload",
                options: Mapping[str, ParseOptions] | None = None) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Parse every contract column of ``batch`` to its type; absent optional columns come back empty.

    ``source`` says what the values may hold (see the module docstring); ``options``
    (exports only) maps a column name to its :class:`ParseOptions`, default ``ParseOptions()``.

    Returns
    -------
    frame : DataFrame with one column per contract column (dates as ``datetime64[ms]``)
    bad : column name -> boolean mask of shape (n_rows,) of values present but unparseable

    Raises
    ------
    DateOrderError
        (exports only) when a date column under ``date_order: auto`` is written month first.
    """
    if source not in ("payload", "export"):
        raise ValueError(f"source must be 'payload' or 'export'; got {source!r}")
    if options and source != "export":
        raise ValueError("parse options apply to exports only; payload values follow the API contract")
    options = options or {}
    columns: dict[str, object] = {}
    bad: dict[str, np.ndarray] = {}
    names = batch.schema.names
    for column in table.columns:
        if column.name not in names:
            columns[column.name] = _empty(column.kind, batch.num_rows)
            continue
        arr = batch.column(column.name)
        if source == "export":
            values, failed = _parse_export(arr, column, options.get(column.name, _DEFAULT_OPTIONS))
        else:
            values, failed = _parse(arr, column.kind)
        columns[column.name] = values
        if failed is not None and failed.any():
            bad[column.name] = failed
    return pd.DataFrame(columns), bad


def _empty(kind: str, n: int) -> pd.Series:
    dtype = {"date": "datetime64[ms]", "float": "float64", "int": "Float64", "bool": "boolean"}.get(kind, "str")
    return pd.Series(pd.array([None] * n, dtype=dtype))


def _is_text(arr: pa.Array | pa.ChunkedArray) -> bool:
    return pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)


def _parse(arr: pa.Array, kind: str) -> tuple[pd.Series | np.ndarray, np.ndarray | None]:
    """Parse one column to the contract kind; return the values and a mask of unparseable ones."""
    is_text = _is_text(arr)
    if kind in ("id", "text", "term"):
        text = arr if is_text else pc.cast(arr, pa.string())
        return pd.Series(pc.utf8_trim_whitespace(text).to_pandas(), dtype="str"), None
    if kind == "date":
        if is_text:
            # Arrow's strptime rolls 2024-02-30 over to 1 March; the payload's fast checks know it.
            parsed = pc.strptime(pc.utf8_trim_whitespace(arr), format="%Y-%m-%d", unit="s", error_is_null=True)
            failed = (pc.is_valid(arr).to_numpy(zero_copy_only=False) & ~pc.is_valid(parsed).to_numpy(zero_copy_only=False))
            arr = pc.cast(parsed, pa.date32())
        else:
            failed = None
            if pa.types.is_timestamp(arr.type):
                arr = pc.cast(arr, pa.date32())
        series = pd.Series(arr.to_pandas(date_as_object=False)).astype("datetime64[ms]")
        return series, failed
    if kind in ("float", "int"):
        if is_text:
            raw = pd.Series(arr.to_pandas(), dtype="str")
            numbers = pd.to_numeric(raw.str.strip(), errors="coerce")
            failed = (raw.notna() & numbers.isna()).to_numpy()
        else:
            numbers = pd.Series(arr.to_pandas())
            failed = None
        return numbers.astype("float64"), failed
    if kind == "bool":
        if pa.types.is_boolean(arr.type):
            return pd.Series(arr.to_pandas(), dtype="boolean"), None
        raw = pd.Series(pc.cast(arr, pa.string()).to_pandas(), dtype="str").str.strip().str.lower()
        mapped = pd.Series(pd.array([None] * len(raw), dtype="boolean"))
        mapped[raw.isin(TRUE_WORDS).to_numpy()] = True
        mapped[raw.isin(FALSE_WORDS).to_numpy()] = False
        failed = (raw.notna() & mapped.isna()).to_numpy()
        return mapped, failed
    raise ValueError(f"unknown column kind {kind!r}")


def _parse_export(arr: pa.Array | pa.ChunkedArray, column: Column,
                  options: ParseOptions) -> tuple[pd.Series | np.ndarray, np.ndarray | None]:
    """One export column: Thai digits made ASCII, dates in the forms schools write; the rest as :func:`_parse`."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if _is_text(arr):
        arr = ascii_digits(arr)
    if column.kind != "date":
        return _parse(arr, column.kind)
    if _is_text(arr):
        days, failed = text_dates(pc.utf8_trim_whitespace(arr), column.name, options)
    else:
        days, failed = common_era(typed_days(arr), options.era)
    return pd.Series(days.astype("datetime64[ms]")), failed
