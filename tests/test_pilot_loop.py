"""Per-action estimates compare children a school was asked to help (issue 30; found on the closed loop).

In the closed loop (``bench/bench_pilot_loop.py``) a flagged child whose alert was raised a
term earlier gets no new alert, so no school acts on it. With those children among the
controls, the adjusted (AIPW) estimate was further from the truth than the naive one. So
when the store holds the term's alerts, ``risk impact`` estimates each action among the
flagged children of alert-now schools with an alert raised in the term, or an action;
without stored alerts (actions recorded elsewhere), among every flagged child, as before.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from risk.impact.outcomes import TermOutcomes
from risk.impact.run import estimate_impact
from risk.store import PlanRecord

SCHOOLS = 40  # 20 alert now, 20 wait-list
PER_SCHOOL = 10  # flagged children a school: 6 alerted this term (3 of them visited), 4 alerted a term earlier


def hand_frame() -> pd.DataFrame:
    """Flagged children of a pilot term; in alert-now schools, home visits only among the alerted."""
    rng = np.random.default_rng(3)
    rows = []
    for school in range(SCHOOLS):
        arm = "alert_now" if school % 2 == 0 else "wait_list"
        for child in range(PER_SCHOOL):
            alerted = int(child < 6)
            visited = int(arm == "alert_now" and child < 3)
            rows.append({"student_key": school * 100 + child, "school_id": f"S{school:03d}", "arm": arm,
                         "stratum": "all", "flagged": True, "alerted": alerted, "home_visit": visited,
                         "acted": visited, "score": 0.3 if alerted else 0.8,
                         "dropped_out": int(rng.random() < (0.15 if alerted else 0.5)),
                         "transition_p6": int(child % 5 == 0), "transition_m3": 0, "grade_level": "P5"})
    return pd.DataFrame(rows)


def outcomes(frame: pd.DataFrame) -> TermOutcomes:
    plan = PlanRecord(pilot_id="p1", term="2569-1", share=0.5, strata=[], seed=1, created_at=dt.datetime(2026, 5, 1))
    return TermOutcomes(term="2569-1", frame=frame, plan=plan, action_codes=["home_visit"])


def action_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    result = estimate_impact(outcomes(frame), permutations=200, seed=0)
    rows = result.estimates[result.estimates["estimand"].isin(["action_naive", "action_adjusted"])]
    return rows, result.notes


def test_with_alerts_stored_each_action_is_estimated_among_the_children_asked_for_help():
    rows, notes = action_rows(hand_frame())
    asked = (SCHOOLS // 2) * 6
    assert list(rows["n_students"]) == [asked, asked]
    assert any(f"among the {asked:,} flagged students asked for help" in note for note in notes)


def test_a_child_acted_on_without_an_alert_this_term_stays_in_the_comparison():
    frame = hand_frame()
    frame.loc[frame["student_key"] == 6, ["home_visit", "acted"]] = 1  # alert-now school 0, alerted a term earlier
    rows, _ = action_rows(frame)
    assert list(rows["n_students"]) == [(SCHOOLS // 2) * 6 + 1] * 2


def test_without_stored_alerts_every_flagged_child_of_alert_now_schools_is_compared():
    rows, notes = action_rows(hand_frame().assign(alerted=0))
    assert list(rows["n_students"]) == [(SCHOOLS // 2) * PER_SCHOOL] * 2
    assert not any("asked for help" in note for note in notes)


def test_the_naive_difference_among_the_asked_is_the_visited_minus_the_unvisited_alerted_children():
    frame = hand_frame()
    rows, _ = action_rows(frame)
    asked = frame[(frame["arm"] == "alert_now") & (frame["alerted"] == 1)]
    expected = asked.loc[asked["home_visit"] == 1, "dropped_out"].mean() - \
        asked.loc[asked["home_visit"] == 0, "dropped_out"].mean()
    naive = rows.loc[rows["estimand"] == "action_naive", "estimate"].iloc[0]
    assert abs(naive - expected) < 1e-9


def test_an_action_whose_children_none_dropped_out_gets_a_ci_wider_than_a_point():
    # 15 visited children, none dropped out: the clustered and influence-function SEs are ~0 there, so
    # both CIs are floored at the Agresti–Caffo SE of the difference (a dropout and a stayer added a group).
    frame = hand_frame()
    alert_now = frame["arm"] == "alert_now"
    frame.loc[alert_now, ["home_visit", "acted"]] = 0
    visited = frame.index[alert_now & (frame["alerted"] == 1)][:15]
    frame.loc[visited, ["home_visit", "acted"]] = 1
    frame.loc[visited, "dropped_out"] = 0
    rows, _ = action_rows(frame)
    asked = frame[alert_now & (frame["alerted"] == 1)]
    k0, n0 = asked.loc[asked["home_visit"] == 0, "dropped_out"].sum(), int((asked["home_visit"] == 0).sum())
    p1, p0 = 1 / 17, (k0 + 1) / (n0 + 2)
    agresti_caffo = np.sqrt(p1 * (1 - p1) / 17 + p0 * (1 - p0) / (n0 + 2))
    assert (rows["se"] >= agresti_caffo - 1e-12).all()
    assert (rows["ci_high"] - rows["ci_low"] > 3.9 * agresti_caffo).all()
