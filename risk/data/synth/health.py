"""Weight and height, measured twice a term at school.

Height follows the WHO 2007 median for age and sex (under-five standard at 3–4
years) shifted by a per-student z (poorer and less healthy children are shorter,
Thai poor children shorter than the reference overall); weight is BMI × height²,
with the BMI median for age and sex shifted by a z that falls with poverty and
with illness.
"""

from __future__ import annotations

import numpy as np

from risk.data.synth.frames import Batch
from risk.data.synth.term import TermView

__all__ = ["health_batch", "median_bmi", "median_height_cm"]

# WHO medians at whole years 3–19 (3–4: WHO Child Growth Standards; 5–19: WHO 2007 reference).
_AGES = np.arange(3, 20, dtype=np.float64)
_HEIGHT = {
    0: [96.1, 103.3, 110.3, 116.0, 121.7, 127.3, 132.6, 137.8, 143.1, 149.1, 156.0, 163.2, 169.0, 172.9,
        175.2, 176.1, 176.5],
    1: [95.1, 102.7, 109.6, 115.1, 120.8, 126.6, 132.5, 138.6, 145.0, 151.2, 156.4, 159.8, 161.7, 162.5,
        162.9, 163.1, 163.2],
}  # fmt: skip
_BMI = {
    0: [15.6, 15.3, 15.3, 15.3, 15.5, 15.7, 16.0, 16.4, 16.9, 17.5, 18.2, 19.0, 19.8, 20.5, 21.1, 21.7, 22.2],
    1: [15.4, 15.2, 15.2, 15.3, 15.4, 15.7, 16.1, 16.6, 17.2, 18.0, 18.8, 19.6, 20.2, 20.7, 21.0, 21.3, 21.4],
}  # fmt: skip
_HEIGHT_CV = 0.045
_BMI_Z_SCALE = 0.11


def median_height_cm(age: np.ndarray, sex: np.ndarray) -> np.ndarray:
    """WHO median height (cm) at ``age`` years for sex 0 = male, 1 = female."""
    return np.where(sex == 0, np.interp(age, _AGES, _HEIGHT[0]), np.interp(age, _AGES, _HEIGHT[1]))


def median_bmi(age: np.ndarray, sex: np.ndarray) -> np.ndarray:
    return np.where(sex == 0, np.interp(age, _AGES, _BMI[0]), np.interp(age, _AGES, _BMI[1]))


def health_batch(view: TermView, rng: np.random.Generator) -> Batch:
    """Two measurements per student still at school on the school's measuring days."""
    hc = view.cfg.health
    pop = view.pop
    parts = []
    for weeks in hc.measure_weeks:
        day_idx = view.school_day(tuple(weeks), rng)
        rows = np.flatnonzero(view.present_on(day_idx))
        parts.append((rows, view.grid.days[day_idx[rows]]))
    rows = np.concatenate([p[0] for p in parts])
    dates = np.concatenate([p[1] for p in parts]).astype(np.int32)
    order = np.lexsort((dates, rows))
    rows, dates = rows[order], dates[order]
    s = view.act[rows]
    n = rows.shape[0]
    age = (dates - pop.birth[s]) / 365.25
    sex = pop.sex[s]
    height = median_height_cm(age, sex) * (1 + _HEIGHT_CV * pop.height_z[s]) + rng.normal(0, hc.measure_error_cm, n)
    bmi_z = pop.bmi_z[s] + hc.bmi_on["health"] * (pop.health[s] - pop.hea0[s])
    bmi = median_bmi(age, sex) * np.exp(_BMI_Z_SCALE * bmi_z)
    weight = bmi * (height / 100) ** 2 + rng.normal(0, hc.measure_error_kg, n)
    return Batch(
        "health",
        {"student_id": s, "measured_on": dates, "weight_kg": np.round(np.clip(weight, 8, 150), 1),
         "height_cm": np.round(np.clip(height, 70, 210), 1)},
    )
