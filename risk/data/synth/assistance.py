"""Assistance rows: CCT payments, school lunch, uniforms, scholarships and other help.

CCT is paid each term to students whose latest screening found them poor or
extremely poor; some payments are allocated but not received (more often when
the family has migrated). Lunch (K1–P6) is one row per term worth the daily rate
times the school days; uniforms (K1–M3) come in semester 1.
"""

from __future__ import annotations

import numpy as np

from risk.data.synth.frames import Batch
from risk.data.synth.population import M1, M4, P1, sigmoid
from risk.data.synth.term import TermView

__all__ = ["PROGRAMMES", "assistance_batch"]

PROGRAMMES = ("cct", "lunch", "uniform", "scholarship", "other")


def assistance_batch(view: TermView, rng: np.random.Generator) -> Batch:
    ac = view.cfg.assistance
    pop, act, grid = view.pop, view.act, view.grid
    grade = pop.grade[act]
    sem1 = grid.semester == 1
    parts: list[tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]] = []

    def add(rows: np.ndarray, day_idx: np.ndarray, programme: str, amount: np.ndarray, received: np.ndarray) -> None:
        keep = day_idx[rows] < view.out.leave[rows]
        parts.append((rows[keep], grid.days[day_idx[rows[keep]]], PROGRAMMES.index(programme),
                      amount[keep], received[keep]))

    n = view.n
    cct_day = view.school_day(tuple(ac.cct_week), rng)
    cct = pop.cct[act]
    rows = np.flatnonzero((cct == 0) | (cct == 1))
    amount = np.where(cct[rows] == 0, ac.cct_baht["extremely_poor"], ac.cct_baht["poor"])
    migrated = (view.shocks.onset["migration"][rows] >= 0) & (view.shocks.onset["migration"][rows] < cct_day[rows])
    received = rng.random(rows.shape[0]) >= sigmoid(ac.not_received_base + ac.not_received_migration * migrated)
    add(rows, cct_day, "cct", amount, received)

    first_open = np.argmax(grid.open[view.school], axis=1)
    rows = np.flatnonzero(grade < M1)
    days = grid.open_days[view.school[rows]]
    add(rows, first_open, "lunch", ac.lunch_baht_per_day * days, np.ones(rows.shape[0], dtype=bool))

    if sem1:
        uni_day = view.school_day((3, 6), rng)
        rows = np.flatnonzero(grade < M4)
        level = np.where(grade[rows] < P1, 0, np.where(grade[rows] < M1, 1, 2))
        amount = np.array([ac.uniform_baht[k] for k in ("K", "P", "M")])[level]
        add(rows, uni_day, "uniform", amount, rng.random(rows.shape[0]) >= 0.03)
        on = ac.scholarship_on
        p = sigmoid(ac.scholarship_base + on["ability"] * pop.ability[act] + on["poverty"] * pop.poverty[act])
        rows = np.flatnonzero((grade >= M1) & (rng.random(n) < p))
        lo, hi = ac.scholarship_baht
        amount = np.round(rng.uniform(lo, hi, rows.shape[0]) / 500) * 500
        add(rows, view.school_day((4, 9), rng), "scholarship", amount, rng.random(rows.shape[0]) >= 0.05)

    rows = np.flatnonzero(rng.random(n) < ac.other_share)
    lo, hi = ac.other_baht
    amount = np.round(rng.uniform(lo, hi, rows.shape[0]) / 50) * 50
    add(rows, view.school_day((2, 15), rng), "other", amount, rng.random(rows.shape[0]) >= 0.1)

    rows = np.concatenate([p[0] for p in parts])
    order = np.argsort(rows, kind="stable")
    return Batch(
        "assistance",
        {"student_id": act[rows[order]],
         "date": np.concatenate([p[1] for p in parts])[order].astype(np.int32),
         "programme": np.concatenate([np.full(p[0].shape[0], p[2], dtype=np.int8) for p in parts])[order],
         "amount_baht": np.concatenate([p[3] for p in parts]).astype(np.float64)[order],
         "received": np.concatenate([p[4] for p in parts]).astype(bool)[order]},
        cats={"programme": list(PROGRAMMES)},
    )
