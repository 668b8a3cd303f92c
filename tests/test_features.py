"""Feature builders, checked by hand on a small world (tests/feature_world.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feature_world import AS_OF, S1, S2, S3, S4, S5, S8, S9, S10, context_rates_frame, world
from online_frames import features_from_frames

from risk.features.base import AsOf
from risk.features.catalog import load_catalog
from risk.features.context_rates import context_rates
from risk.features.growth import who_zscores
from risk.features.sources import connect, register_frames
from risk.labels import LabelPolicy

CATALOG = load_catalog(Path(__file__).resolve().parent.parent / "configs" / "features.yaml")


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    frames = world() | {"context_rates": context_rates_frame()}
    return features_from_frames(frames, AS_OF, CATALOG).set_index("student_key")


def value(features: pd.DataFrame, student: int, name: str) -> float:
    return float(features.loc[student, name])


def test_cohort_is_enrolled_students_not_yet_known_to_have_left(features):
    # S4's dropout is dated before as_of; S5's after it, so S5 is still in the cohort.
    # S9 graduated P6 before as_of: graduates stay, the transition is when students are lost.
    assert set(features.index) == {S1, S2, S3, S5, S8, S9, S10}
    assert S4 not in features.index


class TestAttendance:
    def test_rate_counts_a_day_without_a_row_as_not_attended(self, features):
        # 15 school days; absent ×4, sick ×1, no row ×1 → 9 attended (late counts as attended).
        assert value(features, S1, "att_rate_term") == pytest.approx(9 / 15)

    def test_windows_reach_back_into_the_previous_term(self, features):
        # last 20 days = 15 this term + 5 of last term (all present); last 60 = all 25.
        assert value(features, S1, "att_rate_20d") == pytest.approx(14 / 20)
        assert value(features, S1, "att_rate_60d") == pytest.approx(19 / 25)
        assert value(features, S1, "att_trend_4w") == pytest.approx(14 / 20 - 5 / 5)

    def test_streaks(self, features):
        assert value(features, S1, "att_longest_absence_streak") == 3  # 3, 4, 5 June
        assert value(features, S1, "att_current_absence_streak") == 1  # 7 June
        assert value(features, S2, "att_longest_absence_streak") == 0

    def test_streaks_at_the_edges_of_the_term(self, features):
        # S10 came only in the last week: the first 10 school days are one run, none now.
        assert value(features, S10, "att_longest_absence_streak") == 10
        assert value(features, S10, "att_current_absence_streak") == 0
        # S3 never came: every one of the 15 school days so far is one run, still going.
        assert value(features, S3, "att_longest_absence_streak") == 15
        assert value(features, S3, "att_current_absence_streak") == 15

    def test_counts_by_status(self, features):
        assert value(features, S1, "att_unexcused_term") == 4
        assert value(features, S1, "att_excused_term") == 1
        assert value(features, S1, "att_late_term") == 1

    def test_monday_friday_share_and_exam_line(self, features):
        # Not attended: Wed 22 May, Mon 27 May, Mon 3, Tue 4, Wed 5, Fri 7 June → 3 of 6.
        assert value(features, S1, "att_monday_friday_share") == pytest.approx(0.5)
        assert value(features, S1, "att_exam_line_margin") == pytest.approx(9 / 15 - 0.8)
        assert value(features, S1, "att_reported_share") == pytest.approx(14 / 15)

    def test_a_student_without_rows_attended_nothing_and_reported_nothing(self, features):
        assert value(features, S3, "att_rate_term") == 0
        assert value(features, S3, "att_reported_share") == 0


class TestGrades:
    def test_gpa_uses_numeric_grades_weighted_by_credits(self, features):
        # 2566-2: (1.5×3 + 1.5×2) / 3 = 2.5; มส and ผ carry no grade points. 2566-1: 3.5.
        assert value(features, S1, "gpa_last_term") == pytest.approx(2.5)
        assert value(features, S1, "gpa_term_before") == pytest.approx(3.5)
        assert value(features, S1, "gpa_change") == pytest.approx(-1.0)

    def test_marks_and_failed_credits(self, features):
        assert value(features, S1, "grades_not_eligible_last_term") == 1
        assert value(features, S1, "failed_credits_last_term") == 1.0
        # The 0 of 2567-1 was entered after as_of: not known yet.
        assert value(features, S1, "grades_zero_last_term") == 0

    def test_no_grades_stay_missing(self, features):
        assert np.isnan(value(features, S3, "gpa_last_term"))


class TestEnrollmentAndContext:
    def test_repeated_grade_and_schools(self, features):
        assert value(features, S2, "repeated_grade") == 1  # M1 in 2566 and again in 2567
        assert value(features, S1, "repeated_grade") == 0
        assert value(features, S2, "schools_attended") == 2
        assert value(features, S1, "terms_on_record") == 3

    def test_over_age_against_the_usual_age_of_the_grade(self, features):
        # S3: born 10 Jan 2011, term starts 16 May 2024: 13.35 years; P6 usually starts at 11.
        expected = (pd.Timestamp("2024-05-16") - pd.Timestamp("2011-01-10")).days / 365.25 - 11
        assert value(features, S3, "over_age_years") == pytest.approx(expected)

    def test_codes_and_flags(self, features):
        assert value(features, S3, "transition_year") == 1
        assert value(features, S1, "transition_year") == 0
        assert value(features, S1, "grade_level") == CATALOG.get("grade_level").categories.index("M2")
        assert value(features, S2, "sex") == 0  # male
        assert value(features, S1, "school_rural") == 1

    def test_past_dropout_rates_come_from_context_rates(self, features):
        assert value(features, S1, "school_past_dropout_rate") == pytest.approx(0.0625)
        assert value(features, S1, "district_past_dropout_rate") == pytest.approx(0.125)


def test_context_rates_are_smoothed_from_earlier_terms(tmp_path):
    # 2566-2: S6 (school B) did not come back → 1 dropout of 8 labelled enrollments;
    # S7 finished M6 (not dropout). Prior of 4 students:
    # district (1 + 4 × 1/8) / (8 + 4) = 0.125; A (0 + 0.5) / 8; B (1 + 0.5) / 8.
    con = connect(threads=1)
    register_frames(con, world())
    rates = context_rates(con, tmp_path, AsOf(AS_OF), history_terms=4, prior_students=4,
                          policy=LabelPolicy()).set_index("school_id")
    assert rates["school_rate"].to_dict() == pytest.approx({"1040100001": 0.0625, "1040100002": 0.1875})
    assert rates["district_rate"].tolist() == pytest.approx([0.125, 0.125])


class TestHousehold:
    def test_latest_screening_before_as_of(self, features):
        assert value(features, S1, "income_per_capita_baht") == 1500  # 6,000 / 4
        assert value(features, S1, "income_change_pct") == pytest.approx(-25.0)
        assert value(features, S1, "cct_status") == 1  # poor
        assert value(features, S1, "lives_with") == 2  # grandparents
        assert value(features, S1, "distance_to_school_km") == 7.5

    def test_proxy_means_score(self, features):
        # poor house 1 + no land 1 + rain water 1 + no vehicle 1 + 3 dependants of 4 people 1 = 5
        assert value(features, S1, "proxy_means_score") == 5


class TestHealth:
    def test_who_z_scores_at_the_age_of_measurement(self, features):
        # Born 1 Aug 2010, measured 3 June 2024; WHO counts months as days / 30.4375.
        months = (pd.Timestamp("2024-06-03") - pd.Timestamp("2010-08-01")).days / 30.4375
        bmi = 38.5 / 1.5**2
        assert value(features, S1, "bmi_for_age_z") == pytest.approx(
            who_zscores("bmi_for_age", np.array(["female"]), np.array([months]), np.array([bmi]))[0])
        assert value(features, S1, "height_for_age_z") == pytest.approx(
            who_zscores("height_for_age", np.array(["female"]), np.array([months]), np.array([150.0]))[0])

    def test_z_scores_outside_the_reference_ages_stay_missing(self, features):
        # S8 is 4 years old: the WHO 2007 reference starts at 61 months.
        assert np.isnan(value(features, S8, "bmi_for_age_z"))
        assert np.isnan(value(features, S8, "thin"))
        assert value(features, S8, "weight_change_kg") != value(features, S8, "weight_change_kg")  # NaN: one measurement

    def test_weight_loss_between_measurements(self, features):
        assert value(features, S1, "weight_change_kg") == pytest.approx(-1.5)


class TestBehaviourAndAssistance:
    def test_sdq_total_and_flags(self, features):
        assert value(features, S1, "sdq_total") == 14  # 3 + 4 + 5 + 2; prosocial is not a difficulty
        assert value(features, S1, "risk_flag_count") == 2
        assert value(features, S1, "flag_gaming") == 1

    def test_assistance_in_the_last_year(self, features):
        assert value(features, S1, "assistance_allocated_baht_365d") == 2500
        assert value(features, S1, "assistance_received_baht_365d") == 2000
        assert value(features, S1, "assistance_received_share_365d") == pytest.approx(2 / 3)
        assert value(features, S1, "months_since_last_payment") == pytest.approx(144 / 30.4375)

    def test_no_records_stay_missing(self, features):
        assert np.isnan(value(features, S3, "sdq_total"))
        assert np.isnan(value(features, S3, "income_per_capita_baht"))
