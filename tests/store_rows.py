"""Scores and alerts written to a real store by hand, as a scoring run writes them.

Shared by the tests of acknowledgements, the pilot, treated rows and the closed loop: every
column the store needs, with one at-risk score per (student_key, school_id) and plain constants.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from risk.store import Store, finish_run, start_run, write_alerts, write_bucket_scores

MASKED = "•••••••••0000"


def hand_scores(rows: list[tuple[int, str]], as_of: dt.date, term: str = "2569-1") -> pd.DataFrame:
    """One at-risk score per (student_key, school_id); every other column a plain constant."""
    n = len(rows)
    return pd.DataFrame({
        "student_key": [k for k, _ in rows], "as_of": [as_of] * n, "term": [term] * n,
        "school_id": [s for _, s in rows], "district_code": [s[:4] for _, s in rows],
        "province_code": [s[:2] for _, s in rows], "region": ["northeast"] * n, "grade_level": ["M3"] * n,
        "classroom": ["3/1"] * n, "sex": ["female"] * n, "id_hint": [MASKED] * n,
        "probability": [0.4] * n, "risk_class": ["at_risk"] * n, "reasons_en": [[]] * n, "reasons_th": [[]] * n,
        "reason_codes": [[]] * n, "model_version": ["3"] * n,
    })  # fmt: skip


def hand_alerts(rows: list[tuple[int, str]], as_of: dt.date, kind: str = "newly_at_risk",
                id_hints: dict[int, str] | None = None) -> pd.DataFrame:
    """One alert per (student_key, school_id): normal -> at_risk, a reason and a home visit, Thai and English."""
    n, hints = len(rows), id_hints or {}
    return pd.DataFrame({
        "student_key": [k for k, _ in rows], "school_id": [s for _, s in rows], "as_of": [as_of] * n,
        "kind": [kind] * n, "previous_class": ["normal"] * n, "current_class": ["at_risk"] * n,
        "probability": [0.4] * n, "grade_level": ["M3"] * n, "classroom": ["3/1"] * n, "sex": ["female"] * n,
        "id_hint": [hints.get(k, MASKED) for k, _ in rows], "reasons_en": [["Absent 5 of the last 10 days"]] * n,
        "reasons_th": [["ขาดเรียน 5 ใน 10 วันล่าสุด"]] * n, "actions_en": [["Home visit"]] * n,
        "actions_th": [["เยี่ยมบ้าน"]] * n,
    })  # fmt: skip


def hand_scoring_run(store: Store, term: str, as_of: dt.date, scored: list[tuple[int, str]],
                     alerted: list[tuple[int, str]], kind: str = "newly_at_risk",
                     id_hints: dict[int, str] | None = None) -> str:
    """A finished scoring run of ``term`` on ``as_of`` that scored ``scored`` and alerted ``alerted``; its id."""
    run = start_run(store, as_of=as_of, term=term, model_name="dropout-risk", model_version="3", settings={})
    write_bucket_scores(store, run, 0, hand_scores(scored, as_of, term))
    finish_run(store, run, students=len(scored), drift={})
    if alerted:
        write_alerts(store, run, hand_alerts(alerted, as_of, kind, id_hints))
    return run
