"""The relations feature SQL reads, as DuckDB views: over validated Parquet, or over one payload.

Views are named after the contract tables (``enrollments``, ``attendance_daily``, …)
and hold the validated layout: ``student_key`` instead of ``student_id``. Batch
building opens one student bucket at a time; the online path registers one
student's frames. The feature SQL cannot tell the two apart.

``schools`` keeps every version of a school (``valid_from``, :mod:`risk.data.versions`);
its view holds one row per school, the version in force at the connection's ``as_of``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from risk.data.contract import TABLES, Table
from risk.data.versions import schools_in_force
from risk.features.health import register_functions

__all__ = ["REFERENCE_TABLES", "STUDENT_TABLES", "connect", "empty_frame", "register_frames", "view_validated"]

REFERENCE_TABLES = ("schools", "calendar")
STUDENT_TABLES = tuple(name for name, t in TABLES.items() if t.has_student)
_ARROW = {"id": pa.int64(), "text": pa.string(), "term": pa.string(), "date": pa.date32(),
          "float": pa.float64(), "int": pa.int64(), "bool": pa.bool_()}  # fmt: skip


def connect(threads: int = 2, memory_limit: str = "4GB") -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    # Row order inside the intermediate tables carries no meaning; not keeping it is faster.
    con.execute("SET preserve_insertion_order = false")
    register_functions(con)
    return con


def empty_frame(table: Table) -> pd.DataFrame:
    """A frame with no rows and the validated columns of ``table``."""
    fields = []
    for column in table.columns:
        name = "student_key" if column.kind == "id" else column.name
        fields.append(pa.field(name, _ARROW[column.kind]))
    if table.name == "enrollments":
        fields.append(pa.field("id_hint", pa.string()))
    if table.name == "attendance_daily":
        fields += [pa.field("term", pa.string()), pa.field("school_id", pa.string())]
    return pa.schema(fields).empty_table().to_pandas()


def view_validated(con: duckdb.DuckDBPyConnection, validated: Path, bucket: int | Sequence[int] | None = None,
                   as_of: dt.date | None = None, terms: Sequence[str] | None = None) -> None:
    """Views over the validated tables; ``schools`` as in force at ``as_of`` (None: the latest versions).

    With ``bucket`` (one, or several read together), the student tables switch to those buckets
    only and the reference views stay as the connection's first call made them (at its ``as_of``).
    With ``terms``, attendance (stored by term) holds those terms' rows only.
    """
    if bucket is None:
        for name in REFERENCE_TABLES:
            _view(con, name, sorted((validated / name).glob("*.parquet")), as_of)
    folders = [""] if bucket is None else [f"bucket={b}/" for b in ([bucket] if isinstance(bucket, int) else bucket)]
    for name in STUDENT_TABLES:
        within = [f"**/term={t}/" for t in terms] if terms is not None and name == "attendance_daily" else ["**/"]
        files = sorted(p for folder in folders for inner in within
                       for p in (validated / name).glob(f"{folder}{inner}*.parquet"))
        _view(con, name, files)


def _view(con: duckdb.DuckDBPyConnection, name: str, files: list[Path], as_of: dt.date | None = None) -> None:
    if not files:
        con.register(f"_empty_{name}", empty_frame(TABLES[name]))
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM _empty_{name}")
        return
    if name == "schools":
        con.execute(f"CREATE OR REPLACE VIEW schools AS {schools_in_force(files, as_of)}")
        return
    paths = "[" + ", ".join(f"'{p}'" for p in files) + "]"
    if name == "attendance_daily":
        hive = "hive_partitioning = true, hive_types = {'bucket': INTEGER, 'term': VARCHAR}"
    elif name in STUDENT_TABLES:
        hive = "hive_partitioning = true, hive_types = {'bucket': INTEGER}"
    else:
        hive = "hive_partitioning = false"
    con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet({paths}, {hive})")


def register_frames(con: duckdb.DuckDBPyConnection, frames: dict[str, pd.DataFrame]) -> None:
    """Views over in-memory frames in the validated layout (the online path)."""
    for name, frame in frames.items():
        con.register(f"_frame_{name}", frame)
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM _frame_{name}")
