"""Column batches: rows of one table in numpy form until they are written.

A :class:`Batch` keeps text columns as integer codes into a list of categories
(so a typo is one new category), the student ID as a code into the chunk's ID
dictionary (codes past it index ``extra_ids``), dates as int32 days since
1970-01-01, and a null mask per column. :func:`to_arrow` turns it into the
contract's Arrow types: string, date32, float64, int64, bool.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from risk.data.contract import TABLES

__all__ = ["Batch", "IdDictionary", "concat_batches", "to_arrow"]

_ARROW = {"id": pa.string(), "text": pa.string(), "term": pa.string(), "date": pa.date32(),
          "float": pa.float64(), "int": pa.int64(), "bool": pa.bool_()}  # fmt: skip


def arrow_schema(table: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, _ARROW[c.kind]) for c in TABLES[table].columns])


@dataclass
class IdDictionary:
    """The student IDs of a chunk, as Arrow strings, indexed by local student number."""

    ids: pa.StringArray

    @property
    def size(self) -> int:
        return len(self.ids)


@dataclass
class Batch:
    """Rows of one table. ``cols[name]`` holds codes for text/ID columns and values otherwise."""

    table: str
    cols: dict[str, np.ndarray]
    cats: dict[str, list[str]] = field(default_factory=dict)
    nulls: dict[str, np.ndarray] = field(default_factory=dict)
    extra_ids: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(next(iter(self.cols.values())))

    def null_mask(self, name: str) -> np.ndarray:
        if name not in self.nulls:
            self.nulls[name] = np.zeros(self.n, dtype=bool)
        return self.nulls[name]

    def category_code(self, name: str, value: str) -> int:
        """Code of ``value`` in a text column, adding it to the categories if new."""
        cats = self.cats[name]
        if value not in cats:
            cats.append(value)
        return cats.index(value)

    def slice(self, lo: int, hi: int) -> Batch:
        """Rows ``lo:hi`` as views (categories and extra IDs shared, not copied)."""
        return Batch(self.table, {k: v[lo:hi] for k, v in self.cols.items()}, self.cats,
                     {k: v[lo:hi] for k, v in self.nulls.items()}, self.extra_ids)

    def take(self, rows: np.ndarray) -> Batch:
        """A new batch of the given rows (categories and extra IDs shared by copy)."""
        return Batch(
            self.table,
            {k: v[rows] for k, v in self.cols.items()},
            {k: list(v) for k, v in self.cats.items()},
            {k: v[rows] for k, v in self.nulls.items()},
            list(self.extra_ids),
        )


def concat_batches(batches: list[Batch]) -> Batch:
    """Rows of several batches of one table, re-coding categories and extra IDs (used for small batches)."""
    first = batches[0]
    cats: dict[str, list[str]] = {}
    cols: dict[str, list[np.ndarray]] = {k: [] for k in first.cols}
    nulls: dict[str, list[np.ndarray]] = {k: [] for k in first.cols}
    positions: dict[str, dict[str, int]] = {}
    for b in batches:
        for name, values in b.cols.items():
            if name in b.cats:
                merged = cats.setdefault(name, [])
                position = positions.setdefault(name, {v: i for i, v in enumerate(merged)})
                table = np.empty(max(len(b.cats[name]), 1), dtype=np.int64)
                for i, v in enumerate(b.cats[name]):
                    if v not in position:
                        position[v] = len(merged)
                        merged.append(v)
                    table[i] = position[v]
                values = table[values]
            cols[name].append(values)
            nulls[name].append(b.nulls.get(name, np.zeros(b.n, dtype=bool)))
    out = Batch(first.table, {k: np.concatenate(v) for k, v in cols.items()}, cats,
                {k: np.concatenate(v) for k, v in nulls.items()}, [])
    if any(b.extra_ids for b in batches):
        raise ValueError("concat_batches does not merge extra IDs")
    return out


def _id_array(codes: np.ndarray, null: np.ndarray | None, ids: IdDictionary, extra: list[str],
              plain: bool) -> pa.Array:
    """The student_id column. Rows are mostly ordered by student, so the dictionary is
    sliced to the range the batch uses; this keeps Parquet dictionary pages small."""
    base = codes < ids.size
    if base.any():
        lo = int(codes[base].min())
        hi = int(codes[base].max()) + 1
    else:
        lo = hi = 0
    dictionary = ids.ids.slice(lo, hi - lo)
    extra_code = np.zeros(1, dtype=np.int64)
    if extra:
        # Two corrupted rows may carry the same broken ID; a dictionary must not repeat a
        # value (Parquet's writer then encodes the column non-deterministically).
        unique, extra_code = np.unique(np.array(extra, dtype=object).astype(str), return_inverse=True)
        dictionary = pa.concat_arrays([dictionary, pa.array(unique.tolist(), type=pa.string())])
    local = np.where(base, codes - lo, extra_code[np.clip(codes - ids.size, 0, len(extra_code) - 1)] + (hi - lo))
    local = local.astype(np.int32)
    indices = pa.array(local, mask=null if null is not None and null.any() else None)
    arr = pa.DictionaryArray.from_arrays(indices, dictionary)
    return arr.cast(pa.string()) if plain else arr


def to_arrow(batch: Batch, ids: IdDictionary, *, plain: bool) -> pa.Table:
    """The batch as an Arrow table with the contract's columns in order.

    ``plain`` decodes text to plain strings (needed for CSV); otherwise text stays
    dictionary-encoded, which Parquet stores as plain strings.
    """
    arrays = []
    for column in TABLES[batch.table].columns:
        values = batch.cols[column.name]
        null = batch.nulls.get(column.name)
        mask = null if null is not None and null.any() else None
        if column.kind == "id":
            arr = _id_array(values, null, ids, batch.extra_ids, plain)
        elif column.name in batch.cats:
            indices = pa.array(values.astype(np.int32), mask=mask)
            arr = pa.DictionaryArray.from_arrays(indices, pa.array(batch.cats[column.name], type=pa.string()))
            if plain:
                arr = arr.cast(pa.string())
        elif column.kind == "date":
            arr = pa.array(values.astype(np.int32), mask=mask).view(pa.date32())
        else:
            arr = pa.array(values, type=_ARROW[column.kind], mask=mask)
        arrays.append(arr)
    names = [c.name for c in TABLES[batch.table].columns]
    return pa.Table.from_arrays(arrays, names=names)
