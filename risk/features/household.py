"""Household features from the CCT poverty screening (dated ``screened_on``).

Columns a feature may aggregate (see :mod:`risk.features.events` for the kinds):
the contract's household columns, and

- ``income_per_capita_baht``: monthly household income / household size
  (the CCT line is about 3,000 baht per person per month)
- ``dependency_ratio``: dependants / household size
- ``proxy_means_score``: 0–7, one point each for a house in poor condition (two if
  dilapidated), no land, water from rain or river, no electricity, no vehicle,
  and more than half the household dependants; higher is poorer
- ``lives_with_parents``: 1 with both parents, 0 otherwise
"""

from __future__ import annotations

from risk.features.base import AsOf, Part
from risk.features.catalog import Catalog
from risk.features.events import event_domain, ranked_events
from risk.features.kinds import EVENT_COLUMNS

__all__ = ["COLUMNS", "expression", "parts"]

COLUMNS = EVENT_COLUMNS["household"]  # what parts() selects; the catalog checks entries against it


def parts(as_of: AsOf, catalog: Catalog) -> list[Part]:
    return [ranked_events("hh_event", f"""
            SELECT student_key, screened_on AS event_date,
                   household_size, monthly_income_baht, house_condition, owns_land, water_source,
                   has_electricity, has_vehicle, dependants, lives_with, distance_to_school_km, cct_status,
                   monthly_income_baht / household_size AS income_per_capita_baht,
                   dependants / household_size AS dependency_ratio,
                   (CASE house_condition WHEN 'dilapidated' THEN 2 WHEN 'poor' THEN 1 ELSE 0 END)
                   + CAST(NOT owns_land AS INT) + CAST(water_source IN ('rain', 'river') AS INT)
                   + CAST(NOT has_electricity AS INT) + CAST(NOT has_vehicle AS INT)
                   + CAST(dependants > household_size / 2 AS INT) AS proxy_means_score,
                   CAST(lives_with = 'both_parents' AS INT) AS lives_with_parents
            FROM household
            WHERE screened_on <= {as_of.sql} AND student_key IN (SELECT student_key FROM cohort)
    """, COLUMNS)]


expression = event_domain("hh_event")
