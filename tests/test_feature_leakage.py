"""Point in time: rows dated after as_of change no feature of any student."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
from conftest import assert_compared
from feature_world import AS_OF, S1, S2, S3, S5, S8, S9, A, context_rates_frame, world
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from online_frames import features_from_frames

from risk.features.catalog import load_catalog

CATALOG = load_catalog(Path(__file__).resolve().parent.parent / "configs" / "features.yaml")
STUDENTS = [S1, S2, S3, S5, S8, S9]
BASE = features_from_frames(world() | {"context_rates": context_rates_frame()}, AS_OF, CATALOG)

later_days = st.integers(min_value=1, max_value=400).map(lambda n: AS_OF + dt.timedelta(days=n))
students = st.sampled_from(STUDENTS)


@st.composite
def later_row(draw) -> tuple[str, dict]:
    """One row of some table, dated after as_of."""
    day, key = draw(later_days), draw(students)
    table = draw(st.sampled_from(["attendance_daily", "calendar", "grades", "household", "health", "behaviour",
                                  "assistance", "enrollments"]))
    if table == "attendance_daily":
        status = draw(st.sampled_from(["present", "absent", "leave", "sick", "late"]))
        return table, {"student_key": key, "date": day, "status": status, "term": "2567-1", "school_id": A}
    if table == "calendar":
        return table, {"school_id": A, "date": day, "term": "2567-1"}
    if table == "grades":
        mark = draw(st.sampled_from(["0", "1", "4", "ร", "มส"]))
        term = draw(st.sampled_from(["2566-2", "2567-1"]))
        return table, {"student_key": key, "term": term, "subject_code": "ท29999", "credits": 1.0,
                       "grade": mark, "recorded_on": day}
    if table == "household":
        income = draw(st.floats(min_value=0, max_value=50_000))
        return table, {"student_key": key, "screened_on": day, "household_size": draw(st.integers(1, 12)),
                       "monthly_income_baht": income, "house_condition": "dilapidated", "owns_land": False,
                       "water_source": "river", "has_electricity": False, "has_vehicle": False,
                       "dependants": 5, "lives_with": "alone", "distance_to_school_km": 40.0,
                       "cct_status": "extremely_poor"}
    if table == "health":
        return table, {"student_key": key, "measured_on": day, "weight_kg": draw(st.floats(8, 150)),
                       "height_cm": draw(st.floats(70, 210))}
    if table == "behaviour":
        flags = {f: draw(st.booleans()) for f in ("substance", "violence", "bullying", "pregnancy", "gaming",
                                                   "sexual_risk")}
        return table, {"student_key": key, "screened_on": day, "sdq_emotional": 10, "sdq_conduct": 10,
                       "sdq_hyperactivity": 10, "sdq_peer": 10, "sdq_prosocial": 0} | flags
    if table == "assistance":
        return table, {"student_key": key, "date": day, "programme": "cct",
                       "amount_baht": draw(st.floats(0, 10_000)), "received": draw(st.booleans())}
    # An enrollment in a later term (dated by its term).
    return table, {"student_key": key, "id_hint": "x", "term": draw(st.sampled_from(["2567-2", "2568-1"])),
                   "school_id": A, "grade_level": "M6", "classroom": None, "sex": "male",
                   "birth_date": dt.date(2000, 1, 1), "nationality": "other", "disability": "multiple",
                   "status": "dropped_out", "status_date": day}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(later_row(), min_size=1, max_size=6))
def test_rows_dated_after_as_of_change_no_feature(rows):
    frames = world()
    for table, row in rows:
        frames[table] = pd.concat([frames[table], pd.DataFrame([row])], ignore_index=True)
    after = features_from_frames(frames | {"context_rates": context_rates_frame()}, AS_OF, CATALOG)
    pd.testing.assert_frame_equal(after, BASE)


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(["present", "absent", "leave", "sick", "late"]))
def test_changing_a_row_dated_after_as_of_changes_nothing(status):
    frames = world()
    attendance = frames["attendance_daily"]
    frames["attendance_daily"] = attendance.assign(
        status=attendance["status"].where(attendance["date"] <= AS_OF, status))
    after = features_from_frames(frames | {"context_rates": context_rates_frame()}, AS_OF, CATALOG)
    pd.testing.assert_frame_equal(after, BASE)


def test_the_guards_compare_every_student_on_every_feature():
    # The guards above compare frames with BASE: every student of the hand-made world that is
    # enrolled at as_of (S4 left before it), on every enabled feature, each known for one at least.
    keys = ("student_key", "as_of", "term", "school_id")
    assert_compared(len(BASE), [c for c in BASE.columns if c not in keys], floor=7)
    assert BASE[CATALOG.names].notna().any().all()


def test_the_same_change_before_as_of_does_change_features():
    # The guard above could pass vacuously if features ignored attendance; this one must not.
    frames = world()
    attendance = frames["attendance_daily"]
    frames["attendance_daily"] = attendance.assign(status="absent")
    after = features_from_frames(frames | {"context_rates": context_rates_frame()}, AS_OF, CATALOG)
    assert not after.equals(BASE)
