"""Past dropout rates of each school and district, from earlier terms only.

At ``as_of`` in term t, the outcome of every term before t is known (the register
of term t says who came back). A school's rate is smoothed toward its district's,
and a district's toward the national rate, so a small school's one dropout does
not read as 50%: rate = (dropouts + m × prior) / (students + m).
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd

from risk.config import Settings
from risk.data.contract import previous_term
from risk.data.incremental import DERIVED
from risk.features.base import AsOf
from risk.features.sources import connect, view_validated
from risk.labels import LabelPolicy, dropout_labels

__all__ = ["context_rates", "open_validated"]



def context_rates(con: duckdb.DuckDBPyConnection, validated: Path, as_of: AsOf, *, history_terms: int,
                  prior_students: float, policy: LabelPolicy) -> pd.DataFrame:
    """``school_id``, ``school_rate``, ``district_rate`` for ``as_of``'s term, cached under ``validated``.

    ``con`` must have views over all students' enrollments and the schools table (as in force at
    ``as_of``: a school's district is the one it has then).
    """
    cache = validated / DERIVED / "context_rates" / f"{as_of.term}-h{history_terms}-m{prior_students:g}.parquet"
    if cache.exists():
        return pd.read_parquet(cache)
    terms, term = [], as_of.term
    for _ in range(history_terms):
        term = previous_term(term)
        terms.append(term)
    labels = pd.concat([dropout_labels(con, t, policy) for t in terms], ignore_index=True)
    con.register("_labels", labels[labels["dropped_out"].notna()].astype({"dropped_out": "float64"}))
    rates = con.execute(f"""
        WITH lab AS (
            SELECT e.school_id, s.district_code, l.dropped_out
            FROM _labels l JOIN enrollments e ON e.student_key = l.student_key AND e.term = l.term
            JOIN schools s ON s.school_id = e.school_id),
        national AS (SELECT coalesce(avg(dropped_out), 0) AS rate FROM lab),
        district AS (
            SELECT district_code, (sum(dropped_out) + {prior_students} * (SELECT rate FROM national))
                                  / (count(*) + {prior_students}) AS district_rate
            FROM lab GROUP BY district_code),
        school AS (SELECT school_id, sum(dropped_out) AS drops, count(*) AS n FROM lab GROUP BY school_id)
        SELECT s.school_id,
               (coalesce(sc.drops, 0) + {prior_students} * coalesce(d.district_rate, (SELECT rate FROM national)))
                 / (coalesce(sc.n, 0) + {prior_students}) AS school_rate,
               coalesce(d.district_rate, (SELECT rate FROM national)) AS district_rate
        FROM schools s LEFT JOIN school sc USING (school_id) LEFT JOIN district d USING (district_code)
        ORDER BY s.school_id
    """).df()
    con.unregister("_labels")
    if labels["dropped_out"].notna().sum() == 0:
        rates[["school_rate", "district_rate"]] = float("nan")  # no history yet: unknown, not zero
    cache.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed whole: another command reading or writing the same cache sees all or nothing.
    partial = cache.with_name(f"{cache.name}.{os.getpid()}.partial")
    rates.to_parquet(partial, index=False)
    partial.replace(cache)
    return rates


def open_validated(validated: Path, as_of: AsOf, settings: Settings, threads: int | None = None
                   ) -> duckdb.DuckDBPyConnection:
    """A connection with views over every validated table and the ``context_rates`` of ``as_of``."""
    con = connect(threads or settings.features.threads, settings.data.duckdb_memory_limit)
    view_validated(con, validated, as_of=as_of.date)
    rates = context_rates(con, validated, as_of, history_terms=settings.features.context_history_terms,
                          prior_students=settings.features.context_prior_students, policy=settings.labels)
    con.register("context_rates", rates)
    return con
