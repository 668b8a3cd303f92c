"""Reading source exports: the files of a table, streamed as chunks of typed rows.

Files are found and read by :mod:`risk.data.formats`; values are parsed to the
contract's types by :mod:`risk.data.values`, as exports (day-first and
Buddhist-Era dates, Thai digits). Chunks keep each row's position in its file, so
a quarantined row can be found again, and the text each parsed value was read
from, so a rejected value is reported as it was written.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from risk.data.contract import Table
from risk.data.formats import (
    check_columns,
    file_batches,
    inspect_file,
    parquet_chunks,
    source_files,
)
from risk.data.profile import SourceProfile
from risk.data.values import DateOrderError, ParseOptions, typed_frame

__all__ = ["Chunk", "ParseOptions", "check_columns", "inspect_file", "iter_chunks", "parquet_chunks", "source_files",
           "typed_frame"]

# Kinds read from text into another type: their text is kept to report a rejected value as written.
_PARSED_KINDS = ("date", "float", "int", "bool")


@dataclass
class Chunk:
    """A batch of source rows parsed to contract types.

    ``frame`` has one column per contract column present (absent optional
    columns are added empty); ``row`` is each row's 0-based position in its
    file; ``bad_type`` maps a column to a boolean mask of values that were
    present but could not be parsed (e.g. ``"abc"`` in a number column).
    """

    file: str
    frame: pd.DataFrame
    row: np.ndarray
    bad_type: dict[str, np.ndarray]
    # Column -> the text its values were parsed from (zero-copy Arrow; columns stored as text only).
    text: dict[str, pa.Array] = field(default_factory=dict)


def iter_chunks(path: Path, table: Table, chunk_rows: int, root: Path,
                options: Mapping[str, ParseOptions] | None = None, *,
                profile: SourceProfile | None = None) -> Iterator[Chunk]:
    """Stream ``path`` in chunks of at most ``chunk_rows`` rows, parsed to contract types as an export.

    ``profile`` maps the file's headers and words to the contract's and says how its dates
    are written; ``options`` (per column) overrides its date options.
    Raises DateOrderError naming the file when a date column's order needs an option.
    """
    relative = str(path.relative_to(root))
    if options is None and profile is not None:
        options = profile.options_for(table.name)
    offset = 0
    for batch in _rebatch(file_batches(path, table, chunk_rows, profile), chunk_rows):
        try:
            frame, bad = typed_frame(batch, table, source="export", options=options)
        except DateOrderError as exc:
            raise DateOrderError(f"{path}: {exc}") from None
        text = {c.name: batch.column(c.name) for c in table.columns
                if c.kind in _PARSED_KINDS and c.name in batch.schema.names and _is_text(batch.schema.field(c.name))}
        yield Chunk(relative, frame, np.arange(offset, offset + batch.num_rows, dtype=np.int64), bad, text)
        offset += batch.num_rows


def _is_text(field: pa.Field) -> bool:
    return pa.types.is_string(field.type) or pa.types.is_large_string(field.type)


def _rebatch(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Regroup batches so that each holds at most ``rows`` rows (CSV blocks vary in size)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        while count >= rows:
            merged = pa.Table.from_batches(pending).combine_chunks().to_batches()
            whole = merged[0] if merged else batch.slice(0, 0)
            yield whole.slice(0, rows)
            rest = whole.slice(rows)
            pending, count = ([rest] if rest.num_rows else []), rest.num_rows
    if count:
        merged = pa.Table.from_batches(pending).combine_chunks().to_batches()
        yield merged[0]
