"""Daily attendance: one row per enrolled student per school day of the student's school.

The absence log-odds of a student on a day is a student base (engagement,
poverty, family, health, distance, over-age, school), plus a weekday term
(Monday/Friday excess), plus shock terms that start a few school days after the
shock (migration: long absence recorded as leave/absent; illness: a run of sick
days; pregnancy and job loss: a lasting rise), plus a climb in the days before a
mid-term dropout. Absences follow a two-state Markov chain with the day's
marginal probability and a lag-1 correlation (``persistence``), so they come in
streaks. Present days are late with a student-specific probability.
"""

from __future__ import annotations

import numpy as np

from risk.data.synth.dynamics import SHOCKS
from risk.data.synth.frames import Batch
from risk.data.synth.population import sigmoid
from risk.data.synth.term import TermView

__all__ = ["ATTENDANCE", "attendance_batch"]

ATTENDANCE = ("present", "absent", "leave", "sick", "late")
PRESENT, ABSENT, LEAVE, SICK, LATE = range(5)
_F4 = np.float32


def _student_base(view: TermView) -> np.ndarray:
    on = view.cfg.attendance.absence_on
    pop, act = view.pop, view.act
    return (view.cfg.attendance.absence_base + on["engagement"] * pop.engagement[act]
            + on["poverty"] * pop.poverty[act] + on["family"] * pop.family[act] + on["health"] * pop.health[act]
            + on["distance"] * np.log1p(pop.distance[act]) + on["over_age"] * (pop.over_age[act] > 0)
            + view.schools.attendance_effect[view.school]).astype(_F4)


def _windows(view: TermView, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For each shock kind: (rows hit, first affected grid day, day after the last)."""
    cfg = view.cfg.attendance
    g = view.grid.size
    lo, hi = cfg.shock_lag_days
    out = {}
    for kind in SHOCKS:
        onset = view.shocks.onset[kind]
        rows = np.flatnonzero(onset >= 0)
        lag = rng.integers(lo, hi + 1, rows.shape[0]) * (3 if kind == "pregnancy" else 1)
        start = onset[rows] + lag
        if kind == "illness":
            end = start + rng.integers(cfg.illness_days[0], cfg.illness_days[1] + 1, rows.shape[0])
        else:
            end = np.full(rows.shape[0], g)
        out[kind] = (rows, start, end)
    leave = view.out.leave
    rows = np.flatnonzero(view.out.within)
    out["pre_dropout"] = (rows, leave[rows] - cfg.pre_dropout_days, leave[rows])
    return out


def attendance_batch(view: TermView, rng: np.random.Generator) -> tuple[Batch, np.ndarray]:
    """The term's attendance rows (student-major, then date) and each student's attendance rate.

    Returns
    -------
    batch : Batch of attendance_daily
    rate : float array (n_active,), share of open days present or late (1.0 with no open day)
    """
    cfg = view.cfg.attendance
    n, g = view.n, view.grid.size
    col = np.arange(g)[:, None]
    logit = np.empty((g, n), dtype=_F4)
    logit[:] = _student_base(view)[None, :]
    logit += np.asarray(cfg.weekday_logit, dtype=_F4)[view.grid.weekday][:, None]
    windows = _windows(view, rng)
    for kind, (rows, start, end) in windows.items():
        if rows.size:
            bump = cfg.pre_dropout_logit if kind == "pre_dropout" else cfg.shock_logit[kind]
            logit[:, rows] += _F4(bump) * ((col >= start[None, :]) & (col < end[None, :]))
    prob = logit  # reuse the buffer: p = sigmoid(logit)
    np.negative(prob, out=prob)
    np.exp(prob, out=prob)
    prob += 1
    np.reciprocal(prob, out=prob)

    rho = _F4(cfg.persistence)
    u = rng.random((g, n), dtype=_F4)
    absent = np.empty((g, n), dtype=bool)
    absent[0] = u[0] < prob[0]
    keep = _F4(1) - rho
    for d in range(1, g):
        # P(absent | absent yesterday) = p + rho (1 - p); P(absent | present) = p (1 - rho).
        absent[d] = u[d] < prob[d] * keep + rho * absent[d - 1]
    del prob, logit

    pop, act = view.pop, view.act
    sick_p = sigmoid(cfg.sick_share["base"] + cfg.sick_share["health"] * pop.health[act]).astype(_F4)
    leave_p = _F4(sigmoid(np.float64(cfg.leave_share)))
    late_p = sigmoid(view.cfg.attendance.late_base + cfg.late_on["engagement"] * pop.engagement[act]
                     + cfg.late_on["distance"] * np.log1p(pop.distance[act])).astype(_F4)
    v = rng.random((g, n), dtype=_F4)
    code = np.where(v < late_p[None, :], LATE, PRESENT).astype(np.int8)
    absent_code = np.where(v < sick_p[None, :], SICK,
                           np.where(v < sick_p + (1 - sick_p) * leave_p, LEAVE, ABSENT)).astype(np.int8)
    np.copyto(code, absent_code, where=absent)
    del absent_code
    for kind, kind_code, share in (("illness", SICK, 0.9), ("migration", LEAVE, 0.45)):
        rows, start, end = windows[kind]
        if rows.size:
            inside = (col >= start[None, :]) & (col < end[None, :]) & absent[:, rows]
            sub = code[:, rows]
            sub[inside] = np.where(v[:, rows][inside] < share, kind_code, ABSENT)
            code[:, rows] = sub
    del v, u, absent

    is_open = view.grid.open[view.school] & (np.arange(g)[None, :] < view.out.leave[:, None])
    code_t = np.ascontiguousarray(code.T)
    status = code_t[is_open]
    counts = is_open.sum(axis=1)
    attended = (((code_t == PRESENT) | (code_t == LATE)) & is_open).sum(axis=1)
    rate = np.where(counts > 0, attended / np.maximum(counts, 1), 1.0)
    dates = np.broadcast_to(view.grid.days, (n, g))[is_open]
    students = np.repeat(act, counts)
    batch = Batch("attendance_daily", {"student_id": students, "date": dates, "status": status},
                  cats={"status": list(ATTENDANCE)})
    return batch, rate
