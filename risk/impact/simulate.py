"""Small simulated pilots whose truth is known, to hold the estimators to it.

One term of a pilot: schools with a random effect on the dropout logit (the
clustering), students with two recorded features (``x1``, ``x2``) and one risk
nobody recorded (``hidden``), a score that sees part of it, a flag on the top
``flag_share`` of scores, a seeded assignment of schools, and teachers who act
(or not) on the flagged children of alert schools. Each action multiplies the
child's dropout probability by ``1 + effect`` (−0.3: a third less likely).

Selection, the trap for naive comparisons: teachers act more on children whose
risk they see (``selection`` on ``x2``, which the data also records) and on risk
they alone see (``hidden_selection`` on ``hidden``). Adjusting for the score and
features removes the first; nothing removes the second.

Both potential outcomes share one uniform draw per child, so the truth is
exact for the sample: the mean change in dropout probability it would have had.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from risk.impact.design import ALERT_NOW, assign_schools

__all__ = ["PilotWorld", "WorldTruth", "simulate_pilot"]

# Weights of x1, x2 and the hidden risk on the dropout logit; the score sees x1 fully, x2 in part.
RISK_WEIGHTS = (1.0, 0.8, 0.8)
SCORE_WEIGHTS = (1.0, 0.4)
PROVINCES = ("Nan", "Tak", "Yala", "Surin")


@dataclass(frozen=True)
class WorldTruth:
    """The sample's true effects (differences in dropout probability, proportion).

    ``itt_absolute``: mean over flagged students of the change alerts make;
    ``itt_relative``: that over their mean untreated probability (``base_rate``);
    ``complier_absolute``: the mean change among flagged students of schools that
    would act; ``action_ate``: per action, the mean change among acted-on schools'
    alerted students (flagged, alert schools that act: where teachers chose whom to
    help) of receiving it, the other actions as they were.
    """

    itt_absolute: float
    itt_relative: float
    complier_absolute: float
    base_rate: float
    action_ate: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PilotWorld:
    """``students`` (one row per student), ``schools`` (one per school) and the ``truth``."""

    students: pd.DataFrame
    schools: pd.DataFrame
    truth: WorldTruth


def _schools(n_schools: int, mean_students: float, icc_logit: float, share: float,
             school_act_share: float, rng: np.random.Generator, seed: int) -> pd.DataFrame:
    """Schools with province, size (lognormal, CV≈0.5), random effect, arm and whether they act."""
    size = np.maximum(5, rng.lognormal(np.log(mean_students) - 0.11, 0.47, n_schools)).round()
    individual_variance = sum(w**2 for w in RISK_WEIGHTS) + np.pi**2 / 3
    school_sd = np.sqrt(icc_logit / (1 - icc_logit) * individual_variance)
    schools = pd.DataFrame({"school_id": np.arange(n_schools),
                            "province": rng.choice(PROVINCES, n_schools), "size": size.astype(int),
                            "school_effect": rng.normal(0, school_sd, n_schools),
                            "would_act": rng.random(n_schools) < school_act_share})
    plan = assign_schools(schools, share, ["province"], seed)
    # Both are sorted by school_id (counters), so the columns line up.
    return schools.assign(arm=plan["arm"].to_numpy(), stratum=plan["stratum"].to_numpy())


def _codes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes and categories of a label array (for a categorical column)."""
    categories, codes = np.unique(labels, return_inverse=True)
    return codes, categories


def _students(schools: pd.DataFrame, base_logit: float, flag_share: float,
              rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Students (as columns) with features, hidden risk, untreated dropout probability, score and flag."""
    row = np.repeat(np.arange(len(schools)), schools["size"].to_numpy())
    x1, x2, hidden = rng.normal(size=(3, len(row)))
    risk = (base_logit + schools["school_effect"].to_numpy()[row]
            + np.column_stack([x1, x2, hidden]) @ np.array(RISK_WEIGHTS))
    score = expit(base_logit + np.column_stack([x1, x2]) @ np.array(SCORE_WEIGHTS))
    # Integer keys and categorical arms: the estimators take any labels, and pandas' text
    # columns would cost more than the statistics in a test running hundreds of pilots.
    return {"student_key": np.arange(len(row)),
            **{name: schools[name].to_numpy()[row] for name in ("school_id", "would_act")},
            **{name: pd.Categorical.from_codes(*_codes(schools[name].to_numpy()))[row]
               for name in ("arm", "stratum")},
            "x1": x1, "x2": x2, "hidden": hidden, "score": score, "p_untreated": expit(risk),
            "flagged": score >= np.quantile(score, 1 - flag_share)}


def _actions(students: dict[str, np.ndarray], effects: dict[str, float], act_rate: float,
             selection: float, hidden_selection: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per action: whether the child would get it if its school had alerts (potential treatment)."""
    eligible = students["flagged"] & students["would_act"]
    tilt = selection * students["x2"] + hidden_selection * students["hidden"]
    chance = expit(logit(np.clip(act_rate, 1e-9, 1 - 1e-9)) + tilt)
    return {code: eligible & (rng.random(len(eligible)) < chance) for code in effects}


def _truth(students: dict[str, np.ndarray], p_alert: np.ndarray, would_get: dict[str, np.ndarray],
           effects: dict[str, float]) -> WorldTruth:
    """Exact sample effects from the potential probabilities."""
    flagged = students["flagged"]
    change = p_alert - students["p_untreated"]
    base = float(students["p_untreated"][flagged].mean())
    itt = float(change[flagged].mean())
    alerted = flagged & students["would_act"] & np.asarray(students["arm"] == ALERT_NOW)
    ate = {code: float((p_alert / (1 + effect * would_get[code]) * effect)[alerted].mean())
           for code, effect in effects.items()}
    compliers = flagged & students["would_act"]
    return WorldTruth(itt_absolute=itt, itt_relative=itt / base, base_rate=base, action_ate=ate,
                      complier_absolute=float(change[compliers].mean()) if compliers.any() else 0.0)


def simulate_pilot(n_schools: int = 200, mean_students: float = 150, *, share: float = 0.5,
                   effects: dict[str, float] | None = None, icc_logit: float = 0.05,
                   base_logit: float = -4.0, flag_share: float = 0.2, school_act_share: float = 1.0,
                   act_rate: float = 1.0, selection: float = 0.0, hidden_selection: float = 0.0,
                   seed: int = 0) -> PilotWorld:
    """One simulated pilot term.

    Parameters
    ----------
    n_schools, mean_students : int, float
        Schools, and their mean enrolment (students; lognormal, CV about 0.5).
    share : float
        Share of schools assigned ``alert_now`` (stratified by province).
    effects : dict
        Action code -> relative effect on dropout probability (default
        ``{"home_visit": -0.3}``; ``{"home_visit": 0.0}`` plants no effect).
    icc_logit : float
        School share of the latent logit variance (intra-class correlation).
    base_logit, flag_share : float
        Intercept of the dropout logit (−4: about 5% dropout overall), and the
        share of students flagged (top scores).
    school_act_share, act_rate : float
        Share of schools that act on alerts; chance an acting school's flagged
        child gets each action (before selection).
    selection, hidden_selection : float
        Log-odds of acting per SD of the recorded ``x2`` and of the ``hidden`` risk.
    seed : int
        Seed of everything.

    Returns
    -------
    PilotWorld
        ``students``: student_key, school_id, arm, stratum, flagged, score, x1, x2,
        dropped_out (0/1), acted_school (0/1), one 0/1 column per action, acted
        (any action), p_untreated, hidden, would_act. ``schools``: school_id,
        province, size, arm, stratum, would_act, school_effect.
    """
    effects = {"home_visit": -0.3} if effects is None else effects
    rng = np.random.default_rng(seed)
    schools = _schools(n_schools, mean_students, icc_logit, share, school_act_share, rng, seed)
    students = _students(schools, base_logit, flag_share, rng)
    would_get = _actions(students, effects, act_rate, selection, hidden_selection, rng)
    multiplier = np.ones(len(students["score"]))
    for code, effect in effects.items():
        multiplier *= 1 + effect * would_get[code]
    p_alert = students["p_untreated"] * multiplier
    in_alert = np.asarray(students["arm"] == ALERT_NOW)
    draw = rng.random(len(p_alert))
    students["dropped_out"] = (draw < np.where(in_alert, p_alert, students["p_untreated"])).astype(int)
    students["acted_school"] = (students["would_act"] & in_alert).astype(int)
    for code in effects:
        students[code] = (would_get[code] & in_alert).astype(int)
    students["acted"] = np.max([students[code] for code in effects], axis=0) if effects else 0 * draw
    truth = _truth(students, p_alert, would_get, effects)
    return PilotWorld(students=pd.DataFrame(students), schools=schools, truth=truth)
