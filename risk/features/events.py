"""Aggregations shared by the dated-event domains (household, health, behaviour, assistance).

Each such domain builds one part with a row per event on or before ``as_of``:
``student_key``, ``event_date``, ``rnk`` (1 = the latest event) and its columns.

Two events on one day (two payments, say) are ranked by their values: the part's columns
(:data:`risk.features.kinds.EVENT_COLUMNS`, in that order) ascending, NULL last, so the one
with the smaller first differing value is the "latest". Rows still tied are equal in every
column a feature reads, so every feature is the same whichever comes first. The online twin
(:mod:`risk.online.rowwise_parts`) ranks the same way. (Before, only ``event_date`` ranked, and
such a tie followed the order of the records: batch values of ``latest``, ``previous`` and the
kinds built on them may differ from feature matrices cached before this order was fixed.)
A catalog entry then asks for one of these kinds over one column:

- ``latest`` / ``previous``: the value at the latest / the one before
- ``change``: latest − previous; ``pct_change``: (latest − previous) / previous × 100
- ``window_sum`` / ``window_mean`` / ``window_count`` / ``window_max``: over events in the last ``days``
  days (``where``: an optional 0/1 flag column of the domain, ``kinds.EVENT_FLAGS``, that must be 1)
- ``days_since_latest`` / ``months_since_latest``: since the latest event (``where`` as above)
- ``latest_code``: position of the latest text value in the feature's ``categories``
- ``latest_flag``: 1 when the latest value compares true to ``threshold`` (``op``: lt, le, gt, ge)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from risk.features.base import AsOf, Part, sql_list
from risk.features.catalog import FeatureSpec
from risk.features.kinds import EVENT_KINDS, EVENT_OPS

__all__ = ["EVENT_KINDS", "event_domain", "event_expression", "ranked_events"]


def ranked_events(name: str, events_sql: str, tie_break: Sequence[str]) -> Part:
    """An event part: ``events_sql`` (one row per event, with ``student_key``, ``event_date`` and the
    columns ``tie_break`` names) ranked per student, newest first (``rnk`` 1 is the latest event); events
    of one day by ``tie_break``'s values, ascending, NULL last (strings by their UTF-8 bytes)."""
    values = "".join(f", {column} ASC NULLS LAST" for column in tie_break)
    return Part(name, f"""
        SELECT *, row_number() OVER (PARTITION BY student_key ORDER BY event_date DESC{values}) AS rnk
        FROM ({events_sql})
    """)


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
        "latest_flag": f"CAST({latest} {EVENT_OPS.get(c.get('op', 'lt'))} {c.get('threshold', 0)} AS DOUBLE)",
        "latest_code": (f"CAST(list_position({sql_list(spec.categories or [])}, "
                        f"max({column}) FILTER (WHERE rnk = 1)) - 1 AS DOUBLE)"),
    }
    return expressions[kind]


def event_domain(part: str) -> Callable[[FeatureSpec, AsOf], tuple[str, str]]:
    """The ``expression`` of a dated-event domain whose part is ``part``: (part, SQL aggregate) of an entry.

    Its entries are checked, against the domain's columns, by :func:`risk.features.kinds.check_compute`.
    """

    def expression(spec: FeatureSpec, as_of: AsOf) -> tuple[str, str]:
        return part, event_expression(spec, as_of)

    return expression
