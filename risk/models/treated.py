"""Training rows whose outcome the help may have changed (issue 30, "learning from treated outcomes").

Once alerts work, a flagged child who was helped stays in school more often than the score
said; a model retrained on such rows learns that flagged children are safer than they are.
This module finds those rows among the training samples and applies the choice of
``samples.treated_outcomes`` (configs/train.yaml):

- ``keep``: train on them as they are (the model does not change; only the counts are told);
- ``down_weight``: their LightGBM sample weight is multiplied by ``samples.down_weight`` in the
  fit stage only (early stopping included; calibration, policy and profiles keep the sampling weights);
- ``untreated_only``: they are left out of training; every row of a wait-list school of a pilot
  term is kept, so the randomised control arm stays whole.

A training row (student × term × sample point) is **treated** when its student (pseudonym
``student_key``) has, dated within its term's window (the term's first school day up to the
next term's first school day, the outcome's date):

- **alerted**: a stored alert asking the school to act (kinds :data:`HELP_KINDS`), except an
  alert of a wait-list school during its pilot term, which no one was shown;
- **acted**: a stored action (``alert_actions``).

Every row of a treated student in that term is treated: the label is the term's outcome.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pandas as pd
from sqlalchemy import func, select

from risk.config import Settings
from risk.data.contract import next_term
from risk.logs import get_logger
from risk.models.samples import check_samples, outcome_connection
from risk.models.settings import TrainSettings
from risk.models.stages import TrainingSamples
from risk.models.term_split import first_school_day
from risk.store import Store, pilot_arms, stored_actions
from risk.store.models import Alert, AlertAction, PilotPlan

__all__ = ["HELP_KINDS", "TREATED_CHOICES", "TermWindow", "TreatedRows", "Treatment", "find_treated", "mark_treated",
           "read_treatment", "term_windows", "treatment_fingerprint", "untreated_samples"]

log = get_logger(__name__)

TreatedChoice = Literal["keep", "down_weight", "untreated_only"]
TREATED_CHOICES: tuple[str, ...] = ("keep", "down_weight", "untreated_only")
# The alert kinds that ask a school to help (an "improved" or "left_register" alert asks nothing).
HELP_KINDS = ("newly_at_risk", "escalated_problem")


@dataclass(frozen=True)
class TermWindow:
    """Dates whose help may change ``term``'s outcome: ``start`` inclusive, ``end`` exclusive (None: open)."""

    start: dt.date
    end: dt.date | None

    def holds(self, days: pd.Series) -> np.ndarray:
        """True for each date of ``days`` (datetime.date values) within the window."""
        inside = days >= self.start
        if self.end is not None:
            inside &= days < self.end
        return inside.to_numpy(bool)


def term_windows(con: duckdb.DuckDBPyConnection, terms: list[str]) -> dict[str, TermWindow]:
    """Each term's window from the calendars (a connection from :func:`risk.models.samples.outcome_connection`);
    a term without school days has none."""
    windows = {}
    for term in terms:
        start = first_school_day(con, term)
        if start is not None:
            windows[term] = TermWindow(start, first_school_day(con, next_term(term)))
    return windows


@dataclass(frozen=True)
class Treatment:
    """What the store holds about help in the training windows.

    ``alerts``: student_key, school_id, as_of, term (kinds :data:`HELP_KINDS`);
    ``actions``: student_key, acted_on; ``wait_list``: term, school_id of the standing
    pilot plans' wait-list schools; ``source``: where it was read ("none": no store).
    """

    alerts: pd.DataFrame
    actions: pd.DataFrame
    wait_list: pd.DataFrame
    source: str

    @classmethod
    def nothing(cls, source: str = "none") -> Treatment:
        return cls(pd.DataFrame(columns=["student_key", "school_id", "as_of", "term"]),
                   pd.DataFrame(columns=["student_key", "acted_on"]),
                   pd.DataFrame(columns=["term", "school_id"]), source)

    @property
    def empty(self) -> bool:
        return self.alerts.empty and self.actions.empty


def read_treatment(store: Store | None, windows: dict[str, TermWindow]) -> Treatment:
    """The alerts, actions and wait-list schools of ``store`` that fall in ``windows`` (none without a store)."""
    if store is None or not windows:
        return Treatment.nothing("none" if store is None else store.url)
    since = min(w.start for w in windows.values())
    # No public reader lists every alert of past terms (open_alerts is one school's open ones):
    # the alerts table is read here, columns the training needs only.
    a = Alert.__table__.c
    stmt = (select(a.student_key, a.school_id, a.as_of, a.term)
            .where(a.as_of >= since, a.kind.in_(HELP_KINDS)))
    with store.engine.connect() as conn:
        alerts = pd.DataFrame.from_records([tuple(r) for r in conn.execute(stmt)],
                                           columns=["student_key", "school_id", "as_of", "term"])
    actions = stored_actions(store, since=since)
    actions = actions[["student_key", "acted_on"]] if not actions.empty else Treatment.nothing().actions
    arms = [pilot_arms(store, term).assign(term=term) for term in windows]
    arms = [frame for frame in arms if not frame.empty]
    wait_list = (pd.concat(arms, ignore_index=True).query("arm == 'wait_list'")[["term", "school_id"]]
                 if arms else Treatment.nothing().wait_list)
    return Treatment(alerts, actions, wait_list, store.url)


def treatment_fingerprint(store: Store) -> str:
    """What the store holds about help, as a short text that changes when an alert, action or plan is added.

    ``risk term`` reuses a trained model when its inputs are unchanged; under ``down_weight`` or
    ``untreated_only`` the store's help is an input too (counts and newest ids of the help alerts,
    the actions and the pilot plans).
    """
    a, act, plan = Alert.__table__.c, AlertAction.__table__.c, PilotPlan.__table__.c
    with store.engine.connect() as conn:
        alerts = conn.execute(select(func.count(), func.max(a.id)).where(a.kind.in_(HELP_KINDS))).one()
        actions = conn.execute(select(func.count(), func.max(act.id))).one()
        plans = conn.execute(select(func.count(), func.max(plan.created_at), func.max(plan.replaced_at))).one()
    return f"alerts {tuple(alerts)}; actions {tuple(actions)}; plans {tuple(map(str, plans))}"


@dataclass(frozen=True)
class TreatedRows:
    """Per training row: ``alerted``, ``acted``, ``wait_list`` (a wait-list school's row of a pilot term);
    the choice (``samples.treated_outcomes``) and its ``down_weight``; ``source`` as :class:`Treatment`'s."""

    alerted: np.ndarray
    acted: np.ndarray
    wait_list: np.ndarray
    choice: TreatedChoice
    down_weight: float
    source: str

    @property
    def treated(self) -> np.ndarray:
        return self.alerted | self.acted

    @property
    def changed(self) -> np.ndarray:
        """The rows the choice applies to: treated, outside a pilot's wait-list arm."""
        return self.treated & ~self.wait_list

    def kept_rows(self) -> np.ndarray | None:
        """The training rows kept (``untreated_only``), else None: all of them."""
        return ~self.changed if self.choice == "untreated_only" else None

    def fit_weight(self) -> np.ndarray | None:
        """The factor on each row's sample weight in the fit (``down_weight``), else None: none."""
        if self.choice != "down_weight":
            return None
        return np.where(self.changed, self.down_weight, 1.0)

    def counts(self) -> dict[str, float]:
        """``rows``, ``treated``, ``alerted``, ``acted``, ``wait_list`` (row counts) and ``share`` (treated / rows)."""
        rows = len(self.alerted)
        treated = int(self.treated.sum())
        return {"rows": rows, "treated": treated, "alerted": int(self.alerted.sum()), "acted": int(self.acted.sum()),
                "wait_list": int(self.wait_list.sum()), "share": treated / rows if rows else 0.0}

    def summary(self) -> dict[str, object]:
        """The counts with the choice, its weight and the source: what the record and the card show."""
        return {**self.counts(), "choice": self.choice, "down_weight": self.down_weight, "source": self.source}


def mark_treated(meta: pd.DataFrame, treatment: Treatment, windows: dict[str, TermWindow], *,
                 choice: TreatedChoice = "keep", down_weight: float = 0.3) -> TreatedRows:
    """Which rows of ``meta`` (student_key, term, school_id per training row) were alerted, acted on, or
    belong to a pilot's wait-list arm (see the module docstring)."""
    n = len(meta)
    alerted, acted = np.zeros(n, bool), np.zeros(n, bool)
    terms = meta["term"].to_numpy()
    keys = meta["student_key"].to_numpy(np.int64)
    hidden = _hidden_alerts(treatment)
    for term, window in windows.items():
        rows = terms == term
        if not rows.any():
            continue
        alerts = treatment.alerts[window.holds(treatment.alerts["as_of"]) & ~hidden]
        actions = treatment.actions[window.holds(treatment.actions["acted_on"])]
        alerted |= rows & np.isin(keys, alerts["student_key"].to_numpy(np.int64))
        acted |= rows & np.isin(keys, actions["student_key"].to_numpy(np.int64))
    return TreatedRows(alerted, acted, _wait_list_rows(meta, treatment.wait_list), choice, down_weight,
                       treatment.source)


def _hidden_alerts(treatment: Treatment) -> np.ndarray:
    """True for an alert of a wait-list school during its pilot term: stored, but shown to no one then."""
    if treatment.alerts.empty or treatment.wait_list.empty:
        return np.zeros(len(treatment.alerts), bool)
    pairs = treatment.alerts[["term", "school_id"]].merge(treatment.wait_list.drop_duplicates(), how="left",
                                                          indicator=True)
    return pairs["_merge"].eq("both").to_numpy()


def _wait_list_rows(meta: pd.DataFrame, wait_list: pd.DataFrame) -> np.ndarray:
    """True for a row whose school was on the wait-list of its term's pilot."""
    if wait_list.empty:
        return np.zeros(len(meta), bool)
    pairs = meta[["term", "school_id"]].astype(str).merge(wait_list.drop_duplicates().astype(str), how="left",
                                                          indicator=True)
    return pairs["_merge"].eq("both").to_numpy()


# ---------------------------------------------------------------- the training stage


def find_treated(samples: TrainingSamples, validated: Path, *, settings: Settings, ts: TrainSettings,
                 store: Store | None) -> TreatedRows:
    """The training rows' treatment from ``store`` (None: no store, so none is treated) and the choice of
    ``samples.treated_outcomes``; logs the counts."""
    windows = {} if store is None else term_windows(outcome_connection(validated, settings), samples.split.train)
    treatment = read_treatment(store, windows)
    treated = mark_treated(samples.train.meta, treatment, windows, choice=ts.samples.treated_outcomes,
                           down_weight=ts.samples.down_weight)
    counts = treated.counts()
    log.info("treated training rows", store=treatment.source, choice=treated.choice, rows=counts["rows"],
             treated=counts["treated"], alerted=counts["alerted"], acted=counts["acted"],
             wait_list=counts["wait_list"])
    return treated


def untreated_samples(samples: TrainingSamples, treated: TreatedRows) -> TrainingSamples:
    """``samples`` whose training rows leave out the treated ones (``untreated_only``), else ``samples`` itself.

    Raises TrainingDataError when too few dropouts are left to learn from.
    """
    kept = treated.kept_rows()
    if kept is None or kept.all():
        return samples
    train = samples.train.subset(kept)
    check_samples(train, "training (untreated rows)", samples.split.train)
    return dataclasses.replace(samples, train=train)
