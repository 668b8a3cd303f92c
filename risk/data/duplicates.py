"""The second validation pass: duplicates, against the export itself and against the store.

A row is a duplicate when an earlier row holds its key (the table's unique key,
or every column when it has none): an exact copy (``duplicate``) or a conflicting
row (``duplicate_key``). Earlier means earlier in the export (file order) or
already in the validated store: a row the store holds is never replaced.

Two rows with the same key have the same student, so they sit in the same bucket
of the staged rows: the pass takes a few buckets at a time (a *slice* of at most
``slice_rows`` rows), which keeps DuckDB's grouping in memory instead of spilling a
national table to disk. Stored rows are read only where new rows may meet them:
the same buckets, and for attendance the same terms' folders; other tables are
filtered on the terms or dates of the new rows, which Parquet statistics turn into
skipped row groups. Clean rows are written as new part files of the run's batch.

In student tables, the repeats among the staged rows are found from their keys alone,
and whole rows are read only for the keys that repeat or are stored. Student
tables' part files are written by Arrow from the staged buckets
(:mod:`risk.data.bucket_files`).

Reference tables (schools, calendar) come again with every export: a row identical to
the stored one is ``unchanged`` rather than a duplicate, and a changed school is a new
version (:mod:`risk.data.versions`).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from risk.data.bucket_files import by_bucket, write_buckets
from risk.data.contract import Table
from risk.data.row_pass import write_rows
from risk.data.versions import (
    REFERENCE_TABLES,
    VALID_FROM,
    VERSIONED_TABLES,
    has_valid_from,
    in_force_order,
    reference_repeats,
)

__all__ = ["DuplicatePass", "Repeats", "duplicate_rows", "output_columns"]

_NO_ROWS = pd.DataFrame({"_file": pd.Series(dtype="str"), "_row": pd.Series(dtype="int64")})
STORE_DETAIL = "a row already in the validated store"



@dataclass
class Repeats:
    """What the pass found: rows quarantined, rows ``unchanged`` (reference tables), and the
    school ids that got a new version (their ``valid_from`` is set once the export's terms are known)."""

    quarantined: int = 0
    unchanged: int = 0
    versions: list[str] = field(default_factory=list)
    # Seconds spent finding the repeats ("duplicates") and writing the validated files ("write").
    steps: Counter[str] = field(default_factory=Counter)


@dataclass
class DuplicatePass:
    """Duplicates of one table's staged rows, and the validated part files of the rest.

    ``staging`` holds the row pass's output (``bucket=N/*.parquet``, or ``all/`` for a
    reference table); ``store`` the validated table of earlier runs (may not exist);
    ``target`` receives this batch's part files; ``quarantine`` its duplicate rows.
    """

    table: Table
    staging: Path
    store: Path
    target: Path
    quarantine: Path
    batch: str
    buckets: int
    slice_rows: int = 16_000_000

    def run(self, con: duckdb.DuckDBPyConnection) -> Repeats:
        """Quarantine the duplicates, leave out the unchanged rows and write the rest."""
        found = Repeats()
        for number, files in enumerate(self._slices()):
            self._run_slice(con, files, number, found)
        return found

    # -- slices ---------------------------------------------------------------------------------------

    def _slices(self) -> list[list[Path]]:
        """Staged files grouped by bucket into slices of at most ``slice_rows`` rows (a bucket is never cut)."""
        if not self.table.has_student:
            files = sorted((self.staging / "all").glob("*.parquet"))
            return [files] if files else []
        slices, current, rows = [], [], 0
        for folder in sorted(self.staging.glob("bucket=*"), key=lambda p: int(p.name.split("=")[1])):
            files = sorted(folder.glob("*.parquet"))
            n = sum(pq.read_metadata(f).num_rows for f in files)
            if current and rows + n > self.slice_rows:
                slices.append(current)
                current, rows = [], 0
            current += files
            rows += n
        return [*slices, current] if current else slices

    def _run_slice(self, con: duckdb.DuckDBPyConnection, files: list[Path], number: int, found: Repeats) -> None:
        started = time.perf_counter()
        staged = f"read_parquet({_paths(files)}, union_by_name = true)"
        key_cols, data_cols = _key_columns(self.table), _data_columns(self.table)
        stored = self._stored_rows(con, staged, files)
        if self.table.has_student:
            groups = _repeated_rows(con, staged, files, key_cols, stored)
        else:
            groups = self._groups(con, staged, stored, key_cols)
        left_out = _NO_ROWS
        if self.table.name in REFERENCE_TABLES:
            # A version's date is not an attribute of the school: sent again, it changes nothing.
            compared = [c for c in data_cols if c != VALID_FROM]
            dups, unchanged, versions = reference_repeats(groups, key_cols, compared,
                                                          versioned=self.table.name in VERSIONED_TABLES)
            left_out = unchanged
            found.unchanged += len(unchanged)
            found.versions += _key_values(groups, versions, key_cols[0])
        else:
            dups = duplicate_rows(groups, key_cols, data_cols)
        found.quarantined += len(dups)
        if len(dups):
            # Quarantined rows as the row pass staged them (the store's own rows are never quarantined).
            con.register("dup_keys", dups[["_file", "_row", "rule", "rules", "detail"]])
            rows = con.execute(f"SELECT s.*, d.rule, d.rules, d.detail FROM {staged} s "
                               "JOIN dup_keys d ON s._file = d._file AND s._row = d._row").df()
            con.unregister("dup_keys")
            write_rows(rows, self.quarantine / f"{self.batch}-duplicates-{number:05d}.parquet")
        writing = time.perf_counter()
        found.steps["duplicates"] += writing - started
        left_out = pd.concat([dups[["_file", "_row"]], left_out], ignore_index=True)
        if self.table.has_student:
            write_buckets(self.table, output_columns(self.table), files, left_out, self.target, self.batch)
        else:
            self._write(con, staged, left_out)
        found.steps["write"] += time.perf_counter() - writing

    # -- the store ------------------------------------------------------------------------------------

    def _stored_rows(self, con: duckdb.DuckDBPyConnection, staged: str, files: list[Path]) -> str | None:
        """A relation of the stored rows new rows may meet, in the staged layout; None when there is none."""
        paths = self._stored_files(con, staged, files)
        if not paths:
            return None
        if self.table.name == "attendance_daily":
            hive = "hive_partitioning = true, hive_types = {'bucket': INTEGER, 'term': VARCHAR}"
        elif self.table.has_student:
            hive = "hive_partitioning = true, hive_types = {'bucket': INTEGER}"
        else:
            hive = "hive_partitioning = false"
        select = ", ".join(_staged_from_stored(self.table, c) for c in _data_columns(self.table))
        where = self._stored_filter(con, staged)
        if self.table.name in VERSIONED_TABLES and has_valid_from(paths):
            # Only the version in force is compared with: a school sent back as it was two versions
            # ago has changed again.
            keys = ", ".join(f'r."{c}"' for c in self.table.unique_key)
            return (f"(SELECT {select} FROM read_parquet({_paths(paths)}, {hive}, union_by_name = true, "
                    f"filename = true) r {where} "
                    f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {in_force_order('r')}) = 1)")
        return f"(SELECT {select} FROM read_parquet({_paths(paths)}, {hive}) r {where})"

    def _stored_files(self, con: duckdb.DuckDBPyConnection, staged: str, files: list[Path]) -> list[Path]:
        if not self.store.is_dir():
            return []
        if not self.table.has_student:
            return sorted(self.store.glob("*.parquet"))
        buckets = sorted({f.parent.name for f in files})
        if self.table.name != "attendance_daily":
            return sorted(p for b in buckets for p in (self.store / b).glob("*.parquet"))
        # Attendance is kept by term: only the terms of the new rows' dates can hold their keys.
        terms = [f"term={r[0]}" for r in con.execute(f"SELECT DISTINCT term FROM {staged}").fetchall()]
        return sorted(p for b in buckets for t in terms for p in (self.store / b / t).glob("*.parquet"))

    def _stored_filter(self, con: duckdb.DuckDBPyConnection, staged: str) -> str:
        """A WHERE clause on the terms or dates of the new rows: Parquet statistics skip the rest."""
        if "term" in self.table.column_names and self.table.name in ("enrollments", "grades"):
            terms = [r[0] for r in con.execute(f"SELECT DISTINCT term FROM {staged}").fetchall()]
            return "WHERE r.term IN (" + ", ".join(f"'{t}'" for t in terms) + ")" if terms else "WHERE false"
        column = self.table.date_column
        if column is None or self.table.name == "attendance_daily":
            return ""
        low, high = con.execute(f'SELECT min("{column}")::DATE, max("{column}")::DATE FROM {staged}').fetchall()[0]
        return f"WHERE r.\"{column}\" BETWEEN DATE '{low}' AND DATE '{high}'" if low else "WHERE false"

    # -- groups and output ----------------------------------------------------------------------------

    def _groups(self, con: duckdb.DuckDBPyConnection, staged: str, stored: str | None,
                key_cols: list[str]) -> pd.DataFrame:
        """Every staged row of a reference table whose key is repeated or already stored, with the stored rows
        of those keys (student tables: :func:`_repeated_rows`)."""
        keys = ", ".join(f'"{c}"' for c in key_cols)
        repeated = f"SELECT {keys} FROM {staged} GROUP BY ALL HAVING count(*) > 1"
        if stored is None:
            return con.execute(f"SELECT s.*, false AS _stored FROM {staged} s "
                               f"SEMI JOIN ({repeated}) k ON {_same('s', 'k', key_cols)}").df()
        known = f"SELECT DISTINCT {keys} FROM {stored} r SEMI JOIN {staged} s ON {_same('r', 's', key_cols)}"
        con.execute(f"CREATE OR REPLACE TEMP TABLE _known AS {known}").fetchall()
        rows = con.execute(
            f"SELECT s.*, false AS _stored FROM {staged} s "
            f"SEMI JOIN ({repeated} UNION SELECT * FROM _known) k ON {_same('s', 'k', key_cols)} "
            f"UNION ALL BY NAME SELECT r.*, true AS _stored FROM {stored} r "
            f"SEMI JOIN _known k ON {_same('r', 'k', key_cols)}").df()
        con.execute("DROP TABLE _known").fetchall()
        return rows

    def _write(self, con: duckdb.DuckDBPyConnection, staged: str, dups: pd.DataFrame) -> None:
        """Write the staged rows of a reference table but ``dups`` (``_file``, ``_row``: quarantined or unchanged)."""
        con.register("dup_rows", dups[["_file", "_row"]] if len(dups) else _NO_ROWS)
        select = ", ".join(_output_column(self.table, c) for c in output_columns(self.table))
        rows = f"SELECT {select} FROM {staged} s ANTI JOIN dup_rows d ON s._file = d._file AND s._row = d._row"
        if con.execute(f"SELECT count(*) FROM ({rows})").fetchall()[0][0]:
            # No empty file: a run that adds nothing must leave the table as it was.
            self.target.mkdir(parents=True, exist_ok=True)
            con.execute(f"COPY ({rows}) TO '{self.target / f'part-{self.batch}.parquet'}' "
                        "(FORMAT parquet, COMPRESSION zstd)").fetchall()
        con.unregister("dup_rows")


def _repeated_rows(con: duckdb.DuckDBPyConnection, staged: str, files: list[Path], key_cols: list[str],
                   stored: str | None) -> pd.DataFrame:
    """Every staged row whose key is repeated or already stored, with the stored rows of those keys (``_stored``).

    The repeats among the staged rows are found from their keys alone, a bucket at a time
    (:func:`_repeated_in`; pandas counts missing values as equal, as ``IS NOT DISTINCT FROM``
    does), and whole rows are read only for them: counting every staged key in DuckDB cost
    a third of the duplicate pass. The stored keys they meet are found by DuckDB, from the
    stored rows new rows may meet (``stored``, None when there is none).
    """
    found = [rows for rows in (_repeated_in(paths, key_cols) for paths in by_bucket(files).values()) if rows.num_rows]
    if not found and stored is None:
        return _NO_ROWS.assign(_stored=pd.Series(dtype=bool))
    con.register("repeated_rows", pa.concat_tables(found) if found else
                 pa.table({"_file": pa.array([], pa.string()), "_row": pa.array([], pa.int64())}))
    if stored is None:
        rows = con.execute(f"SELECT s.*, false AS _stored FROM {staged} s "
                           "SEMI JOIN repeated_rows k ON s._file = k._file AND s._row = k._row").df()
    else:
        keys = ", ".join(f'"{c}"' for c in key_cols)
        known = f"SELECT DISTINCT {keys} FROM {stored} r SEMI JOIN {staged} s ON {_same('r', 's', key_cols)}"
        con.execute(f"CREATE OR REPLACE TEMP TABLE _known AS {known}").fetchall()
        rows = con.execute(
            f"SELECT s.*, false AS _stored FROM {staged} s SEMI JOIN (SELECT _file, _row FROM repeated_rows "
            f"UNION SELECT s2._file, s2._row FROM {staged} s2 SEMI JOIN _known k ON {_same('s2', 'k', key_cols)}) p "
            "ON s._file = p._file AND s._row = p._row "
            f"UNION ALL BY NAME SELECT r.*, true AS _stored FROM {stored} r "
            f"SEMI JOIN _known k ON {_same('r', 'k', key_cols)}").df()
        con.execute("DROP TABLE _known").fetchall()
    con.unregister("repeated_rows")
    return rows


def _repeated_in(files: list[Path], key_cols: list[str]) -> pa.Table:
    """``_file`` (text) and ``_row`` of the rows of one bucket's staged ``files`` whose key another of them holds.

    A bucket at a time: its keys' hash table stays in the processor's cache (three times
    faster than counting a whole slice's keys at once).
    """
    parts = [pq.ParquetFile(f).read(columns=[*key_cols, "_file", "_row"]) for f in files]
    keys = pa.concat_tables([p.cast(parts[0].schema) for p in parts])
    repeated = keys.select(key_cols).to_pandas().duplicated(key_cols, keep=False).to_numpy()
    rows = keys.select(["_file", "_row"]).filter(pa.array(repeated))
    return rows.set_column(0, "_file", pc.cast(rows.column("_file"), pa.string()))


def duplicate_rows(groups: pd.DataFrame, key_cols: list[str], data_cols: list[str]) -> pd.DataFrame:
    """Of rows sharing a key, all but the first: exact copies (``duplicate``), then conflicts (``duplicate_key``).

    Rows with ``_stored`` true are already in the validated store: they come first and are
    never returned. The others count in file order (``_file``, ``_row``).
    """
    if groups.empty:
        return groups.assign(rule=pd.Series(dtype="str"), rules=pd.Series(dtype="str"), detail=pd.Series(dtype="str"))
    stored = groups["_stored"].to_numpy(dtype=bool) if "_stored" in groups else np.zeros(len(groups), dtype=bool)
    groups = groups.assign(_stored=stored).sort_values(["_stored", "_file", "_row"], ascending=[False, True, True],
                                                       kind="stable", na_position="first").reset_index(drop=True)
    later_key = groups.duplicated(key_cols, keep="first")
    exact = groups.duplicated(data_cols, keep="first")
    first = groups.groupby(key_cols, dropna=False, sort=False)[["_file", "_row", "_stored"]].transform("first")
    dups = groups.loc[later_key].drop(columns="_stored")
    is_exact = exact[later_key].to_numpy()
    dups["rule"] = np.where(is_exact, "duplicate", "duplicate_key")
    dups["rules"] = dups["rule"]
    where = first.loc[later_key]
    dups["detail"] = [
        f"{'copy of' if e else 'same key as'} {STORE_DETAIL if s else f'row {r} of {f}'}"
        for e, f, r, s in zip(is_exact, where["_file"], where["_row"], where["_stored"], strict=True)
    ]
    return dups


def _key_values(groups: pd.DataFrame, rows: pd.DataFrame, column: str) -> list[str]:
    """``column`` of the staged rows ``rows`` (``_file``, ``_row``) names."""
    if rows.empty:
        return []
    return groups.merge(rows, on=["_file", "_row"])[column].astype(str).tolist()


def _key_columns(table: Table) -> list[str]:
    return [("student_key" if c == "student_id" else c) for c in table.unique_key] or _data_columns(table)


def _data_columns(table: Table) -> list[str]:
    cols = [c for c in table.column_names if c != "student_id"]
    return ["student_key", *cols] if table.has_student else cols


def _same(left: str, right: str, columns: list[str]) -> str:
    # NULL-safe: a key with an empty optional value still matches its copy.
    return " AND ".join(f'{left}."{c}" IS NOT DISTINCT FROM {right}."{c}"' for c in columns)


def _paths(files: list[Path]) -> str:
    return "[" + ", ".join(f"'{p}'" for p in files) + "]"


def _staged_from_stored(table: Table, name: str) -> str:
    """A stored column as the row pass stages it (numbers as DOUBLE, dates as timestamps), for comparison."""
    kind = table.column(name).kind if name in table.column_names else None
    if kind == "int":
        return f'CAST(r."{name}" AS DOUBLE) AS "{name}"'
    if kind == "date":
        return f'CAST(r."{name}" AS TIMESTAMP_MS) AS "{name}"'
    return f'r."{name}"'


def output_columns(table: Table) -> list[str]:
    """Columns of the validated table, in order (partition columns aside)."""
    cols = _data_columns(table)
    if table.name == "enrollments":
        cols.insert(1, "id_hint")
    if table.name == "attendance_daily":
        cols += ["term", "school_id"]
    if table.name in VERSIONED_TABLES:
        cols.append(VALID_FROM)
    return cols


def _output_column(table: Table, name: str) -> str:
    if name == VALID_FROM and name not in table.column_names:
        # Dated once the export's terms are known (risk.data.versions.date_versions); NULL: always.
        return f'NULL::DATE AS "{name}"'
    kind = table.column(name).kind if name in table.column_names else None
    if kind == "int":
        return f'CAST(s."{name}" AS BIGINT) AS "{name}"'
    if kind == "date":
        return f'CAST(s."{name}" AS DATE) AS "{name}"'
    return f's."{name}"'
