"""A teacher model for the closed synthetic loop: which alerts schools act on, with which action, and whom they pick.

Given the engine's alerts of one term (from the store: pseudonym, school, as_of,
score, the suggested actions the alert's reasons call for) and the generator's
hidden truth, :func:`act_on_alerts` decides:

- **whether a school acts at all** (``idle_schools`` of alert schools never do;
  wait-list schools of a pilot see no alerts and never do);
- **how much it acts**: a school's propensity is ``logit(act_share)`` plus a
  school effect ``N(0, school_sd²)``;
- **whom**: ``selection`` log-odds per standard deviation of the child's *true*
  dropout log-odds (from the oracle, which the score sees only in part): teachers
  who know a family act more on the children truly at most risk (``selection`` > 0)
  or on those easiest to help (< 0), so a naive acted-vs-not comparison is biased;
- **which action**: the alert's first suggested action (its strongest reason's),
  with probability ``top_action``, else another of its suggested actions;
- **when**: 1–``delay_days`` days after the alert, not after the term's end nor after today
  (``risk actions import`` refuses a date in the future).

The output has one row per alerted student, acted or not (``code`` is the action
taken, or the one the reasons suggest for a child not acted on), so the truth
can hold what each alerted child's help would have done. :func:`actions_file`
writes the actions taken as the CSV that ``risk actions import`` reads.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sqlalchemy import select

from risk.data.contract import term_window
from risk.errors import RiskError
from risk.store import Store
from risk.store.models import Alert

__all__ = ["ACTED_ON_KINDS", "ALERT_NOW", "LoopError", "TeacherModel", "act_on_alerts", "actions_file", "term_alerts"]

# Alerts a teacher acts on: a child newly at risk or escalated (not "improved", not "left the register").
ACTED_ON_KINDS = ("newly_at_risk", "escalated_problem")
ALERT_NOW = "alert_now"  # a pilot arm that sees alerts (risk.impact.design's name for it)
FALLBACK_ACTION = "home_visit"


class LoopError(RiskError):
    """The closed loop cannot go on: a source that is not a synthetic export, alerts or actions of other students."""


@dataclass(frozen=True)
class TeacherModel:
    """How schools act on alerts (see the module's description)."""

    act_share: float = 0.6
    school_sd: float = 1.0
    idle_schools: float = 0.2
    selection: float = 1.0
    top_action: float = 0.7
    delay_days: int = 14

    def __post_init__(self) -> None:
        for name in ("act_share", "idle_schools", "top_action"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if self.delay_days < 1:
            raise ValueError(f"delay_days must be at least 1, got {self.delay_days}")


def term_alerts(store: Store, term: str) -> pd.DataFrame:
    """The term's current alerts a teacher would act on, each student's first: student_key, school_id, as_of,
    probability, current_class, actions_en (list of suggested-action texts)."""
    a = Alert.__table__.c
    stmt = (select(a.student_key, a.school_id, a.as_of, a.probability, a.current_class, a.actions_en)
            .where(a.term == term, a.superseded_at.is_(None), a.kind.in_(ACTED_ON_KINDS))
            .order_by(a.as_of, a.id))
    with store.engine.connect() as conn:
        result = conn.execute(stmt)
        frame = pd.DataFrame.from_records([tuple(r) for r in result], columns=list(result.keys()))
    frame["actions_en"] = [json.loads(x) if x else [] for x in frame["actions_en"]]
    return frame.drop_duplicates("student_key", keep="first").reset_index(drop=True)


def act_on_alerts(alerts: pd.DataFrame, true_risk: pd.Series, action_texts: dict[str, str], term: str,
                  model: TeacherModel, rng: np.random.Generator, arms: dict[str, str] | None = None) -> pd.DataFrame:
    """Which alerted students the schools help, how and when.

    Parameters
    ----------
    alerts : one row per alerted student, as :func:`term_alerts` returns
    true_risk : the oracle's dropout probability of the term, indexed by student_key
    action_texts : suggested-action text (English, as on the alert) -> action code
    term : the alerts' term (actions are dated inside it)
    arms : school_id -> pilot arm; a school not in ``alert_now`` sees no alerts. None: no pilot
    rng : the loop's generator

    Returns
    -------
    One row per alerted student: student_key, school_id, arm, code (taken, or suggested when
    not acted on), acted (bool), acted_on (date; NaT when not acted on), true_risk.
    """
    alerts = alerts.sort_values("student_key", kind="stable").reset_index(drop=True)
    n = len(alerts)
    risk = true_risk.reindex(alerts["student_key"]).to_numpy(dtype=float)
    if np.isnan(risk).any():
        raise LoopError(f"{int(np.isnan(risk).sum())} alerted students are not in the generator's truth: "
                         "were the alerts made from this export, with this pseudonym key?")
    arm = alerts["school_id"].map(arms) if arms is not None else pd.Series([None] * n, dtype=object)
    sees = (arm == ALERT_NOW).to_numpy() if arms is not None else np.ones(n, dtype=bool)
    propensity = _school_propensity(alerts["school_id"], model, rng)
    z = logit(np.clip(risk, 1e-6, 1 - 1e-6))
    z = (z - z.mean()) / (z.std() or 1.0)
    acted = sees & (rng.random(n) < expit(propensity + model.selection * z))
    codes = _pick_actions(alerts["actions_en"], action_texts, model.top_action, rng)
    end = min(term_window(term)[1], dt.date.today())
    delay = pd.to_timedelta(rng.integers(1, model.delay_days + 1, n), unit="D")
    acted_on = (pd.to_datetime(alerts["as_of"]) + delay).clip(upper=pd.Timestamp(end)).dt.date
    return pd.DataFrame({
        "student_key": alerts["student_key"].astype("int64"), "school_id": alerts["school_id"], "arm": arm,
        "code": codes, "acted": acted, "acted_on": acted_on.where(acted, None), "true_risk": risk,
    })


def _school_propensity(school: pd.Series, model: TeacherModel, rng: np.random.Generator) -> np.ndarray:
    """Per alert, its school's log-odds of acting; an idle school's is minus infinity."""
    schools = np.sort(school.unique())
    effect = logit(np.clip(model.act_share, 1e-9, 1 - 1e-9)) + rng.normal(0.0, model.school_sd, schools.size)
    effect[rng.random(schools.size) < model.idle_schools] = -np.inf
    return pd.Series(effect, index=schools).reindex(school).to_numpy()


def _pick_actions(suggested: pd.Series, action_texts: dict[str, str], top_action: float,
                  rng: np.random.Generator) -> list[str]:
    """Per alert, one code of its suggested actions: the first with probability ``top_action``, else another."""
    u, v = rng.random(len(suggested)), rng.random(len(suggested))
    codes = []
    for texts, ui, vi in zip(suggested, u, v, strict=True):
        known = [action_texts[t] for t in texts if t in action_texts]
        if not known:
            codes.append(FALLBACK_ACTION)
        elif ui < top_action or len(known) == 1:
            codes.append(known[0])
        else:
            codes.append(known[1 + int(vi * (len(known) - 1))])
    return codes


def actions_file(decisions: pd.DataFrame, path: Path) -> int:
    """Write the actions taken as a CSV ``risk actions import`` reads (student_key, date, code, school_id).

    The pseudonym is written as text, never a raw ID. Returns the number of rows written.
    """
    taken = decisions[decisions["acted"]]
    frame = pd.DataFrame({"student_key": taken["student_key"].astype("int64").astype(str),
                          "date": [d.isoformat() for d in taken["acted_on"]], "code": taken["code"],
                          "school_id": taken["school_id"]})
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return len(frame)
