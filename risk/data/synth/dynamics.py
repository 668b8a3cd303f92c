"""Latent dynamics, shocks and the hidden dropout hazard.

Per term, for the enrolled students: the latent factors drift (AR(1) towards the
student's anchor), shocks strike (family migration for seasonal work, parent job
loss, illness, pregnancy) and move the factors, and the hazard of not being
enrolled anywhere next term is

    logit h = c[grade, semester] + x,

where ``x`` is a linear function of the factors, the school and district
effects, the shocks of the term and, at the P6→M1 and M3→M4 transitions, an
extra effect of poverty and distance. The intercepts ``c`` are solved once so
that the average hazard of each grade and semester matches the yearly targets of
``hazard.yearly_rate`` (:func:`solve_intercepts`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from risk.data.contract import GRADE_LEVELS
from risk.data.synth.calendar import TermGrid
from risk.data.synth.config import SynthConfig
from risk.data.synth.population import M1, M4, Population, band_of, engagement_mean, sigmoid
from risk.data.synth.schools import Schools

__all__ = ["SHOCKS", "Shocks", "draw_shocks", "evolve_latent", "hazard_x", "shock_probability", "solve_intercepts",
           "term_targets"]

SHOCKS = ("migration", "job_loss", "illness", "pregnancy")
NO_SHOCK = -1


@dataclass
class Shocks:
    """Shock onsets of the term as grid-day indices (-1 = none), per active student."""

    onset: dict[str, np.ndarray]
    poverty_before: np.ndarray  # poverty before this term's shocks (what an earlier screening saw)

    def happened(self, kind: str) -> np.ndarray:
        return self.onset[kind] >= 0


def evolve_latent(pop: Population, act: np.ndarray, rng: np.random.Generator, cfg: SynthConfig) -> None:
    """One term of AR(1) drift for the students ``act`` (in place).

    Each factor's deviation from its anchor (engagement: from its mean given the
    other factors) keeps a stationary sd, so the population does not spread out
    over the terms; shocks push a factor away and it drifts back at rate ``ar``.
    """
    ar, sd = cfg.latent.ar, cfg.latent.drift_sd
    n = act.shape[0]
    for name, anchor in (("poverty", "pov0"), ("family", "fam0"), ("health", "hea0")):
        rho = ar[name]
        x = getattr(pop, name)[act]
        a = getattr(pop, anchor)[act]
        getattr(pop, name)[act] = a + rho * (x - a) + sd[name] * np.sqrt(1 - rho**2) * rng.normal(0, 1, n)
    mean = engagement_mean(pop, act, cfg)
    rho = ar["engagement"]
    noise = cfg.latent.engagement_sd * np.sqrt(1 - rho**2) * rng.normal(0, 1, n)
    pop.engagement[act] = mean + rho * (pop.engagement[act] - mean) + noise


def shock_probability(pop: Population, idx: np.ndarray, grade: np.ndarray, semester: int, kind: str,
                      cfg: SynthConfig) -> np.ndarray:
    """Probability that a shock of ``kind`` strikes each student ``idx`` this term."""
    s = cfg.latent.shocks[kind]
    logit = (s.base + s.poverty * pop.poverty[idx] + s.family * pop.family[idx] + s.semester2 * (semester == 2)
             + s.health * pop.health[idx] + s.upper_secondary * (grade >= M4))
    p = sigmoid(logit)
    if kind == "pregnancy":
        p = np.where((pop.sex[idx] == 1) & (grade >= M1), p, 0.0)
    return p


def draw_shocks(pop: Population, act: np.ndarray, grid: TermGrid, rng: np.random.Generator,
                cfg: SynthConfig) -> Shocks:
    """Draw the term's shocks, move the latent factors (in place) and return the onsets."""
    n = act.shape[0]
    grade = pop.grade[act]
    poverty_before = pop.poverty[act].copy()
    probability = {kind: shock_probability(pop, act, grade, grid.semester, kind, cfg) for kind in SHOCKS}
    onset = {}
    for kind in SHOCKS:
        hit = rng.random(n) < probability[kind]
        onset[kind] = np.where(hit, rng.integers(0, grid.size, n), NO_SHOCK).astype(np.int32)
        for factor, jump in cfg.latent.shock_effect.get(kind, {}).items():
            getattr(pop, factor)[act[hit]] += jump
    pop.pregnant[act[onset["pregnancy"] >= 0]] = True
    return Shocks(onset, poverty_before)


def hazard_x(pop: Population, idx: np.ndarray, grade: np.ndarray, semester: int, schools: Schools,
             shocks: dict[str, np.ndarray] | None, cfg: SynthConfig) -> np.ndarray:
    """The non-intercept part of the dropout log-odds for students ``idx`` in ``grade``.

    ``shocks`` maps a shock kind to a 0/1 array over ``idx`` (None: no shocks).
    """
    c = cfg.hazard.coef
    s = pop.school[idx]
    pov = pop.poverty[idx]
    x = (c["poverty"] * pov + c["family"] * pop.family[idx] + c["health"] * pop.health[idx]
         + c["engagement"] * pop.engagement[idx] + c["over_age"] * np.maximum(pop.over_age[idx], 0)
         + c["male_secondary"] * ((pop.sex[idx] == 0) & (grade >= M1)) + c["rural"] * schools.rural[s]
         + c["non_thai"] * ~pop.thai[idx] + c["disability"] * (pop.disability[idx] > 0)
         + c["school"] * schools.effect[s] + c["district"] * schools.district_effect[s])
    if semester == 2:
        transition = np.isin(grade, [GRADE_LEVELS.index(g) for g in cfg.hazard.transition_grades])
        x = x + transition * (c["transition_poverty"] * pov + c["transition_distance"] * np.log1p(pop.distance[idx]))
    if shocks is not None:
        for kind in SHOCKS:
            x = x + c[kind] * shocks[kind]
    return x.astype(np.float64)


def term_targets(cfg: SynthConfig) -> np.ndarray:
    """Target hazard per (grade, semester): shape (15, 2). Semester 2's rate is conditional
    on having stayed through semester 1, so each grade's yearly rate matches the target."""
    hz = cfg.hazard
    out = np.zeros((len(GRADE_LEVELS), 2))
    for g, name in enumerate(GRADE_LEVELS):
        yearly = hz.yearly_rate[name]
        share = hz.semester1_share.get(name, hz.semester1_share["default"])
        out[g, 0] = yearly * share
        out[g, 1] = yearly * (1 - share) / (1 - out[g, 0])
    return out


def solve_intercepts(pilot: Population, schools: Schools, rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """Intercepts c[grade, semester] such that the pilot's mean hazard equals the target.

    The pilot is a sample of new students at the run's own schools. For each
    grade, the pilot students of that grade's band (K1–P6, M1–M3, M4–M6: the
    same kinds of school) stand in, with shocks drawn at their rates, so the
    intercepts absorb the mean of every factor. Shape (15, 2).
    """
    targets = term_targets(cfg)
    out = np.zeros_like(targets)
    band = band_of(pilot.grade)
    for g in range(len(GRADE_LEVELS)):
        idx = np.flatnonzero(band == band_of(np.array([g]))[0])
        grade = np.full(idx.shape[0], g, dtype=np.int8)
        for sem in (1, 2):
            shocks = {kind: rng.random(idx.shape[0]) < shock_probability(pilot, idx, grade, sem, kind, cfg)
                      for kind in SHOCKS}
            x = hazard_x(pilot, idx, grade, sem, schools, shocks, cfg)
            out[g, sem - 1] = _solve(x, targets[g, sem - 1])
    return out


def _solve(x: np.ndarray, target: float) -> float:
    """c with mean(sigmoid(c + x)) == target, by bisection."""
    lo, hi = -30.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if sigmoid(mid + x).mean() < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
