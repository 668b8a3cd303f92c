"""The view of one term that the table builders read."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from risk.data.synth.calendar import TermGrid
from risk.data.synth.config import SynthConfig
from risk.data.synth.dynamics import Shocks
from risk.data.synth.population import Population
from risk.data.synth.schools import Schools
from risk.data.synth.trajectories import Outcomes

__all__ = ["TermView"]


@dataclass
class TermView:
    """One term of one chunk: the students enrolled (``act``, indices into ``pop``) and what happened."""

    pop: Population
    act: np.ndarray
    grid: TermGrid
    schools: Schools
    shocks: Shocks
    out: Outcomes
    cfg: SynthConfig
    first: bool  # first term of the run

    @property
    def n(self) -> int:
        return self.act.shape[0]

    @property
    def school(self) -> np.ndarray:
        return self.pop.school[self.act]

    def school_day(self, weeks: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """A grid-day index per school, in the given school weeks of the term (one draw per school)."""
        lo, hi = weeks
        per_school = np.minimum(rng.integers(5 * lo, 5 * (hi + 1), self.schools.n), self.grid.size - 1)
        return per_school[self.school]

    def present_on(self, day: np.ndarray) -> np.ndarray:
        """Students still at school on their grid day ``day``."""
        return day < self.out.leave
