"""The help schools gave, applied to the generator's own dropout draw: potential outcomes with one shared draw.

A treated student's probability of not being enrolled anywhere next term is the
untreated one times ``1 + effect`` (``effect`` −0.3: a third less likely), the
relative effect planted for the action taken (several actions multiply).

Both potential outcomes come from one uniform per student (common random
numbers), so zero effect leaves every outcome exactly as it was, and a
protective effect only ever turns a dropout into a stayer. A child who left
mid-term is already in the term's rows (attendance stops, status
``dropped_out``), so help does not bring that child back; the end-of-term part
of the probability carries the whole effect instead, so that
``P(dropout | treated) = (1 + effect) · P(dropout | untreated)`` holds exactly
(unless the effect would need more than all of it: then all of it is prevented).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from risk.data.contract import GRADE_LEVELS
from risk.data.synth.calendar import TermGrid
from risk.data.synth.config import SynthConfig
from risk.data.synth.frames import IdDictionary
from risk.data.synth.population import M3, M6, P6, Population
from risk.data.synth.trajectories import (
    DROPPED,
    GRADUATED,
    STUDYING,
    Outcomes,
    recorded_as,
    within_share,
)

__all__ = ["HELP_STREAM", "HelpHook", "treated_outcome"]

# Stream purpose of the help's uniforms (the engine uses 1–4): its own, so nothing else moves.
HELP_STREAM = 6


def treated_outcome(p_dropout: np.ndarray, p_dead: float, share_mid_term: np.ndarray, dropout: np.ndarray,
                    within: np.ndarray, dead: np.ndarray, effect: np.ndarray,
                    u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The dropout each student would have under ``effect``, coupled to the untreated draw.

    Parameters (arrays of shape (n,))
    ----------
    p_dropout : untreated probability of not being enrolled next term, ``(1 − p_dead) h``
    p_dead : probability of dying in the term (a scalar)
    share_mid_term : share of the hazard ``h`` that leaves mid-term (``trajectories.within_share``)
    dropout, within, dead : the untreated draw: gone next term, of those gone mid-term, died
    effect : relative effect on ``p_dropout`` (0: none, −0.3: a third less likely; ≥ −1)
    u : uniforms in [0, 1), one per student, from a stream of their own

    Returns
    -------
    dropout_treated : bool (n,); equal to ``dropout`` wherever ``effect`` is 0
    p_treated : float (n,), the probability ``dropout_treated`` was drawn with
    """
    h = p_dropout / (1.0 - p_dead)
    h_mid = h * share_mid_term
    alive_here = 1.0 - h_mid  # P(still at school at term end | alive)
    c0 = np.divide(h - h_mid, alive_here, out=np.zeros_like(h), where=alive_here > 0)
    c1 = np.clip(np.divide(h * (1.0 + effect) - h_mid, alive_here, out=np.zeros_like(h), where=alive_here > 0),
                 0.0, 1.0)
    boundary = dropout & ~within
    # Where the shared uniform sits given the untreated draw: under c0 for an end-of-term dropout.
    v = np.where(boundary, u * c0, c0 + u * (1.0 - c0))
    dropout_treated = within | (~dead & ~within & (v < c1))
    p_treated = np.where(effect == 0, p_dropout, (1.0 - p_dead) * (h_mid + alive_here * c1))  # 0: the same bits
    return dropout_treated, p_treated


@dataclass
class HelpHook:
    """An engine hook (:data:`risk.data.synth.engine.OutcomeHook`) that applies the help in one term.

    ``plan`` has one row per student the help concerns: ``student_id`` (the generator's
    own ID, as in ``truth.parquet``), ``effect`` (relative, combined over the actions),
    ``acted`` (the help was given; otherwise ``effect`` is what the suggested action
    would have done, recorded as a potential outcome only). After the run, :attr:`rows`
    holds the potential outcomes of every student enrolled in ``term`` (see
    :meth:`potential_outcomes`).
    """

    term: str
    plan: pd.DataFrame
    seed: list[int]
    cfg: SynthConfig
    parts: list[pd.DataFrame] = field(default_factory=list)

    def __call__(self, k: int, grid: TermGrid, pop: Population, act: np.ndarray, out: Outcomes,
                 ids: IdDictionary) -> None:
        if grid.term != self.term:
            return
        sid = np.asarray(ids.ids.take(pa.array(act)).to_pylist(), dtype=object)
        rows = pd.Series(np.arange(len(self.plan)), index=self.plan["student_id"].to_numpy())
        where = rows.reindex(sid).to_numpy()
        known = ~np.isnan(where)
        pick = np.where(known, where, 0).astype(np.int64)
        effect = np.where(known, self.plan["effect"].to_numpy(dtype=float)[pick], 0.0)
        acted = known & self.plan["acted"].to_numpy(dtype=bool)[pick]
        u = np.random.default_rng([*self.seed, HELP_STREAM, k]).random(act.shape[0])
        share = within_share(pop.grade[act], grid.semester, self.cfg)
        p_death = self.cfg.hazard.death_rate_per_term
        y1, p1 = treated_outcome(out.p_dropout, p_death, share, out.dropout, out.within, out.dead, effect, u)
        self.parts.append(pd.DataFrame({
            "student_id": sid.astype(str), "p_dropout_untreated": out.p_dropout.astype(float),
            "p_dropout_treated": p1, "dropped_out_untreated": out.dropout.copy(), "dropped_out_treated": y1,
        }))
        _apply(out, acted, y1, p1, grid, pop, act, np.random.default_rng([*self.seed, HELP_STREAM, k, 1]), self.cfg)

    def potential_outcomes(self) -> pd.DataFrame:
        """Per student of the term: ``student_id``, ``p_dropout_untreated``/``_treated``, ``dropped_out_untreated``/``_treated``."""
        return pd.concat(self.parts, ignore_index=True) if self.parts else pd.DataFrame()


def _apply(out: Outcomes, acted: np.ndarray, y1: np.ndarray, p1: np.ndarray, grid: TermGrid, pop: Population,
           act: np.ndarray, rng: np.random.Generator, cfg: SynthConfig) -> None:
    """Make the treated students' outcomes those they had with help (in place), recorded as a school would."""
    out.p_dropout[acted] = p1[acted]
    kept = acted & out.dropout & ~y1  # stays: promoted or still studying, as if never at risk
    lost = acted & ~out.dropout & y1  # help that harmed: gone at term end
    out.dropout[kept], out.dropout[lost] = False, True
    if not (kept.any() or lost.any()):
        return
    grade = pop.grade[act]
    last_day = grid.days[np.minimum(grid.last_open[pop.school[act]], grid.size - 1)]
    finishing = (grid.semester == 2) & np.isin(grade, [P6, M3, M6])
    out.status[kept] = np.where(finishing[kept], GRADUATED, STUDYING)
    transition = (grid.semester == 2) & np.isin(grade, [GRADE_LEVELS.index(g) for g in cfg.hazard.transition_grades])
    out.status[lost] = recorded_as(rng, lost, transition, cfg)
    out.moves[lost] = False
    jitter = rng.integers(0, 8, act.shape[0]).astype(np.int32) * (out.status == DROPPED)
    changed = kept | lost
    out.status_date[changed] = (last_day + jitter)[changed]
    out.status_null[changed] = out.status[changed] == STUDYING
