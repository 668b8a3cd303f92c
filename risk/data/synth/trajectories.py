"""What happens to each enrolled student at the end of a term, and how schools record it.

A student enrolled in a term either dies (rarely), drops out (from the hazard of
:mod:`risk.data.synth.dynamics`; a few mid-term, most by simply not coming back),
or continues: same grade after semester 1; after semester 2 promoted, held back
or graduated (P6 → M1, M3 → M4 often at another school; M6 leaves), and now and
then transferred to another school. Schools record a non-returner in different
ways (``dropped_out``, still ``studying``, ``transferred`` to nowhere, or
``graduated`` after P6/M3), which is why the label is "not enrolled anywhere".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from risk.data.contract import GRADE_LEVELS
from risk.data.synth.calendar import TermGrid
from risk.data.synth.config import SynthConfig
from risk.data.synth.dynamics import Shocks, hazard_x
from risk.data.synth.population import M3, M6, P6, Population, band_of, school_distance, sigmoid
from risk.data.synth.schools import BANDS, Schools, pick_schools

__all__ = ["STATUSES", "Outcomes", "advance", "draw_outcomes", "recorded_as", "within_share"]

STATUSES = ("studying", "graduated", "transferred", "dropped_out", "deceased")
STUDYING, GRADUATED, TRANSFERRED, DROPPED, DECEASED = range(5)


@dataclass
class Outcomes:
    """The term's outcome per active student (arrays of shape (n_active,))."""

    p_dropout: np.ndarray  # true probability of not being enrolled anywhere next term (not M6 graduate, not dead)
    dropout: np.ndarray    # realised: gone next term (mid-term or at the boundary)
    within: np.ndarray     # dropped out mid-term
    dead: np.ndarray
    leave: np.ndarray      # grid index of the first day no longer at school (grid size if none)
    moves: np.ndarray      # continues next term at another school (transfer)
    status: np.ndarray     # index into STATUSES, as recorded at term end
    status_date: np.ndarray  # int32 days; see status_null
    status_null: np.ndarray


def draw_outcomes(pop: Population, act: np.ndarray, grid: TermGrid, shocks: Shocks, schools: Schools,
                  intercepts: np.ndarray, last: bool, rng: np.random.Generator, cfg: SynthConfig) -> Outcomes:
    """Realise the term's outcomes. In the ``last`` term only mid-term events are recorded."""
    hz = cfg.hazard
    n, g_size = act.shape[0], grid.size
    grade = pop.grade[act]
    flags = {k: v >= 0 for k, v in shocks.onset.items()}
    x = hazard_x(pop, act, grade, grid.semester, schools, flags, cfg)
    h = sigmoid(intercepts[grade, grid.semester - 1] + x)
    p_dead = hz.death_rate_per_term
    u = rng.random((n, 4))
    dead = u[:, 0] < p_dead
    dropout = ~dead & (u[:, 1] < h)
    transition = (grid.semester == 2) & np.isin(grade, [GRADE_LEVELS.index(g) for g in hz.transition_grades])
    within = dropout & (u[:, 2] < within_share(grade, grid.semester, cfg))
    leave = np.full(n, g_size, dtype=np.int32)
    leave[within] = rng.integers(g_size // 5, (g_size * 9) // 10, within.sum())
    leave[dead] = rng.integers(g_size // 6, g_size, dead.sum())

    status = np.full(n, STUDYING, dtype=np.int8)
    last_day = grid.days[np.minimum(grid.last_open[pop.school[act]], g_size - 1)]
    status_date = last_day.astype(np.int32).copy()
    finishing = (grid.semester == 2) & np.isin(grade, [P6, M3, M6])
    status[finishing & ~dropout & ~dead] = GRADUATED
    moves = np.zeros(n, dtype=bool)
    if not last:
        boundary = dropout & ~within
        status[boundary] = recorded_as(rng, boundary, transition, cfg)
        migrated = flags["migration"] & (rng.random(n) < cfg.latent.migration_transfer)
        moves = ~dropout & ~dead & ~((grid.semester == 2) & (grade == M6))
        moves &= (u[:, 3] < cfg.moves.transfer_rate) | migrated
        status[moves & (status == STUDYING)] = TRANSFERRED
        status_date = status_date + rng.integers(0, 8, n).astype(np.int32) * (status == DROPPED)
    status[within] = DROPPED
    status[dead] = DECEASED
    leave_day = grid.days[np.minimum(leave, g_size - 1)]
    status_date = np.where(within | dead, leave_day, status_date).astype(np.int32)
    return Outcomes(
        p_dropout=(1 - p_dead) * h, dropout=dropout, within=within, dead=dead, leave=leave, moves=moves,
        status=status, status_date=status_date, status_null=status == STUDYING,
    )


def within_share(grade: np.ndarray, semester: int, cfg: SynthConfig) -> np.ndarray:
    """Share of a grade's dropouts that leave mid-term (the rest do not come back next term), per student."""
    hz = cfg.hazard
    transition = (semester == 2) & np.isin(grade, [GRADE_LEVELS.index(g) for g in hz.transition_grades])
    share = np.where(transition, hz.within_term_share_transition, hz.within_term_share)
    return np.where((semester == 2) & (grade == M6), 1.0, share)  # M6 leaves at the end anyway


def recorded_as(rng: np.random.Generator, boundary: np.ndarray, transition: np.ndarray, cfg: SynthConfig) -> np.ndarray:
    """How the school records a student who will not come back."""
    out = np.empty(int(boundary.sum()), dtype=np.int8)
    trans = transition[boundary]
    for mask, weights in ((~trans, cfg.hazard.recorded_as), (trans, cfg.hazard.recorded_as_transition)):
        keys = [STATUSES.index(k) for k in weights]
        p = np.array(list(weights.values()), dtype=float)
        out[mask] = np.array(keys, dtype=np.int8)[rng.choice(len(keys), size=int(mask.sum()), p=p / p.sum())]
    return out


def advance(pop: Population, act: np.ndarray, out: Outcomes, grid: TermGrid, schools: Schools,
            rng: np.random.Generator, cfg: SynthConfig) -> int:
    """Move the students ``act`` to the next term (in place). Returns how many left the population."""
    mv = cfg.moves
    grade = pop.grade[act]
    leaving = out.dropout | out.dead
    if grid.semester == 2:
        leaving |= grade == M6
    pop.enrolled[act[leaving]] = False
    stay = act[~leaving]
    moved = out.moves[~leaving]
    n = stay.shape[0]
    new_school = pop.school[stay].copy()
    if grid.semester == 2:
        g = pop.grade[stay].astype(np.int64)
        no_repeat = np.isin(g, [GRADE_LEVELS.index(x) for x in mv.no_repeat_grades])
        p_repeat = sigmoid(mv.repeat_base + mv.repeat_fail_share * pop.fail_share[stay]
                           + mv.repeat_gpa * (pop.gpa[stay] - 2.0))
        repeat = ~no_repeat & (rng.random(n) < p_repeat)
        g_next = np.where(repeat, g, g + 1)
        pop.over_age[stay[repeat]] += 1  # a repeater is a year older for the grade from now on
        pop.grade[stay] = g_next.astype(np.int8)
        # Changing level: stay if the school teaches the new band (some P6 leave anyway).
        band_next = band_of(g_next)
        teaches = np.zeros(n, dtype=bool)
        for b, kinds in BANDS.items():
            teaches |= (band_next == b) & np.isin(schools.kind[new_school], kinds)
        leaves_p6 = (g == P6) & ~repeat & (rng.random(n) >= mv.stay_extended_after_p6)
        must_move = ~teaches | leaves_p6
        if must_move.any():
            rows = np.flatnonzero(must_move)
            new_school[rows] = pick_schools(schools, band_next[rows], schools.province[new_school[rows]], rng)
    if moved.any():
        rows = np.flatnonzero(moved)
        band = band_of(pop.grade[stay[rows]].astype(np.int64))
        far = rng.random(rows.shape[0]) < mv.transfer_other_province
        province = schools.province[new_school[rows]]
        picked = np.where(far, pick_schools(schools, band, None, rng), pick_schools(schools, band, province, rng))
        for _ in range(5):  # a transfer goes to another school
            same = np.flatnonzero(picked == new_school[rows])
            if same.size == 0:
                break
            picked[same] = pick_schools(schools, band[same], None, rng)
        new_school[rows] = picked
    changed = new_school != pop.school[stay]
    pop.school[stay] = new_school
    pop.distance[stay[changed]] = school_distance(schools, new_school[changed], pop.dist_noise[stay[changed]], cfg)
    if grid.semester == 2 or changed.any():
        redo = stay if grid.semester == 2 else stay[changed]
        pop.section[redo] = (1 + rng.random(redo.shape[0]) * schools.sections[pop.school[redo]]).astype(np.int8)
    return int(leaving.sum())
