"""Students of one chunk: who they are and their hidden (latent) factors.

Latent factors are on a standard-normal scale: ``poverty`` (higher = poorer),
``family`` (instability), ``health`` (higher = healthier), ``engagement``
(higher = more engaged) and ``ability``. Each student keeps an anchor of the
first three; between terms they drift back towards it (AR(1), see
:mod:`risk.data.synth.dynamics`). Static noise terms make the observed tables of
one student consistent from one screening to the next.
"""

from __future__ import annotations

import numpy as np

from risk.data.contract import DISABILITIES, GRADE_LEVELS
from risk.data.synth.config import SynthConfig
from risk.data.synth.identity import g_codes, thai_ids
from risk.data.synth.schools import AFFILIATIONS, KINDS, Schools, pick_schools

__all__ = ["Population", "band_of", "new_students", "sigmoid"]

N_LIVES = 6
N_SDQ = 5
K3, P1, P6, M1, M3, M4, M6 = (GRADE_LEVELS.index(g) for g in ("K3", "P1", "P6", "M1", "M3", "M4", "M6"))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def band_of(grade: np.ndarray) -> np.ndarray:
    """0 = K1–P6, 1 = M1–M3, 2 = M4–M6."""
    return np.where(grade <= P6, 0, np.where(grade <= M3, 1, 2))


class Population:
    """Column arrays, one entry per student ever enrolled in the chunk (entrants are appended)."""

    FIELDS = (
        "gid", "sid", "sex", "thai", "disability", "ability", "birth", "over_age", "grade", "school",
        "section", "pov0", "fam0", "hea0", "poverty", "family", "health", "engagement", "dist_noise",
        "distance", "hh_base", "land_u", "elec_u", "veh_u", "water_u", "house_noise", "lives_g",
        "height_z", "bmi_z", "sdq_u", "enrolled", "gpa", "fail_share", "cct", "pregnant",
    )  # fmt: skip

    def __init__(self, **cols: np.ndarray) -> None:
        missing = set(self.FIELDS) - set(cols)
        if missing:
            raise ValueError(f"population lacks {sorted(missing)}")
        self.__dict__.update(cols)

    @property
    def n(self) -> int:
        return self.gid.shape[0]

    def extend(self, other: Population) -> None:
        for f in self.FIELDS:
            setattr(self, f, np.concatenate([getattr(self, f), getattr(other, f)]))


def engagement_mean(pop: Population, idx: np.ndarray, cfg: SynthConfig) -> np.ndarray:
    """Expected engagement given the other factors (engagement drifts around it)."""
    eo = cfg.latent.engagement_on
    return (eo["poverty"] * pop.poverty[idx] + eo["family"] * pop.family[idx] + eo["health"] * pop.health[idx]
            + eo["ability"] * pop.ability[idx] + eo["disability"] * (pop.disability[idx] > 0)
            + eo["over_age"] * (pop.over_age[idx] > 0))


def school_distance(schools: Schools, school: np.ndarray, noise: np.ndarray, cfg: SynthConfig) -> np.ndarray:
    """Home-to-school distance in km: longer in rural areas, for secondary and BPP schools."""
    med = cfg.household.distance_km_median
    base = np.where(schools.rural[school], med["rural"], med["urban"])
    base = np.where(schools.kind[school] == KINDS.index("secondary"), med["secondary"], base)
    base = np.where(schools.affiliation[school] == AFFILIATIONS.index("bpp"), med["bpp"], base)
    return np.clip(base * np.exp(cfg.household.distance_sd * noise), 0.1, 100.0).astype(np.float32)


def _pick(rng: np.random.Generator, weights: dict[str, float], keys: tuple[str, ...], n: int) -> np.ndarray:
    p = np.array([weights.get(k, 0.0) for k in keys], dtype=float)
    return rng.choice(len(keys), size=n, p=p / p.sum())


def new_students(grade: np.ndarray, year_ce: int, counter: np.ndarray, schools: Schools,
                 rng: np.random.Generator, cfg: SynthConfig) -> Population:
    """New students in ``grade`` (codes into GRADE_LEVELS) for the academic year starting May ``year_ce``.

    ``counter`` gives each a unique global number from which the ID is made.
    """
    pc, lat = cfg.population, cfg.latent
    n = grade.shape[0]
    f4 = np.float32
    school = pick_schools(schools, band_of(grade), None, rng)
    sex = (rng.random(n) >= pc.male_share).astype(np.int8)  # 0 male, 1 female
    thai = rng.random(n) >= pc.non_thai_share
    digits = np.array([int(d) for d in pc.thai_first_digit])
    first_digit = digits[_pick(rng, pc.thai_first_digit, tuple(pc.thai_first_digit), n)]
    sid = np.where(thai, thai_ids(counter, first_digit), g_codes(counter))
    disabled = rng.random(n) < pc.disability_share
    disability = np.where(disabled, 1 + _pick(rng, pc.disability_type, DISABILITIES[1:], n), 0).astype(np.int8)

    pov0 = schools.area_poverty[school] + rng.normal(0, 0.9, n) + pc.non_thai_poverty * ~thai
    fam0 = pc.family_on_poverty * pov0 + rng.normal(0, 1, n)
    hea0 = pc.health_on_poverty * pov0 + rng.normal(0, 1, n)
    ability = rng.normal(0, 1, n)
    secondary = grade >= M1
    over_p = sigmoid(pc.over_age_base + pc.over_age_poverty * pov0 + pc.over_age_secondary * secondary)
    u = rng.random(n)
    over_age = np.where(u < over_p, np.where(rng.random(n) < 0.25, 2, 1), 0)
    under = (u > 1 - pc.under_age_share) & (grade > 0)
    over_age = np.where(under, -1, over_age).astype(np.int8)
    # Age at 16 May of year_ce lies in [age, age + 1) with a 10-day margin on both sides.
    age = 3 + grade + over_age
    ref = (np.datetime64(f"{year_ce}-05-16") - np.datetime64("1970-01-01")).astype(np.int64)
    birth = (ref - np.round(age * 365.25) - 10 - rng.random(n) * 345).astype(np.int32)

    dist_noise = rng.normal(0, 1, n).astype(f4)
    hc, bc = cfg.health, cfg.behaviour
    hh = cfg.household
    hh_base = np.clip(2 + rng.poisson(np.maximum(hh.size_mean - 2 + hh.size_poverty * pov0, 0.2)), 2, 15)
    sd = lat.drift_sd
    poverty = pov0 + rng.normal(0, sd["poverty"], n)
    family = fam0 + rng.normal(0, sd["family"], n)
    health = hea0 + rng.normal(0, sd["health"], n)
    pop = Population(
        gid=counter.astype(np.int64), sid=sid.astype("U13"), sex=sex, thai=thai, disability=disability,
        ability=ability.astype(f4), birth=birth, over_age=over_age, grade=grade.astype(np.int8),
        school=school, section=(1 + rng.random(n) * schools.sections[school]).astype(np.int8),
        pov0=pov0.astype(f4), fam0=fam0.astype(f4), hea0=hea0.astype(f4), poverty=poverty.astype(f4),
        family=family.astype(f4), health=health.astype(f4), engagement=np.zeros(n, f4),
        dist_noise=dist_noise, distance=school_distance(schools, school, dist_noise, cfg),
        hh_base=hh_base.astype(np.int8), land_u=rng.normal(0, 1, n).astype(f4),
        elec_u=rng.random(n).astype(f4), veh_u=rng.normal(0, 1, n).astype(f4), water_u=rng.random(n).astype(f4),
        house_noise=rng.normal(0, 0.6, n).astype(f4),
        lives_g=(-np.log(-np.log(rng.random((n, N_LIVES)) + 1e-12))).astype(f4),
        height_z=(hc.height_z_mean + hc.height_on["poverty"] * pov0 + hc.height_on["health"] * hea0
                  + rng.normal(0, hc.height_z_sd, n)).astype(f4),
        bmi_z=(hc.bmi_z_mean + hc.bmi_on["poverty"] * pov0 + rng.normal(0, hc.bmi_z_sd, n)).astype(f4),
        sdq_u=rng.normal(0, bc.student_sd, (n, N_SDQ)).astype(f4),
        enrolled=np.ones(n, dtype=bool), gpa=np.full(n, 2.5, f4), fail_share=np.zeros(n, f4),
        cct=np.full(n, -1, np.int8), pregnant=np.zeros(n, dtype=bool),
    )
    every = np.arange(n)
    pop.engagement[:] = engagement_mean(pop, every, cfg) + rng.normal(0, lat.engagement_sd, n)
    return pop
