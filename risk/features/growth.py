"""WHO 2007 growth-reference z-scores (5–19 years) for BMI-for-age and height-for-age.

The reference is the WHO Growth Reference 2007 for school-aged children and
adolescents (de Onis et al., Bull World Health Organ 2007;85:660–667). Its
published monthly L, M, S values (61–228 months, boys and girls) ship with the
package in ``risk/features/reference/who2007_lms.csv`` (see the README there).

Inputs of :func:`who_zscores` (array-likes that broadcast together):

* ``indicator`` — ``"bmi_for_age"`` or ``"height_for_age"``.
* ``sex`` — ``"male"`` or ``"female"`` (the data contract's spelling); anything
  else (``None``, NaN, ``"unknown"``, …) counts as unknown.
* ``age_months`` — age in fractional months, as WHO counts it: days since birth
  divided by 30.4375 (see :func:`age_in_months`).
* ``value`` — BMI in kg/m² for ``bmi_for_age``; standing height in cm for
  ``height_for_age``.

Output: a float64 array of z-scores (SD units), NaN where the age is outside
61–228 months, the sex is unknown, or the value is missing or not positive.
Z-scores are not rounded and not flagged; WHO's plausibility limits are given
as constants below for callers that want to drop implausible measurements.
"""

from __future__ import annotations

import csv
import functools
from importlib.resources import files

import numpy as np
from numpy.typing import ArrayLike, NDArray

INDICATORS: tuple[str, ...] = ("bmi_for_age", "height_for_age")
SEXES: tuple[str, ...] = ("male", "female")

# The 5–19-year reference covers 61 to 228 completed months, both ends included;
# younger children belong to the WHO 2006 standard, which this module does not hold.
AGE_MIN_MONTHS = 61
AGE_MAX_MONTHS = 228

# WHO counts age in months as days / (365.25 / 12).
DAYS_PER_MONTH = 30.4375

# WHO 2007 cut-offs (de Onis et al. 2007; WHO AnthroPlus manual), in SD units.
# BMI-for-age: thinness below -2 SD, severe thinness below -3 SD.
THINNESS_Z = -2.0
SEVERE_THINNESS_Z = -3.0
# BMI-for-age: overweight above +1 SD (≈ BMI 25 at 19 years),
# obesity above +2 SD (≈ BMI 30 at 19 years).
OVERWEIGHT_Z = 1.0
OBESITY_Z = 2.0
# Height-for-age: stunting below -2 SD, severe stunting below -3 SD.
STUNTING_Z = -2.0
SEVERE_STUNTING_Z = -3.0

# WHO AnthroPlus flags z-scores beyond these as biologically implausible
# (likely measurement or data-entry errors). Not applied here; callers decide.
BMI_FOR_AGE_IMPLAUSIBLE_ABS_Z = 5.0
HEIGHT_FOR_AGE_IMPLAUSIBLE_ABS_Z = 6.0

_LMS_RESOURCE = ("risk.features.reference", "who2007_lms.csv")
_N_MONTHS = AGE_MAX_MONTHS - AGE_MIN_MONTHS + 1


@functools.cache
def lms_table(indicator: str) -> NDArray[np.float64]:
    """Return the LMS table of one indicator as an array [sex, month - 61, (L, M, S)].

    Sex index 0 is male, 1 is female. Read once per process from the packaged CSV.
    """
    _check_indicator(indicator)
    table = np.full((len(SEXES), _N_MONTHS, 3), np.nan)
    package, name = _LMS_RESOURCE
    with (files(package) / name).open("r", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["indicator"] != indicator:
                continue
            month = int(row["age_months"]) - AGE_MIN_MONTHS
            table[SEXES.index(row["sex"]), month] = (
                float(row["L"]), float(row["M"]), float(row["S"]),
            )
    if np.isnan(table).any():
        raise ValueError(
            f"{name}: {indicator} must cover every month "
            f"{AGE_MIN_MONTHS}–{AGE_MAX_MONTHS} for both sexes"
        )
    # The LMS formula divides by L; interpolated L can only be 0 if L changes sign.
    signs = np.sign(table[..., 0])
    if (signs == 0).any() or (signs != signs[:, :1]).any():
        raise ValueError(f"{name}: {indicator} has L = 0 or L changing sign")
    table.flags.writeable = False  # cached and shared: nobody may edit it
    return table


def age_in_months(birth_date: ArrayLike, measured_on: ArrayLike) -> NDArray[np.float64]:
    """Age in fractional months on the measuring day, as WHO counts it (days / 30.4375).

    NaN where either date is missing (NaT).
    """
    birth = np.asarray(birth_date, dtype="datetime64[D]")
    measured = np.asarray(measured_on, dtype="datetime64[D]")
    days = (measured - birth).astype("float64")
    days[np.isnat(birth) | np.isnat(measured)] = np.nan
    return days / DAYS_PER_MONTH


def who_zscores(
    indicator: str, sex: ArrayLike, age_months: ArrayLike, value: ArrayLike
) -> NDArray[np.float64]:
    """WHO 2007 z-scores of ``value`` for ``indicator`` at ``age_months`` (see module doc)."""
    _check_indicator(indicator)
    sex_arr, age, x = np.broadcast_arrays(
        np.asarray(sex),
        np.asarray(age_months, dtype=np.float64),
        np.asarray(value, dtype=np.float64),
    )
    sex_index = _sex_index(sex_arr)
    valid = (
        (sex_index >= 0)
        & (age >= AGE_MIN_MONTHS)  # False for NaN ages, so they drop out too
        & (age <= AGE_MAX_MONTHS)
        & (x > 0)  # False for NaN; the Box-Cox power is undefined at or below 0
    )
    z = np.full(x.shape, np.nan)
    if not valid.any():
        return z
    lms = _interpolated_lms(lms_table(indicator), sex_index[valid], age[valid])
    xv = x[valid]
    if indicator == "bmi_for_age":
        z[valid] = _restricted_lms_z(xv, *lms)
    else:
        # Height is normally distributed (L = 1), so WHO applies plain LMS at all z.
        z[valid] = _lms_z(xv, *lms)
    return z


def _check_indicator(indicator: str) -> None:
    if indicator not in INDICATORS:
        raise ValueError(f"indicator must be one of {INDICATORS}, not {indicator!r}")


def _sex_index(sex: NDArray) -> NDArray[np.intp]:
    """0 for male, 1 for female, -1 for anything else (unknown or missing)."""
    index = np.full(sex.shape, -1, dtype=np.intp)
    for i, name in enumerate(SEXES):
        index[sex == name] = i
    return index


def _interpolated_lms(
    table: NDArray[np.float64], sex_index: NDArray[np.intp], age: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """L, M, S linearly interpolated between the whole months around each age (as WHO does)."""
    offset = age - AGE_MIN_MONTHS
    low = np.floor(offset).astype(np.intp)
    # At exactly 228 months there is no next month; the weight on it is 0 anyway.
    high = np.minimum(low + 1, _N_MONTHS - 1)
    weight = (offset - low)[:, None]
    lms = table[sex_index, low] * (1.0 - weight) + table[sex_index, high] * weight
    return lms[:, 0], lms[:, 1], lms[:, 2]


def _lms_z(
    x: NDArray[np.float64], L: NDArray[np.float64], M: NDArray[np.float64], S: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Cole's LMS z-score: ((x / M) ** L - 1) / (L * S)."""
    return (np.power(x / M, L) - 1.0) / (L * S)


def _sd_line(
    k: float, L: NDArray[np.float64], M: NDArray[np.float64], S: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The measurement lying exactly k SD from the median: M (1 + L S k) ** (1 / L)."""
    return M * np.power(1.0 + L * S * k, 1.0 / L)


def _restricted_lms_z(
    x: NDArray[np.float64], L: NDArray[np.float64], M: NDArray[np.float64], S: NDArray[np.float64]
) -> NDArray[np.float64]:
    """LMS z-score with WHO's restricted application beyond ±3 SD.

    WHO fitted the skewed BMI curves only within ±3 SD; beyond that the LMS
    tail bunches up (positive side) or stretches (negative side). WHO's 2007
    macro therefore extends linearly, using the 2–3 SD distance on the
    same side as the unit: z = ±3 + (x - SD±3) / |SD±3 - SD±2|.
    """
    z = _lms_z(x, L, M, S)
    high = z > 3.0
    if high.any():
        lms = L[high], M[high], S[high]
        sd3, sd2 = _sd_line(3.0, *lms), _sd_line(2.0, *lms)
        z[high] = 3.0 + (x[high] - sd3) / (sd3 - sd2)
    low = z < -3.0
    if low.any():
        lms = L[low], M[low], S[low]
        sd3, sd2 = _sd_line(-3.0, *lms), _sd_line(-2.0, *lms)
        z[low] = -3.0 + (x[low] - sd3) / (sd2 - sd3)
    return z
