"""Assistance features from payments and services (dated ``date``).

Columns (kinds in :mod:`risk.features.events`): ``amount_baht``, ``received``
(1 received, 0 allocated but not yet received), and

- ``amount_received_baht``: the amount when received, else 0
- ``is_cct``: 1 for a conditional-cash-transfer payment
"""

from __future__ import annotations

from risk.features.base import AsOf, Part
from risk.features.catalog import Catalog
from risk.features.events import event_domain, ranked_events
from risk.features.kinds import EVENT_COLUMNS

__all__ = ["COLUMNS", "expression", "parts"]

COLUMNS = EVENT_COLUMNS["assistance"]  # what parts() selects; the catalog checks entries against it


def parts(as_of: AsOf, catalog: Catalog) -> list[Part]:
    return [ranked_events("assistance_event", f"""
            SELECT student_key, date AS event_date, amount_baht, CAST(received AS INT) AS received,
                   CASE WHEN received THEN amount_baht ELSE 0 END AS amount_received_baht,
                   CAST(programme = 'cct' AS INT) AS is_cct
            FROM assistance
            WHERE date <= {as_of.sql} AND student_key IN (SELECT student_key FROM cohort)
    """, COLUMNS)]


expression = event_domain("assistance_event")
