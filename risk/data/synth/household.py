"""CCT household screening: once an academic year, around June.

Per-capita income sits around the 3,000 baht/month CCT line and falls with
poverty (a job loss raises poverty, so the next screening shows less income).
The proxy-means items (house, land, water, electricity, vehicle, dependants)
come from poverty plus noise fixed per student, so a household looks alike from
one year to the next. ``lives_with`` is a multinomial logit on family
instability: grandparents are common (parents working in Bangkok).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from risk.data.synth.calendar import to_days
from risk.data.synth.frames import Batch
from risk.data.synth.population import sigmoid
from risk.data.synth.term import TermView

__all__ = ["CCT", "HOUSE", "LIVES_WITH", "WATER", "household_batch"]

HOUSE = ("good", "fair", "poor", "dilapidated")
WATER = ("piped", "well", "rain", "river", "bought")
LIVES_WITH = ("both_parents", "one_parent", "grandparents", "relatives", "alone", "institution")
CCT = ("extremely_poor", "poor", "not_poor", "not_screened")


def _screening_days(view: TermView, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Screening date per active student (int days) and whether the student was still at school.

    In semester 1 the school screens on a June school day; when the run starts in
    semester 2, the June screening of that academic year (before the run) is included.
    """
    hh = view.cfg.household
    grid = view.grid
    if grid.semester == 1:
        month = (grid.days.astype("datetime64[D]").astype("datetime64[M]").astype(int) % 12) + 1
        candidates = np.flatnonzero(month == hh.screening_month)
        per_school = candidates[rng.integers(0, candidates.shape[0], view.schools.n)]
        day_idx = per_school[view.school]
        return grid.days[day_idx], view.present_on(day_idx)
    year_ce = grid.year_be - 543
    first = to_days(dt.date(year_ce, hh.screening_month, 1))
    per_school = first + rng.integers(0, 28, view.schools.n)
    return per_school[view.school].astype(np.int32), np.ones(view.n, dtype=bool)


def household_batch(view: TermView, rng: np.random.Generator) -> Batch | None:
    """The screening rows of the term, or None when the term has no screening.

    Also stores each screened student's CCT status on the population (for assistance).
    """
    if view.grid.semester != 1 and not view.first:
        return None
    hh = view.cfg.household
    pop = view.pop
    dates, here = _screening_days(view, rng)
    rows = np.flatnonzero(here)
    s = view.act[rows]
    n = rows.shape[0]
    # A shock after the screening date does not show until the next screening.
    job_after = view.shocks.onset["job_loss"][rows] >= 0
    pov = np.where(job_after & (view.grid.semester == 1), view.shocks.poverty_before[rows], pop.poverty[s])
    size = np.clip(pop.hh_base[s] + rng.choice([-1, 0, 0, 0, 0, 0, 1], n), 1, 30)
    per_capita = hh.per_capita_median_baht * np.exp(hh.per_capita_poverty * pov + rng.normal(0, hh.per_capita_sd, n))
    income = np.round(per_capita * size, -2)
    income[rng.random(n) < hh.zero_income_share] = 0.0
    house = np.searchsorted(np.asarray(hh.house_cut), pov + pop.house_noise[s] + rng.normal(0, 0.3, n))
    rural = view.schools.rural[pop.school[s]]
    land = (hh.land_base + hh.land_on["poverty"] * pov + hh.land_on["rural"] * rural + pop.land_u[s]) > 0
    water_p = np.array([hh.water[w] for w in WATER])
    water = np.searchsorted(np.cumsum(water_p / water_p.sum()), pop.water_u[s], side="right").clip(0, 4)
    water = np.where(~rural & (pop.water_u[s] < 0.8), 0, water)  # towns are mostly piped
    electricity = pop.elec_u[s] >= sigmoid(hh.no_electricity_base + 0.4 * pov)
    vehicle = (hh.vehicle_base + hh.vehicle_poverty * pov + pop.veh_u[s]) > 0
    age = (dates[rows] - pop.birth[s]) / 365.25
    others = rng.binomial(np.maximum(size - 1, 0), hh.dependant_share)
    dependants = np.minimum((age < 15) + others, size)
    lives = _lives_with(view, s, age, hh.lives_with)
    per_capita_seen = income / size
    cct = np.where(per_capita_seen < hh.extreme_line_baht, 0, np.where(per_capita_seen < hh.cct_line_baht, 1, 2))
    cct = np.where(rng.random(n) < hh.not_screened_share, 3, cct).astype(np.int8)
    pop.cct[s] = np.where(cct == 3, pop.cct[s], cct)
    distance = np.round(pop.distance[s] * np.exp(rng.normal(0, 0.1, n)), 1).clip(0, 100)
    return Batch(
        "household",
        {"student_id": s, "screened_on": dates[rows].astype(np.int32), "household_size": size.astype(np.int64),
         "monthly_income_baht": income.astype(np.float64), "house_condition": house.astype(np.int8),
         "owns_land": land, "water_source": water.astype(np.int8), "has_electricity": electricity,
         "has_vehicle": vehicle, "dependants": dependants.astype(np.int64), "lives_with": lives,
         "distance_to_school_km": distance.astype(np.float64), "cct_status": cct},
        cats={"house_condition": list(HOUSE), "water_source": list(WATER), "lives_with": list(LIVES_WITH),
              "cct_status": list(CCT)},
    )


def _lives_with(view: TermView, s: np.ndarray, age: np.ndarray, params: dict[str, tuple[float, float]]) -> np.ndarray:
    fam = view.pop.family[s][:, None]
    a = np.array([params[k][0] for k in LIVES_WITH])
    b = np.array([params[k][1] for k in LIVES_WITH])
    utility = a[None, :] + b[None, :] * fam + view.pop.lives_g[s]
    utility[:, LIVES_WITH.index("alone")] -= np.where(age < 15, 50.0, 0.0)  # young children never live alone
    return np.argmax(utility, axis=1).astype(np.int8)
