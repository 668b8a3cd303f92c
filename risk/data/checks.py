"""A table's pandera schema evaluated without pandera's engine: the same checks, called directly.

Each rule has one definition, the ``Check`` of :func:`risk.data.schemas.build_schema`.
``schema.validate(lazy=True)`` runs those checks, but around them it builds and
consolidates a failure-case frame per check (on a million-row chunk with a few
bad values, ~0.2 s a check, most of the row pass's time). :func:`schema_cases`
calls each check's own function (the one pandera calls) and collects the failing
rows as whole arrays, in the layout of pandera's ``failure_cases``, so the
quarantine's post-processing (:func:`risk.data.quarantine.failures_from_cases`)
is the same for both. ``tests/test_validate_speed_rules.py`` plants a bad value
of every rule and holds the two to the same quarantine.

What pandera does and this keeps: a column's dtype is checked (a mismatch is a
bug in the reader: a case without a row); nulls fail a non-nullable column
(``not_nullable``); a check with ``ignore_na`` sees the column without its nulls,
and a table-wide check passes a row that is wholly empty.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.backends.pandas.builtin_checks  # noqa: F401  (the pandas implementations of Check.isin, …)
import pandera.pandas as pa
from pandera.engines import pandas_engine

__all__ = ["CASE_COLUMNS", "check_passes", "schema_cases"]

# pandera's failure_cases columns that the quarantine reads.
CASE_COLUMNS = ("index", "column", "check", "failure_case", "schema_context")


def schema_cases(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """Every (row, column, check) of ``frame`` that fails ``schema``, as pandera's ``failure_cases`` would list it.

    ``frame`` must have a position index (0..n-1), as the reader makes it. Returns a
    frame with :data:`CASE_COLUMNS` (``index`` NaN for a column-level failure: a
    missing column or a wrong dtype), empty when every row passes.
    """
    parts: list[pd.DataFrame] = []
    for name, column in schema.columns.items():
        if name not in frame:
            parts.append(_column_case(name, "column_in_dataframe"))
            continue
        values = frame[name]
        if column.dtype is not None and not column.dtype.check(pandas_engine.Engine.dtype(values.dtype)):
            parts.append(_column_case(name, f"dtype('{column.dtype}')"))
            continue
        missing = values.isna().to_numpy()
        has_missing = bool(missing.any())
        if not column.nullable and has_missing:
            parts.append(_cases(np.flatnonzero(missing), values[missing], name, "not_nullable", "Column"))
        for check in column.checks:
            if check.ignore_na and has_missing and missing.all():
                continue
            # A check with ignore_na judges the present values only. Column checks judge each
            # value on its own, so the whole column is judged and its missing values are passed
            # afterwards (taking the present values out first cost a copy of the column).
            failed = ~check_passes(check, values)
            if check.ignore_na and has_missing:
                failed &= ~missing
            if failed.any():  # the usual case is a clean column: no indexing at all
                parts.append(_cases(np.flatnonzero(failed), values[failed], name, _rule(check), "Column"))
    for check in schema.checks:
        failed = ~check_passes(check, frame)
        if check.ignore_na and failed.any():
            failed &= ~frame.isna().all(axis="columns").to_numpy()
        if failed.any():
            parts.append(_cases(frame.index.to_numpy()[failed], None, None, _rule(check), "DataFrameSchema"))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in CASE_COLUMNS})
    return pd.concat(parts, ignore_index=True)


def _cases(rows: np.ndarray, values: pd.Series | None, column: str | None, check: str,
           context: str) -> pd.DataFrame:
    """One case per failing row; a table-wide check's cases name no column or value (the row failed)."""
    n = len(rows)
    failure = np.full(n, "", dtype=object) if values is None else values.to_numpy(dtype=object)
    return pd.DataFrame({"index": rows.astype(np.int64), "column": np.full(n, column, dtype=object),
                         "check": np.full(n, check, dtype=object), "failure_case": failure,
                         "schema_context": np.full(n, context, dtype=object)})


def _column_case(column: str, check: str) -> pd.DataFrame:
    return pd.DataFrame({"index": [np.nan], "column": [column], "check": [check], "failure_case": [None],
                         "schema_context": ["Column"]})


def check_passes(check: pa.Check, data: pd.Series | pd.DataFrame) -> np.ndarray:
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
    if getattr(out, "dtype", None) == np.dtype(bool):  # numpy bool (no nulls possible): most checks answer so
        return np.asarray(out)
    return pd.Series(out).fillna(False).to_numpy(dtype=bool, copy=True)


def _rule(check: pa.Check) -> str:
    return check.error if check.error is not None else check.name
