"""Behaviour screening once a term from P1: SDQ sub-scales and risk flags.

Each SDQ sub-scale is Binomial(10, p) with p a logistic function of family
instability, health, engagement and sex plus a per-student effect; the risk
flags are Bernoulli with their own logistic models. A pregnancy is flagged (not
always) once the screening falls after it.
"""

from __future__ import annotations

import numpy as np

from risk.data.synth.frames import Batch
from risk.data.synth.population import M1, P1, sigmoid
from risk.data.synth.term import TermView

__all__ = ["SDQ", "behaviour_batch"]

SDQ = ("emotional", "conduct", "hyperactivity", "peer", "prosocial")
FLAGS = ("substance", "violence", "bullying", "gaming", "sexual_risk")


def behaviour_batch(view: TermView, rng: np.random.Generator) -> Batch:
    bc = view.cfg.behaviour
    pop = view.pop
    day_idx = view.school_day(tuple(bc.screen_weeks), rng)
    rows = np.flatnonzero((pop.grade[view.act] >= P1) & view.present_on(day_idx))
    s = view.act[rows]
    n = rows.shape[0]
    fam, hea, eng = pop.family[s], pop.health[s], pop.engagement[s]
    male = pop.sex[s] == 0
    cols: dict[str, np.ndarray] = {"student_id": s, "screened_on": view.grid.days[day_idx[rows]].astype(np.int32)}
    for j, scale in enumerate(SDQ):
        c = bc.sdq[scale]
        logit = (c["base"] + c["family"] * fam + c["health"] * hea + c["engagement"] * eng + c["male"] * male
                 + pop.sdq_u[s, j])
        cols[f"sdq_{scale}"] = rng.binomial(10, sigmoid(logit)).astype(np.int64)
    secondary = pop.grade[s] >= M1
    for flag in FLAGS:
        base, f, e, m, sec = bc.flags[flag]
        logit = base + f * fam + e * eng + m * male + sec * secondary
        cols[flag] = rng.random(n) < sigmoid(logit)
    onset = view.shocks.onset["pregnancy"][rows]
    earlier = pop.pregnant[s] & (onset < 0)  # pregnant in an earlier term
    seen = (onset >= 0) & (onset < day_idx[rows]) | earlier
    cols["pregnancy"] = seen & (rng.random(n) < bc.pregnancy_seen)
    order = ["student_id", "screened_on", *(f"sdq_{x}" for x in SDQ), "substance", "violence", "bullying",
             "pregnancy", "gaming", "sexual_risk"]
    return Batch("behaviour", {k: cols[k] for k in order})
