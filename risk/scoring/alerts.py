"""Alerts: what changed for each student since their previous score, with suggested actions.

Kinds (compared with the latest finished run dated strictly before this one's
``as_of``, so a date scored again, by any model, gives the same kinds; the store
keeps one alert per student, term and date, see :mod:`risk.store.alerts`):

- ``newly_at_risk``: now at-risk, and normal before (or not scored before);
- ``escalated_problem``: now problem, and not problem before;
- ``improved``: a lower class than before;
- ``left_register``: scored before, and no longer enrolled.

A flagged alert carries the student's reasons and one suggested action per reason,
in the same order (each catalog feature names its action in ``configs/scoring.yaml``:
home visit, CCT referral, health referral, counselling, learning support, ...), in
Thai and English.

An alert also carries the score's ``raised_by``: the class policy rule (``exam_line``)
that set the class when the model's probability alone gives a lower one (None: the
model's class stands), because a teacher must see a rule-flagged child apart from a
model-flagged one. School context is not part of an alert: it is about the school, not
the child, and is kept once per school (:mod:`risk.store.context`).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from risk.features.catalog import Texts
from risk.models.bundle import ModelBundle
from risk.scoring.settings import ScoringSettings
from risk.store import Store, latest_scores, previous_finished_run

__all__ = ["ALERT_QUERY", "actions_for", "build_alerts"]

PREVIOUS_COLUMNS = ["student_key", "school_id", "risk_class", "grade_level", "classroom", "sex", "id_hint"]

ALERT_QUERY = """
    WITH cur AS (SELECT * {no_marks} FROM read_parquet($files, union_by_name = true)),
         joined AS (
           SELECT coalesce(c.student_key, p.student_key) AS student_key,
                  coalesce(c.school_id, p.school_id) AS school_id,
                  p.risk_class AS previous_class, c.risk_class AS current_class, c.probability,
                  coalesce(c.grade_level, p.grade_level) AS grade_level,
                  coalesce(c.classroom, p.classroom) AS classroom, coalesce(c.sex, p.sex) AS sex,
                  coalesce(c.id_hint, p.id_hint) AS id_hint,
                  c.raised_by, c.reasons_en, c.reasons_th, c.reason_codes,
                  list_position(['normal', 'at_risk', 'problem'], c.risk_class) AS now_rank,
                  list_position(['normal', 'at_risk', 'problem'], p.risk_class) AS before_rank
           FROM cur c FULL OUTER JOIN previous p ON p.student_key = c.student_key)
    SELECT * EXCLUDE (now_rank, before_rank),
      CASE WHEN current_class IS NULL THEN 'left_register'
           WHEN now_rank = 3 AND coalesce(before_rank, 0) < 3 THEN 'escalated_problem'
           WHEN now_rank = 2 AND coalesce(before_rank, 1) = 1 THEN 'newly_at_risk'
           WHEN before_rank IS NOT NULL AND now_rank < before_rank THEN 'improved'
      END AS kind
    FROM joined
    WHERE kind IS NOT NULL
    ORDER BY school_id, student_key
"""


def build_alerts(store: Store, files: list[Path], *, as_of: dt.date, bundle: ModelBundle,
                 scoring: ScoringSettings) -> pd.DataFrame:
    """Alert rows for the store (``write_alerts``) from this run's score parts and the previous run."""
    previous_run = previous_finished_run(store, before_as_of=as_of)
    if previous_run is None:
        previous = pd.DataFrame({c: pd.Series(dtype="int64" if c == "student_key" else "object")
                                 for c in PREVIOUS_COLUMNS})
    else:
        chunks = list(latest_scores(store, previous_run, columns=PREVIOUS_COLUMNS))
        previous = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=PREVIOUS_COLUMNS)
    con = duckdb.connect()
    con.register("previous", previous)
    # Parts written before rule marks existed have no raised_by: the model's class stood for each of them.
    marked = any("raised_by" in pq.read_schema(f).names for f in files)
    query = ALERT_QUERY.format(no_marks="" if marked else ", NULL::VARCHAR AS raised_by")
    alerts = con.execute(query, {"files": [str(f) for f in files]}).df()
    alerts["raised_by"] = alerts["raised_by"].astype(object).where(alerts["raised_by"].notna(), None)
    alerts["as_of"] = as_of
    en, th = [], []
    for kind, codes in zip(alerts["kind"], alerts["reason_codes"], strict=True):
        texts = [t for t in actions_for(kind, json.loads(codes) if isinstance(codes, str) else [], bundle, scoring)
                 if t is not None]  # every child reason has an action, so this stays aligned with the reasons
        en.append(json.dumps([t.en for t in texts], ensure_ascii=False))
        th.append(json.dumps([t.th for t in texts], ensure_ascii=False))
    alerts["actions_en"], alerts["actions_th"] = en, th
    return alerts.drop(columns=["reason_codes"])


def actions_for(kind: str, codes: list[str], bundle: ModelBundle, scoring: ScoringSettings) -> list[Texts | None]:
    """Suggested actions of an alert: one per reason code, aligned with ``codes`` (a page groups reasons by action).

    A reason takes its catalog feature's ``action`` (a rule code ``rule:<id>`` its rule's feature's);
    a code with none (context, which is told once per school, or a code the catalog no longer
    knows) gets None. ``left_register`` and ``improved`` alerts have no reasons and one action each.
    """
    if kind == "left_register":
        return [scoring.alerts.left_register_action]
    if kind == "improved":
        return [scoring.alerts.improved_action]
    rules = {f"rule:{r.id}": r.feature for r in bundle.policy.rules}
    by_feature = {spec.name: spec for spec in bundle.catalog.features}
    found: list[Texts | None] = []
    for code in codes:
        spec = by_feature.get(rules.get(code, code))
        action = spec.action if spec is not None and spec.role == "child" else None
        found.append(scoring.actions.get(action) if action is not None else None)
    return found
