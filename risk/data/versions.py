"""Reference tables sent again with every export: unchanged rows, and new versions of a school.

Schools and calendar arrive whole in each term's export. Against the validated store:

- a row identical to the stored one in force is ``unchanged``: counted, neither used
  nor quarantined (in = used + unchanged + quarantined);
- a ``schools`` row whose attributes changed (size, area, affiliation, name, …) is a
  new *version* of the school, stored beside the old one with ``valid_from``: the first
  day of the export's earliest term (:func:`export_start`), or the ``valid_from`` the export
  gives it when the contract has that optional column. First versions have
  ``valid_from`` NULL, meaning "always": a school first seen in an export is all that is
  known of it, and that export holds rows (screenings, birth dates) dated before its
  first term, which must see the school too;
- a calendar row whose (school, date) is stored with another term conflicts (``duplicate_key``).

Within one export the rules of every table hold: a second row for the same key is
a ``duplicate`` (exact copy) or ``duplicate_key`` (other values). Readers take the
version in force at their date with :func:`schools_in_force`.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from risk.data.contract import parse_term, term_start

__all__ = ["REFERENCE_TABLES", "VALID_FROM", "VERSIONED_TABLES", "date_versions", "export_start", "has_valid_from",
           "in_force_order", "reference_repeats", "schools_in_force"]

REFERENCE_TABLES = ("schools", "calendar")
# Tables whose changed row is a new version rather than a conflict.
VERSIONED_TABLES = ("schools",)
VALID_FROM = "valid_from"
STORE_DETAIL = "a row already in the validated store"
# A term with fewer calendar rows than this share of the largest term's is a stray row, not a term
# of the export (as risk.data.export_split.export_terms judges).
_TERM_SHARE = 0.1


def reference_repeats(groups: pd.DataFrame, key_cols: list[str], data_cols: list[str], *,
                      versioned: bool) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Sort the repeated and stored keys of a reference table into what happens to each new row.

    ``groups`` holds the export's rows whose key repeats or is stored (``_stored`` false) and
    the stored row in force of those keys (``_stored`` true; at most one per key).

    Returns
    -------
    quarantined : rows with ``rule``, ``rules``, ``detail`` (the :func:`duplicate_rows` layout)
    unchanged : ``_file``, ``_row`` of rows identical to the stored one
    new_versions : ``_file``, ``_row`` of rows that change a stored school (``versioned`` only)
    """
    is_stored = groups["_stored"].to_numpy(dtype=bool)
    new = groups.loc[~is_stored].sort_values(["_file", "_row"], kind="stable")
    later = new.duplicated(key_cols, keep="first").to_numpy()
    exact = new.duplicated(data_cols, keep="first").to_numpy()[later]
    first = new.groupby(key_cols, dropna=False, sort=False)[["_file", "_row"]].transform("first").loc[later]
    inside = new.loc[later, ["_file", "_row"]].assign(
        rule=np.where(exact, "duplicate", "duplicate_key"),
        detail=[f"{'copy of' if e else 'same key as'} row {r} of {f}"
                for e, f, r in zip(exact, first["_file"], first["_row"], strict=True)])
    met = new.loc[~later].merge(groups.loc[is_stored, data_cols], on=key_cols, how="left",
                                suffixes=("", "_in_store"), indicator=True)
    at_store = (met["_merge"] == "both").to_numpy()
    same = np.ones(len(met), dtype=bool)
    for column in (c for c in data_cols if c not in key_cols):
        ours, theirs = met[column], met[f"{column}_in_store"]
        same &= ((ours == theirs) | (ours.isna() & theirs.isna())).to_numpy(dtype=bool)
    changed = at_store & ~same
    conflicts = met.loc[changed & (not versioned), ["_file", "_row"]].assign(
        rule="duplicate_key", detail=f"same key as {STORE_DETAIL}")
    quarantined = pd.concat([inside, conflicts], ignore_index=True)
    quarantined["rules"] = quarantined["rule"]
    versions = met.loc[changed & versioned, ["_file", "_row"]]
    return quarantined, met.loc[at_store & same, ["_file", "_row"]], versions


def export_start(con: duckdb.DuckDBPyConnection, calendar_files: list[Path]) -> dt.date | None:
    """The first day (:func:`term_start`) of the earliest term among the export's clean calendar rows.

    Terms with fewer than a tenth of the largest term's rows are strays, not terms of the
    export. None when there is no calendar row.
    """
    if not calendar_files:
        return None
    paths = "[" + ", ".join(f"'{p}'" for p in calendar_files) + "]"
    counts = dict(con.execute(f"SELECT term, count(*) FROM read_parquet({paths}) GROUP BY term").fetchall())
    if not counts:
        return None
    largest = max(counts.values())
    terms = [t for t, n in counts.items() if n >= _TERM_SHARE * largest]
    return term_start(min(terms, key=parse_term))


def date_versions(con: duckdb.DuckDBPyConnection, files: list[Path], school_ids: list[str], day: dt.date) -> None:
    """Set ``valid_from`` = ``day`` on the rows of ``school_ids`` in this run's schools ``files``
    (unless the export gave the row its own ``valid_from``).

    The files are rewritten in place: they are the run's own, not yet published.
    """
    ids = "[" + ", ".join(f"'{s}'" for s in school_ids) + "]"
    dated = (f"CASE WHEN list_contains({ids}, school_id) THEN coalesce({VALID_FROM}, DATE '{day.isoformat()}') "
             f"ELSE {VALID_FROM} END AS {VALID_FROM}")
    for path in files:
        temporary = path.with_name(path.name + ".tmp")
        con.execute(f"COPY (SELECT * REPLACE ({dated}) FROM read_parquet('{path}')) TO '{temporary}' "
                    "(FORMAT parquet, COMPRESSION zstd)").fetchall()
        os.replace(temporary, path)


def has_valid_from(files: list[Path]) -> bool:
    """Whether any of the schools files carries ``valid_from`` (stores written before versions do not)."""
    return any(VALID_FROM in pq.read_schema(p).names for p in files)


def in_force_order(alias: str = "") -> str:
    """The order that puts a school's version in force first: the latest ``valid_from``, NULL (always) last;
    on the same date, the later run's file (part files are named by batch, which sorts in run order)."""
    prefix = f"{alias}." if alias else ""
    return f"{prefix}{VALID_FROM} DESC NULLS LAST, {prefix}filename DESC"


def schools_in_force(files: list[Path], as_of: dt.date | None = None) -> str:
    """SQL over the validated schools ``files``: one row per school, the version in force at ``as_of``.

    Without ``as_of``, the latest version. The contract columns only (no ``valid_from``).
    """
    paths = "[" + ", ".join(f"'{p}'" for p in files) + "]"
    source = f"read_parquet({paths}, union_by_name = true, filename = true, hive_partitioning = false)"
    if not has_valid_from(files):
        return f"SELECT * EXCLUDE (filename) FROM {source}"
    when = f"WHERE {VALID_FROM} IS NULL OR {VALID_FROM} <= DATE '{as_of.isoformat()}'" if as_of else ""
    return (f"SELECT * EXCLUDE (filename, {VALID_FROM}) FROM {source} {when} "
            f"QUALIFY row_number() OVER (PARTITION BY school_id ORDER BY {in_force_order()}) = 1")
