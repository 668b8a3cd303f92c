"""Behaviour features from SDQ screenings and risk flags (dated ``screened_on``).

Columns (kinds in :mod:`risk.features.events`): the five SDQ sub-scales, the six
risk flags, and

- ``sdq_total``: total difficulties, emotional + conduct + hyperactivity + peer (0–40)
- ``risk_flag_count``: how many of the six risk flags are set (0–6)
"""

from __future__ import annotations

from risk.features.base import AsOf, Part
from risk.features.catalog import Catalog
from risk.features.events import event_domain, ranked_events
from risk.features.kinds import BEHAVIOUR_FLAGS, EVENT_COLUMNS, SDQ_SCALES

__all__ = ["COLUMNS", "FLAGS", "SDQ", "expression", "parts"]

SDQ = SDQ_SCALES
FLAGS = BEHAVIOUR_FLAGS
COLUMNS = EVENT_COLUMNS["behaviour"]  # what parts() selects; the catalog checks entries against it


def parts(as_of: AsOf, catalog: Catalog) -> list[Part]:
    flags = " + ".join(f"CAST({f} AS INT)" for f in FLAGS)
    return [ranked_events("behaviour_event", f"""
            SELECT student_key, screened_on AS event_date, {', '.join(SDQ)},
                   {', '.join(f'CAST({f} AS INT) AS {f}' for f in FLAGS)},
                   sdq_emotional + sdq_conduct + sdq_hyperactivity + sdq_peer AS sdq_total,
                   {flags} AS risk_flag_count
            FROM behaviour
            WHERE screened_on <= {as_of.sql} AND student_key IN (SELECT student_key FROM cohort)
    """, COLUMNS)]


expression = event_domain("behaviour_event")
