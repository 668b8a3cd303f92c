"""Aggregations shared by the dated-event domains (household, health, behaviour, assistance).

Each such domain builds one part with a row per event on or before ``as_of``:
``student_key``, ``event_date``, ``rnk`` (1 = the latest event) and its columns.
A catalog entry then asks for one of these kinds over one column:

- ``latest`` / ``previous``: the value at the latest / the one before
- ``change``: latest − previous; ``pct_change``: (latest − previous) / previous × 100
- ``window_sum`` / ``window_mean`` / ``window_count`` / ``window_max``: over events in the last ``days``
  days (``where``: an optional boolean column that must be true)
- ``days_since_latest`` / ``months_since_latest``: since the latest event (``where`` as above)
- ``latest_code``: position of the latest text value in the feature's ``categories``
- ``latest_flag``: 1 when the latest value compares true to ``threshold`` (``op``: lt, le, gt, ge)
"""

from __future__ import annotations

from collections.abc import Callable

from risk.features.base import AsOf, Part, sql_list
from risk.features.catalog import FeatureSpec

__all__ = ["EVENT_KINDS", "check_event", "event_domain", "event_expression", "ranked_events"]

EVENT_KINDS = ("latest", "previous", "change", "pct_change", "window_sum", "window_mean", "window_count",
               "window_max", "days_since_latest", "months_since_latest", "latest_code", "latest_flag")  # fmt: skip
_OPS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_NEEDS_COLUMN = set(EVENT_KINDS) - {"window_count", "days_since_latest", "months_since_latest"}


def ranked_events(name: str, events_sql: str) -> Part:
    """An event part: ``events_sql`` (one row per event, with ``student_key`` and ``event_date``)
    ranked per student, newest first (``rnk`` 1 is the latest event)."""
    return Part(name, f"""
        SELECT *, row_number() OVER (PARTITION BY student_key ORDER BY event_date DESC) AS rnk
        FROM ({events_sql})
    """)


def check_event(spec: FeatureSpec, columns: tuple[str, ...]) -> None:
    """Raise ValueError when ``spec.compute`` is not a valid event aggregation over ``columns``."""
    compute = spec.compute
    kind = compute["kind"]
    if kind not in EVENT_KINDS:
        raise ValueError(f"compute kind {kind!r} is not one of {', '.join(EVENT_KINDS)}")
    column = compute.get("column")
    if kind in _NEEDS_COLUMN and column not in columns:
        raise ValueError(f"compute.column {column!r} is not one of {', '.join(columns)}")
    where = compute.get("where")
    if where is not None and where not in columns:
        raise ValueError(f"compute.where {where!r} is not one of {', '.join(columns)}")
    if kind.startswith("window_") and not (isinstance(compute.get("days"), int) and compute["days"] > 0):
        raise ValueError("a window kind needs days: a positive whole number")
    if kind == "latest_code" and not spec.categories:
        raise ValueError("latest_code needs the feature's categories")
    if kind == "latest_flag" and (compute.get("op") not in _OPS or not isinstance(compute.get("threshold"), int | float)):
        raise ValueError("latest_flag needs op (lt, le, gt, ge) and a numeric threshold")


def event_expression(spec: FeatureSpec, as_of: AsOf) -> str:
    """The SQL aggregate computing ``spec`` over an event part (see the module docstring)."""
    c = spec.compute
    kind, column = c["kind"], c.get("column")
    value = f"CAST({column} AS DOUBLE)" if column else "NULL"
    where = f" AND CAST({c['where']} AS BOOLEAN)" if c.get("where") else ""
    latest = f"max({value}) FILTER (WHERE rnk = 1)"
    previous = f"max({value}) FILTER (WHERE rnk = 2)"
    in_window = f"event_date > {as_of.sql} - INTERVAL {int(c.get('days', 0))} DAY{where}"
    since = f"date_diff('day', max(event_date) FILTER (WHERE true{where}), {as_of.sql})"
    expressions = {
        "latest": latest,
        "previous": previous,
        "change": f"{latest} - {previous}",
        "pct_change": f"100.0 * ({latest} - {previous}) / nullif({previous}, 0)",
        "window_sum": f"coalesce(sum({value}) FILTER (WHERE {in_window}), 0)",
        "window_mean": f"avg({value}) FILTER (WHERE {in_window})",
        "window_count": f"count(*) FILTER (WHERE {in_window})",
        "window_max": f"max({value}) FILTER (WHERE {in_window})",
        "days_since_latest": since,
        "months_since_latest": f"{since} / 30.4375",
        "latest_flag": f"CAST({latest} {_OPS.get(c.get('op', 'lt'))} {c.get('threshold', 0)} AS DOUBLE)",
        "latest_code": (f"CAST(list_position({sql_list(spec.categories or [])}, "
                        f"max({column}) FILTER (WHERE rnk = 1)) - 1 AS DOUBLE)"),
    }
    return expressions[kind]


def event_domain(part: str, columns: tuple[str, ...]) -> tuple[Callable[[FeatureSpec], None],
                                                               Callable[[FeatureSpec, AsOf], tuple[str, str]]]:
    """The ``check`` and ``expression`` of a dated-event domain whose part is ``part``."""

    def check(spec: FeatureSpec) -> None:
        check_event(spec, columns)

    def expression(spec: FeatureSpec, as_of: AsOf) -> tuple[str, str]:
        return part, event_expression(spec, as_of)

    return check, expression
