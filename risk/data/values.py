"""Source values parsed to the contract's types: text, numbers, dates and flags.

A value that cannot be parsed is reported (a mask per column), never guessed, so
the validator can quarantine its row with the reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from risk.data.contract import Table

__all__ = ["FALSE_WORDS", "TRUE_WORDS", "typed_frame"]

TRUE_WORDS = {"true", "t", "1", "yes", "y"}
FALSE_WORDS = {"false", "f", "0", "no", "n"}
_TRUE, _FALSE = TRUE_WORDS, FALSE_WORDS


def typed_frame(batch: pa.RecordBatch | pa.Table, table: Table) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Parse every contract column of ``batch`` to its type; absent optional columns come back empty."""
    columns: dict[str, object] = {}
    bad: dict[str, np.ndarray] = {}
    names = batch.schema.names
    for column in table.columns:
        if column.name not in names:
            columns[column.name] = _empty(column.kind, batch.num_rows)
            continue
        values, failed = _parse(batch.column(column.name), column.kind)
        columns[column.name] = values
        if failed is not None and failed.any():
            bad[column.name] = failed
    return pd.DataFrame(columns), bad


def _empty(kind: str, n: int) -> pd.Series:
    dtype = {"date": "datetime64[ms]", "float": "float64", "int": "Float64", "bool": "boolean"}.get(kind, "str")
    return pd.Series(pd.array([None] * n, dtype=dtype))


def _parse(arr: pa.Array, kind: str) -> tuple[pd.Series | np.ndarray, np.ndarray | None]:
    """Parse one column to the contract kind; return the values and a mask of unparseable ones."""
    is_text = pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
    if kind in ("id", "text", "term"):
        text = arr if is_text else pc.cast(arr, pa.string())
        return pd.Series(pc.utf8_trim_whitespace(text).to_pandas(), dtype="str"), None
    if kind == "date":
        if is_text:
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
        mapped[raw.isin(_TRUE).to_numpy()] = True
        mapped[raw.isin(_FALSE).to_numpy()] = False
        failed = (raw.notna() & mapped.isna()).to_numpy()
        return mapped, failed
    raise ValueError(f"unknown column kind {kind!r}")
