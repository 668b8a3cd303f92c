"""One feature vector per enrolled student at ``as_of``: the single definition of every feature.

:func:`feature_plan` turns a catalog into SQL once: the parts it needs, in
dependency order, and the query that joins their aggregates onto the cohort.
:func:`build_features` runs that plan over whatever the connection's views
hold, so the batch path (a bucket of students from Parquet) and the online
paths (one student's payload) run the same code and the same SQL.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from risk.features.base import AsOf, Part
from risk.features.catalog import Catalog
from risk.features.domains import DOMAIN_MODULES
from risk.features.enrollment import cohort_sql
from risk.logs import get_logger

__all__ = ["KEY_COLUMNS", "FeaturePlan", "build_features", "feature_plan"]

log = get_logger(__name__)

KEY_COLUMNS = ("student_key", "as_of", "term", "school_id")


@dataclass(frozen=True)
class FeaturePlan:
    """The SQL computing a catalog at one ``as_of``.

    ``cohort`` selects the cohort; ``parts`` are the relations the features
    aggregate over, each after the parts it needs; ``query`` reads ``cohort``
    and the parts and returns the :data:`KEY_COLUMNS` then the catalog's
    enabled features, one row per cohort student sorted by ``student_key``.
    """

    as_of: AsOf
    cohort: str
    parts: tuple[Part, ...]
    query: str

    def as_one_statement(self, before: tuple[tuple[str, str], ...] = ()) -> str:
        """The whole plan as one SELECT with a CTE per relation (``before``: (name, SQL) CTEs put first)."""
        ctes = [*before, ("cohort", self.cohort), *((p.name, p.sql) for p in self.parts)]
        return "WITH " + ",\n".join(f"{name} AS ({sql})" for name, sql in ctes) + "\n" + self.query


def feature_plan(as_of: AsOf, catalog: Catalog) -> FeaturePlan:
    """Plan the catalog's enabled features at ``as_of`` (pure: reads no data)."""
    by_part: dict[str, list[tuple[str, str]]] = {}
    for spec in catalog.enabled:
        part, expression = DOMAIN_MODULES[spec.domain].expression(spec, as_of)
        by_part.setdefault(part, []).append((spec.name, expression))
    joins, qualified = [], {}
    for i, (part, features) in enumerate(by_part.items()):
        columns = ", ".join(f"CAST({expr} AS DOUBLE) AS {name}" for name, expr in features)
        joins.append(f"LEFT JOIN (SELECT student_key, {columns} FROM {part} GROUP BY student_key) p{i} "
                     "ON p{i}.student_key = c.student_key".replace("{i}", str(i)))
        qualified.update({name: f"p{i}.{name}" for name, _ in features})
    names = ", ".join(qualified[n] for n in catalog.names) or "NULL AS no_features"
    query = (f"SELECT c.student_key, {as_of.sql} AS as_of, c.term, c.school_id, {names} "
             f"FROM cohort c {' '.join(joins)} ORDER BY c.student_key")
    return FeaturePlan(as_of, cohort_sql(as_of), _needed_parts(as_of, catalog, set(by_part)), query)


def build_features(con: duckdb.DuckDBPyConnection, as_of: AsOf, catalog: Catalog, *,
                   keep_shared: bool = False, plan: FeaturePlan | None = None,
                   stored: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Feature matrix for the cohort at ``as_of``, from the views on ``con``.

    The connection must hold views named after the contract tables (validated
    layout) and ``context_rates``. Returns one row per cohort student, sorted by
    ``student_key``: the :data:`KEY_COLUMNS` then the catalog's enabled features
    (float64, NaN where data is missing: missing is never filled with a value
    that means something else). With ``keep_shared``, parts that read reference
    tables only are built once per connection (the batch path's buckets share them).
    ``plan``: :func:`feature_plan` of ``as_of`` and ``catalog``, made once by a caller that builds
    many buckets. ``stored``: part name → a SELECT giving that part's rows from stored derived data
    (the batch path's per-term aggregates, :mod:`risk.features.aggregates`), run instead of its own SQL.
    """
    plan = plan or feature_plan(as_of, catalog)
    stored = stored or {}
    con.execute(f"CREATE OR REPLACE TEMP TABLE cohort AS {plan.cohort}")
    for part in plan.parts:
        if part.shared and keep_shared and _exists(con, part.name):
            continue
        started = time.perf_counter()
        con.execute(f"CREATE OR REPLACE TEMP TABLE {part.name} AS {stored.get(part.name, part.sql)}")
        log.debug("feature part built", part=part.name, seconds=round(time.perf_counter() - started, 3))
    started = time.perf_counter()
    frame = con.execute(plan.query).df()
    log.debug("features aggregated", students=len(frame), seconds=round(time.perf_counter() - started, 3))
    for name in catalog.names:
        if frame[name].dtype != np.float64:  # a column DuckDB typed otherwise (all NULL, say)
            frame[name] = frame[name].astype(np.float64)
    return frame


def _needed_parts(as_of: AsOf, catalog: Catalog, wanted: set[str]) -> tuple[Part, ...]:
    """The parts features use, and the parts those need, in dependency order."""
    available: dict[str, Part] = {}
    for module in dict.fromkeys(DOMAIN_MODULES.values()):
        available.update({p.name: p for p in module.parts(as_of, catalog)})
    ordered: dict[str, Part] = {}

    def visit(name: str) -> None:
        if name in ordered:
            return
        part = available[name]
        for need in part.needs:
            visit(need)
        ordered[name] = part

    for name in sorted(wanted):
        visit(name)
    return tuple(ordered.values())


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND temporary",
                            [table]).fetchone()[0])
