"""The randomised wait-list plan: which schools get alerts now, and what the pilot can detect.

A pilot randomises *schools* (clusters), not children: teachers act school-wide,
so a child's arm is the school's. Half the schools (``share``) get alerts from
the pilot term (``alert_now``); the others are scored too but see alerts only
from the next term (``wait_list``). The effect is then read among *flagged*
students, in both arms, by the same flag rule.

Functions
---------
* :func:`assign_schools` — stratified, seeded assignment, independent of row order
  (strata from :mod:`risk.impact.strata`).
* :func:`icc_from_past_terms` — school-level intra-class correlation of dropout
  (one-way ANOVA estimator), per term and pooled.
* :func:`minimum_detectable_effect` and :func:`power_for_effect` — what a plan
  of that many schools can see, with the design effect of clustering.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from risk.errors import ConfigError, ContractError
from risk.impact.strata import merge_small_strata, stratum_labels

__all__ = [
    "ALERT_NOW",
    "ARMS",
    "WAIT_LIST",
    "DetectableEffect",
    "IccEstimate",
    "assign_schools",
    "design_effect",
    "icc_from_past_terms",
    "minimum_detectable_effect",
    "power_for_effect",
]

ALERT_NOW = "alert_now"
WAIT_LIST = "wait_list"
ARMS: tuple[str, str] = (ALERT_NOW, WAIT_LIST)

def _treated_counts(sizes: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Schools to put in ``alert_now`` per stratum: floor or ceil of share × n.

    The ceiling is drawn with probability equal to the fractional part, so every
    school's chance of ``alert_now`` is exactly ``share``, even in a stratum of one
    (a fixed rounding would always send odd schools out to the same arm).
    """
    exact = share * sizes
    base = np.floor(exact + 1e-9)
    extra = rng.random(len(sizes)) < (exact - base)
    return (base + extra).astype(np.int64)


def assign_schools(schools: pd.DataFrame, share: float, strata: list[str], seed: int) -> pd.DataFrame:
    """Assign schools at random, within strata, to ``alert_now`` or ``wait_list``.

    Parameters
    ----------
    schools : DataFrame of shape (n_schools, ≥1)
        ``school_id`` (unique), plus the strata columns: ``province`` (text) and
        ``size`` (enrolled students, a count, bucketed by :func:`risk.impact.strata.size_bucket`).
    share : float in (0, 1)
        Share of schools that get alerts now.
    strata : list of column names
        Stratify by these (``[]``: one stratum). ``"size"`` means its OBEC class.
    seed : int
        Seed of the draw. The rows are sorted by ``school_id`` first, so the same
        schools and seed give the same plan whatever the input's row order.

    Returns
    -------
    DataFrame of shape (n_schools, 3): ``school_id``, ``arm`` (``alert_now`` or
    ``wait_list``), ``stratum`` (the joined strata labels), sorted by ``school_id``.
    In each stratum of n schools, floor(share·n) or ceil(share·n) are
    ``alert_now`` (exactly share·n when that is whole). Strata too small to hold
    both arms are merged first (:func:`merge_small_strata`).
    """
    if not 0.0 < share < 1.0:
        raise ConfigError(f"share must be between 0 and 1 (exclusive), got {share}")
    if "school_id" not in schools.columns:
        raise ContractError("schools: column 'school_id' is required")
    if schools["school_id"].duplicated().any():
        raise ContractError("schools: each school_id must appear once")
    ordered = schools.sort_values("school_id", kind="stable").reset_index(drop=True)
    stratum = merge_small_strata(stratum_labels(ordered, strata), share)
    rng = np.random.default_rng(seed)
    names, codes = np.unique(stratum.to_numpy(), return_inverse=True)
    sizes = np.bincount(codes, minlength=len(names))
    treated = _treated_counts(sizes, share, rng)
    # A random key per school, ranked within its stratum: the lowest `treated` keys get alerts now.
    key = rng.random(len(ordered))
    by_key = np.lexsort((key, codes))  # stratum by stratum, keys ascending within each
    rank = np.empty(len(ordered), dtype=np.int64)
    rank[by_key] = np.arange(len(ordered)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    arm = np.where(rank < treated[codes], ALERT_NOW, WAIT_LIST)
    return pd.DataFrame({"school_id": ordered["school_id"].to_numpy(), "arm": arm,
                         "stratum": stratum.to_numpy()})


@dataclass(frozen=True)
class IccEstimate:
    """School-level intra-class correlation of a 0/1 outcome.

    Attributes
    ----------
    icc : float
        Pooled estimate over terms, on the proportion scale, truncated at 0.
    per_term : dict
        Term -> its own ANOVA estimate (truncated at 0).
    n_students, n_schools, n_terms : int
        Rows used, distinct schools and terms.
    """

    icc: float
    per_term: dict[str, float]
    n_students: int
    n_schools: int
    n_terms: int


def _anova_parts(y: np.ndarray, school: np.ndarray) -> tuple[float, float, float, float, float]:
    """Between and within sums of squares, their degrees of freedom, and Σn_i²/N of one term."""
    _, codes = np.unique(school, return_inverse=True)
    n_i = np.bincount(codes).astype(float)
    sums = np.bincount(codes, weights=y)
    means = sums / n_i
    grand = y.mean()
    ssb = float((n_i * (means - grand) ** 2).sum())
    ssw = float(((y - means[codes]) ** 2).sum())
    return ssb, ssw, len(n_i) - 1.0, len(y) - len(n_i), float((n_i**2).sum() / len(y))


def _icc_from_parts(ssb: float, ssw: float, df_b: float, df_w: float, n0: float) -> float:
    """ANOVA estimator (MSB − MSW) / (MSB + (n0 − 1)·MSW), truncated at 0."""
    if df_b <= 0 or df_w <= 0:
        return float("nan")
    msb, msw = ssb / df_b, ssw / df_w
    denominator = msb + (n0 - 1.0) * msw
    return float(max(0.0, (msb - msw) / denominator)) if denominator > 0 else 0.0


def icc_from_past_terms(outcomes: pd.DataFrame) -> IccEstimate:
    """School-level intra-class correlation of dropout, from past terms' outcomes.

    Parameters
    ----------
    outcomes : DataFrame of shape (n_students, 3)
        ``school_id``, ``term`` and ``dropped_out`` (0/1), one row per student and
        term. Pass only the students the pilot will compare (the flagged ones):
        clustering among them is what widens the CI.

    Returns
    -------
    IccEstimate
        Per term, the one-way ANOVA estimator with unequal cluster sizes,
        ``(MSB − MSW) / (MSB + (n0 − 1) MSW)`` with ``n0 = (N − Σn_i²/N)/(k − 1)``.
        Pooled: the sums of squares and degrees of freedom of all terms added
        (school × term as clusters, each term about its own mean, so a change of
        dropout level between terms is not read as clustering), then the same
        formula. Estimates below 0 are set to 0.
    """
    missing = {"school_id", "term", "dropped_out"} - set(outcomes.columns)
    if missing:
        raise ContractError(f"outcomes: missing column(s) {', '.join(sorted(missing))}")
    per_term: dict[str, float] = {}
    totals = np.zeros(4)
    weighted_n0 = 0.0
    for term, rows in outcomes.groupby("term", sort=True):
        y = rows["dropped_out"].to_numpy(dtype=float)
        ssb, ssw, df_b, df_w, sum_sq_over_n = _anova_parts(y, rows["school_id"].to_numpy())
        n0 = (len(y) - sum_sq_over_n) / df_b if df_b > 0 else float("nan")
        per_term[str(term)] = _icc_from_parts(ssb, ssw, df_b, df_w, n0)
        totals += (ssb, ssw, df_b, df_w)
        weighted_n0 += len(y) - sum_sq_over_n  # Σ over terms of (N − Σn_i²/N)
    ssb, ssw, df_b, df_w = totals
    pooled = _icc_from_parts(ssb, ssw, df_b, df_w, weighted_n0 / df_b if df_b > 0 else 0.0)
    return IccEstimate(icc=pooled, per_term=per_term, n_students=len(outcomes),
                       n_schools=int(outcomes["school_id"].nunique()), n_terms=len(per_term))


@dataclass(frozen=True)
class DetectableEffect:
    """The smallest effect a plan detects with the given power.

    Attributes
    ----------
    absolute_change : float
        Change in the dropout rate of flagged students (alert_now − wait_list), as
        a proportion (−0.03 = three percentage points fewer); negative = a fall.
    relative_change : float
        ``absolute_change / base_rate`` (−0.2 = a fifth fewer dropouts).
    standard_error : float
        SE of the difference in dropout rates at that effect (proportion).
    design_effect : float
        ``1 + ((1 + cv²)·m − 1)·icc``: variance inflation from clustering (in the
        wait-list arm; in alert schools a relative effect shrinks the school spread too).
    mean_students, cv_students : float
        Mean flagged students per school (m) and the coefficient of variation of
        that count (0 when only the mean was given).
    n_schools, share, base_rate, icc, alpha, power
        The inputs.
    """

    absolute_change: float
    relative_change: float
    standard_error: float
    design_effect: float
    mean_students: float
    cv_students: float
    n_schools: int
    share: float
    base_rate: float
    icc: float
    alpha: float
    power: float


def design_effect(mean_students: float, cv_students: float, icc: float) -> float:
    """Variance inflation of a cluster design with unequal cluster sizes.

    ``1 + ((1 + cv²)·m − 1)·icc`` (Eldridge, Ashby & Kerry 2006); with equal
    sizes (cv = 0) the familiar ``1 + (m − 1)·icc``. Unitless.
    """
    return 1.0 + ((1.0 + cv_students**2) * mean_students - 1.0) * icc


def _cluster_sizes(students_per_school: float | np.ndarray | pd.Series) -> tuple[float, float]:
    """Mean and coefficient of variation (population SD / mean) of students per school."""
    sizes = np.atleast_1d(np.asarray(students_per_school, dtype=float))
    if sizes.size == 0 or (sizes < 0).any() or sizes.mean() <= 0:
        raise ConfigError("students_per_school must be a positive mean or a list of counts ≥0")
    if sizes.size == 1:
        return float(sizes[0]), 0.0
    return float(sizes.mean()), float(sizes.std() / sizes.mean())


def _check_plan(n_schools: int, share: float, base_rate: float, icc: float) -> None:
    if n_schools < 4:
        raise ConfigError(f"a pilot needs at least 4 schools, got {n_schools}")
    if not 0.0 < share < 1.0:
        raise ConfigError(f"share must be between 0 and 1 (exclusive), got {share}")
    if not 0.0 < base_rate < 1.0:
        raise ConfigError(f"base_rate must be a proportion between 0 and 1, got {base_rate}")
    if not 0.0 <= icc < 1.0:
        raise ConfigError(f"icc must be in [0, 1), got {icc}")


def _se_and_power(relative_change: float, n_schools: int, sizes: tuple[float, float], share: float,
                  base_rate: float, icc: float, alpha: float) -> tuple[float, float]:
    """SE of the difference in rates, and two-sided power, at a relative change.

    In the wait-list arm the variance of the rate is p0(1−p0)·deff / students, deff
    from :func:`design_effect`; in the alert arm the same with its own rate
    p1 = p0·(1 + change), and the school spread scaled as the rates are. Power uses
    Student's t with n_schools − 2 degrees of freedom, as the clustered test has.
    """
    mean, cv = sizes
    treated_rate = base_rate * (1.0 + relative_change)
    # Per arm, [p(1−p) + σ_b²·((1 + cv²)·m − 1)] / students in the arm, σ_b² the between-school
    # variance of rates: icc·p0(1−p0) in wait-list schools. A relative effect scales every
    # school's rate, so in alert schools σ_b² shrinks by (1 + change)².
    between = icc * base_rate * (1 - base_rate)
    excess = (1.0 + cv**2) * mean - 1.0
    students = n_schools * mean
    variance = ((base_rate * (1 - base_rate) + between * excess) / (1 - share)
                + (treated_rate * (1 - treated_rate) + (1 + relative_change) ** 2 * between * excess)
                / share) / students
    se = float(np.sqrt(variance))
    df = n_schools - 2
    critical = stats.t.ppf(1 - alpha / 2, df)
    shift = abs(base_rate * relative_change) / se
    # A shifted central t (Bloom's multiplier t_{1-α/2} + t_{power}); scipy's noncentral t
    # returns NaN for the large shifts of big plans.
    power = stats.t.sf(critical - shift, df) + stats.t.cdf(-critical - shift, df)
    return se, float(power)


def minimum_detectable_effect(n_schools: int, students_per_school: float | np.ndarray | pd.Series,
                              share: float, base_rate: float, icc: float, alpha: float = 0.05,
                              power: float = 0.8) -> DetectableEffect:
    """The smallest fall in flagged students' dropout the pilot detects with ``power``.

    Parameters
    ----------
    n_schools : int
        Schools in the pilot, both arms.
    students_per_school : float, or array-like of shape (n_schools,)
        Flagged students per school: their mean, or the counts themselves (then
        their spread enters the design effect through the coefficient of variation).
    share : float in (0, 1)
        Share of schools in ``alert_now``.
    base_rate : float in (0, 1)
        Dropout rate of flagged students without alerts (proportion).
    icc : float in [0, 1)
        School-level intra-class correlation among flagged students
        (:func:`icc_from_past_terms`).
    alpha, power : float
        Two-sided test level and the power wanted.

    Returns
    -------
    DetectableEffect
        Absolute and relative change (negative: a fall). NaN when even halving
        dropout to zero would not reach ``power``.
    """
    _check_plan(n_schools, share, base_rate, icc)
    sizes = _cluster_sizes(students_per_school)

    def shortfall(change: float) -> float:
        return _se_and_power(change, n_schools, sizes, share, base_rate, icc, alpha)[1] - power

    change = float("nan")
    if shortfall(-1.0) >= 0:
        change = float(optimize.brentq(shortfall, -1.0, -1e-9, xtol=1e-10))
    se = _se_and_power(change if change == change else -1.0, n_schools, sizes, share,
                       base_rate, icc, alpha)[0]
    return DetectableEffect(
        absolute_change=float(change * base_rate), relative_change=change, standard_error=se,
        design_effect=float(design_effect(*sizes, icc)), mean_students=sizes[0], cv_students=sizes[1],
        n_schools=int(n_schools), share=float(share), base_rate=float(base_rate), icc=float(icc),
        alpha=float(alpha), power=float(power))


def power_for_effect(n_schools: int, students_per_school: float | np.ndarray | pd.Series,
                     share: float, base_rate: float, icc: float, relative_change: float,
                     alpha: float = 0.05) -> float:
    """Predicted power to detect a relative change in flagged students' dropout.

    Same inputs as :func:`minimum_detectable_effect`, with ``relative_change``
    (−0.2 = a fifth fewer dropouts; ≥ −1). Returns the probability (0–1) that the
    two-sided clustered test at level ``alpha`` rejects no effect.
    """
    _check_plan(n_schools, share, base_rate, icc)
    if relative_change < -1.0:
        raise ConfigError(f"relative_change cannot be below -1 (no dropout at all), got {relative_change}")
    sizes = _cluster_sizes(students_per_school)
    return _se_and_power(relative_change, n_schools, sizes, share, base_rate, icc, alpha)[1]
