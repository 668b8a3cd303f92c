"""Health features from weight and height measurements (dated ``measured_on``).

Columns a feature may aggregate (kinds in :mod:`risk.features.events`): ``weight_kg``,
``height_cm``, and

- ``bmi``: weight / height² (kg/m²)
- ``bmi_z``, ``height_z``: BMI-for-age and height-for-age z-scores of the WHO 2007
  reference for 5–19 years (:mod:`risk.features.growth`, the published LMS
  values), at the age on the day of measurement; missing outside 61–228 months
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from risk.features.base import AsOf, Part
from risk.features.catalog import Catalog
from risk.features.events import event_domain, ranked_events
from risk.features.growth import DAYS_PER_MONTH, who_zscores
from risk.features.kinds import EVENT_COLUMNS

__all__ = ["COLUMNS", "expression", "parts", "register_functions"]

COLUMNS = EVENT_COLUMNS["health"]  # what parts() selects; the catalog checks entries against it


def _who_z(indicator: pa.Array, sex: pa.Array, age_months: pa.Array, value: pa.Array) -> pa.Array:
    # DuckDB hands vectors of rows (nulls included); one indicator per call site.
    name = indicator[0].as_py() if len(indicator) and indicator[0].is_valid else "bmi_for_age"
    z = who_zscores(name, np.asarray(sex.to_numpy(zero_copy_only=False), dtype=object),
                    age_months.to_numpy(zero_copy_only=False), value.to_numpy(zero_copy_only=False))
    return pa.array(z, type=pa.float64(), from_pandas=True)  # NaN → NULL: missing stays missing


def register_functions(con: duckdb.DuckDBPyConnection) -> None:
    """Make ``who_z(indicator, sex, age_months, value)`` callable from SQL (one implementation: numpy)."""
    con.create_function("who_z", _who_z, [duckdb.sqltype("VARCHAR"), duckdb.sqltype("VARCHAR"),
                                          duckdb.sqltype("DOUBLE"), duckdb.sqltype("DOUBLE")],
                        duckdb.sqltype("DOUBLE"), type="arrow", side_effects=False, null_handling="special")


def parts(as_of: AsOf, catalog: Catalog) -> list[Part]:
    return [ranked_events("health_event", f"""
            SELECT h.student_key, h.measured_on AS event_date, h.weight_kg, h.height_cm,
                   h.weight_kg / ((h.height_cm / 100) ^ 2) AS bmi,
                   who_z('bmi_for_age', c.sex, date_diff('day', c.birth_date, h.measured_on) / {DAYS_PER_MONTH},
                         h.weight_kg / ((h.height_cm / 100) ^ 2)) AS bmi_z,
                   who_z('height_for_age', c.sex, date_diff('day', c.birth_date, h.measured_on) / {DAYS_PER_MONTH},
                         h.height_cm) AS height_z
            FROM health h JOIN cohort c USING (student_key)
            WHERE h.measured_on <= {as_of.sql}
    """, COLUMNS)]


expression = event_domain("health_event")
