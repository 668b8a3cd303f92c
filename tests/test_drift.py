"""Drift: the training profile's bins, and PSI of a scored population against them."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from risk.models.profile import TrainingProfile, training_profile
from risk.scoring.drift import DriftAccumulator, psi

NAMES = ["att_rate_term", "income_per_capita_baht", "flag_substance", "sex", "gpa_last_term"]


def population(n: int, seed: int, attendance_shift: float = 0.0, income_factor: float = 1.0
               ) -> tuple[np.ndarray, np.ndarray]:
    """Students with the five features above (a tenth of incomes missing) and a score that depends on them."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([
        np.clip(rng.beta(12, 1.5, n) + attendance_shift, 0, 1),
        rng.lognormal(7.5, 0.6, n).round() * income_factor,
        (rng.random(n) < 0.1).astype(float),
        rng.integers(0, 2, n).astype(float),
        rng.uniform(0, 4, n).round(1),
    ])
    X[rng.random(n) < 0.1, 1] = np.nan
    logit = -3 - 10 * (X[:, 0] - 0.88) + 1.5 * X[:, 2] - 0.5 * (X[:, 4] - 2)
    return X, 1 / (1 + np.exp(-logit))


@pytest.fixture(scope="module")
def profile() -> TrainingProfile:
    X, scores = population(20_000, seed=1)
    return training_profile(X, NAMES, scores)


def drift_of(profile: TrainingProfile, X: np.ndarray, scores: np.ndarray):
    return DriftAccumulator(profile).add(X, scores).report()


# ---------------------------------------------------------------- psi


def test_psi_of_identical_distributions_is_zero():
    assert psi(np.array([0.2, 0.3, 0.5]), np.array([0.2, 0.3, 0.5])) == pytest.approx(0.0, abs=1e-12)


def test_psi_by_hand():
    # (0.25 − 0.5)·ln(0.25/0.5) + (0.75 − 0.5)·ln(0.75/0.5) = 0.25·ln 2 + 0.25·ln 1.5
    assert psi(np.array([0.5, 0.5]), np.array([0.25, 0.75])) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))


def test_psi_takes_counts_as_well_as_shares():
    assert psi(np.array([50, 50]), np.array([25, 75])) == pytest.approx(psi(np.array([0.5, 0.5]), np.array([0.25, 0.75])))


def test_an_empty_bin_gives_a_large_finite_psi():
    value = psi(np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.5, 0.5]))
    assert math.isfinite(value) and value > 2


# ---------------------------------------------------------------- profile


def test_profile_median_missing_share_and_bins_by_hand():
    X = np.array([[np.nan, 0.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
    profile = training_profile(X, ["income_per_capita_baht", "flag_substance"], np.array([0.1, 0.2, 0.3, 0.4]))
    income, flag = profile.features
    assert (income.median, income.missing_share) == (2.0, 0.25)
    assert sum(income.shares) == pytest.approx(0.75)
    assert (flag.kind, flag.median, flag.edges, flag.shares) == ("values", 0.0, [0.0, 1.0], [0.75, 0.25])


def test_weights_count_like_repeated_rows():
    X = np.array([[1.0], [2.0], [3.0], [4.0]])
    weighted = training_profile(X, ["gpa_last_term"], np.zeros(4), sample_weight=np.array([1, 1, 1, 5]))
    assert weighted.features[0].median == 4.0  # half the weight (4 of 8) is reached only at 4
    assert training_profile(X, ["gpa_last_term"], np.zeros(4)).features[0].median == 2.5

    rng = np.random.default_rng(3)
    X, scores = rng.lognormal(size=(300, 2)), rng.random(300)
    counts = rng.integers(1, 6, 300)
    by_weight = training_profile(X, ["a", "b"], scores, sample_weight=counts.astype(float))
    by_repeat = training_profile(np.repeat(X, counts, axis=0), ["a", "b"], np.repeat(scores, counts))
    for w, r in zip(by_weight.features, by_repeat.features, strict=True):
        assert (w.median, w.edges) == (r.median, r.edges)
        assert w.shares == pytest.approx(r.shares)
    assert by_weight.score_edges == by_repeat.score_edges


def test_quantile_bins_leave_no_bin_empty_under_heavy_ties():
    # 70% of students received no assistance: the first seven deciles are all 0.
    values = np.concatenate([np.zeros(700), np.arange(1, 301) * 10.0])
    (feature,) = training_profile(values[:, None], ["assistance_received_baht_365d"], np.zeros(1000)).features
    # The zeros get a bin of their own, [0, 10); the 8th and 9th deciles are 1,000 and 2,000 baht.
    assert (feature.kind, feature.edges) == ("quantile", [10.0, 1000.0, 2000.0])
    assert feature.shares == pytest.approx([0.7, 0.099, 0.1, 0.101])


def test_profile_round_trips_through_json(profile):
    text = profile.to_json()
    assert TrainingProfile.from_json(text) == profile
    assert '"median"' in text


# ---------------------------------------------------------------- accumulator


def test_a_fresh_sample_of_the_same_population_is_stable_everywhere(profile):
    report = drift_of(profile, *population(20_000, seed=2))
    assert [f.status for f in report.features] == ["stable"] * len(NAMES)
    assert report.score_status == "stable"
    assert report.drifted == [] and report.rows == 20_000


def test_attendance_fifteen_points_lower_is_drifted(profile):
    report = drift_of(profile, *population(20_000, seed=2, attendance_shift=-0.15))
    assert report.drifted == ["att_rate_term"]
    assert report.score_status == "drifted"  # the score follows attendance


def test_income_halved_is_drifted(profile):
    report = drift_of(profile, *population(20_000, seed=2, income_factor=0.5))
    assert report.drifted == ["income_per_capita_baht"]


def test_a_feature_that_stops_arriving_is_drifted(profile):
    X, scores = population(5_000, seed=2)
    X[:, 4] = np.nan
    report = drift_of(profile, X, scores)
    gpa = report.features[4]
    assert (gpa.name, gpa.status, gpa.missing_share, gpa.missing_share_training) == ("gpa_last_term", "drifted", 1.0, 0.0)


def test_chunks_add_up_to_one_pass(profile):
    X, scores = population(10_007, seed=5, income_factor=0.8)
    whole = DriftAccumulator(profile).add(X, scores).report()
    chunked = DriftAccumulator(profile)
    for start in range(0, len(X), 1_000):
        chunked.add(X[start:start + 1_000], scores[start:start + 1_000])
    assert chunked.report() == whole


def test_thresholds_are_arguments():
    # Training half 0 and half 1; scored a quarter 0: PSI 0.2747 (see test_psi_by_hand).
    profile = training_profile(np.array([[0.0], [1.0]]), ["flag_substance"], np.array([0.2, 0.8]))
    accumulator = DriftAccumulator(profile).add(np.array([[0.0]] + [[1.0]] * 3), np.array([0.2, 0.8, 0.8, 0.8]))
    assert accumulator.report().features[0].status == "drifted"
    assert accumulator.report(threshold=0.3).features[0].status == "watch"
    assert accumulator.report(threshold=0.4, warn=0.3).features[0].status == "stable"


def test_a_chunk_with_the_wrong_columns_is_refused(profile):
    with pytest.raises(ValueError, match="expected"):
        DriftAccumulator(profile).add(np.zeros((3, 2)), np.zeros(3))


def test_values_computed_in_float64_fall_in_the_bins_of_their_float32_training_copies():
    # Training matrices are float32, scoring builds float64: 1.0 - 0.8 is 0.19999999999999996 in
    # float64 but 0.2000000030 in float32, and unrounded every perfect attender's exam-line margin
    # fell a bin below its training copy (PSI 2.9 on a population that had not moved).
    rng = np.random.default_rng(3)
    rate = np.minimum(1.0, np.round(rng.beta(12, 1.5, 20_000) * 48) / 48)
    margin = (rate - 0.8)[:, None]
    scores = np.full(20_000, 0.1)
    trained = training_profile(margin.astype(np.float32).astype(np.float64), ["att_exam_line_margin"], scores)
    report = DriftAccumulator(trained).add(margin, scores).report()
    assert report.features[0].psi < 0.01 and report.drifted == []


def test_school_days_are_counted_as_the_median_student_sees_them():
    """Two schools: a big one open every weekday, a small one closed on Mondays; days so far are the
    students' mean, and a reference term is read on the date nearest the same mean."""
    import datetime as dt

    import duckdb

    from risk.scoring.drift_reference import date_of_school_day, school_days_elapsed

    con = duckdb.connect()
    days = [dt.date(2025, 5, 19) + dt.timedelta(days=i) for i in range(28)]
    calendar = [("big", d, "2568-1") for d in days if d.weekday() < 5]
    calendar += [("small", d, "2568-1") for d in days if 0 < d.weekday() < 5]
    con.execute("CREATE TABLE calendar (school_id VARCHAR, date DATE, term VARCHAR)")
    con.executemany("INSERT INTO calendar VALUES (?, ?, ?)", calendar)
    con.execute("CREATE TABLE enrollments (school_id VARCHAR, term VARCHAR)")
    con.executemany("INSERT INTO enrollments VALUES (?, ?)", [("big", "2568-1")] * 30 + [("small", "2568-1")] * 10)
    assert school_days_elapsed(con, "2568-1", dt.date(2025, 5, 30)) == (30 * 10 + 10 * 8) / 40
    assert school_days_elapsed(con, "2568-1", dt.date(2025, 5, 18)) == 0
    assert date_of_school_day(con, "2568-1", 7) == dt.date(2025, 5, 27)  # 6.75 (Wednesday: 7.75)
    assert date_of_school_day(con, "2568-1", 99) == dt.date(2025, 6, 13)  # past the end: the last day
    assert date_of_school_day(con, "2569-1", 7) is None
    con.execute("DELETE FROM enrollments WHERE school_id = 'big'")  # now every student is in the small one
    assert school_days_elapsed(con, "2568-1", dt.date(2025, 5, 30)) == 8


# ---------------------------------------------------------------- calibrated thresholds and the warning


def limits(**features: float):
    """Thresholds of 0.2 for the score and every feature not named; all five features may ring, two needed."""
    from risk.scoring.drift import DriftLimits

    return DriftLimits(floor=0.2, score=0.2, features=features, ringing=NAMES, min_features=2, strong_multiple=5.0,
                       basis="by hand")


def calibrated(profile, limits, **shift):
    return DriftAccumulator(profile).add(*population(20_000, seed=2, **shift)).report(limits=limits)


def test_an_unchanged_population_raises_no_warning(profile):
    report = calibrated(profile, limits())
    assert (report.warning, report.warning_features) == (False, [])


def test_one_feature_a_little_past_its_threshold_is_drifted_but_no_warning(profile):
    # Incomes down 30%: PSI 0.30, past 0.2 but not five times past, and the only feature to move.
    report = calibrated(profile, limits(), income_factor=0.7)
    assert report.drifted == ["income_per_capita_baht"] and report.score_status == "stable"
    assert (report.warning, report.warning_features) == (False, [])


def test_one_feature_far_past_its_threshold_raises_the_warning_alone(profile):
    report = calibrated(profile, limits(), income_factor=0.5)  # PSI > 1, five times 0.2
    assert report.features[1].psi > 1.0
    assert (report.warning, report.warning_features) == (True, ["income_per_capita_baht"])


def test_a_threshold_calibrated_above_the_shift_keeps_it_quiet(profile):
    # The same halved income, where two past terms already differed by PSI 1.5 (threshold 2 x 1.5 = 3).
    report = calibrated(profile, limits(income_per_capita_baht=3.0), income_factor=0.5)
    income = report.features[1]
    assert (income.status, income.limit) == ("stable", 3.0) and not report.warning


def test_two_features_past_their_thresholds_raise_the_warning_and_are_named_farthest_first(profile):
    X, scores = population(20_000, seed=2, income_factor=0.7)
    X[:, 4] = np.nan  # grades stop arriving
    report = DriftAccumulator(profile).add(X, scores).report(limits=limits())
    assert report.warning and report.warning_features == ["gpa_last_term", "income_per_capita_baht"]


def test_features_outside_the_warning_are_drifted_but_never_named(profile):
    from risk.scoring.drift import DriftLimits

    quiet = DriftLimits(floor=0.2, score=0.2, ringing=["att_rate_term", "sex"], basis="by hand")
    X, scores = population(20_000, seed=2, income_factor=0.5)
    X[:, 4] = np.nan
    report = DriftAccumulator(profile).add(X, scores).report(limits=quiet)
    assert set(report.drifted) == {"income_per_capita_baht", "gpa_last_term"}
    assert not report.warning and not any(f.in_warning for f in report.features if f.name in report.drifted)


def test_the_score_past_its_threshold_raises_the_warning(profile):
    # Attendance fifteen points lower moves the score (see above): the warning names attendance too.
    report = calibrated(profile, limits(), attendance_shift=-0.15)
    assert report.score_status == "drifted" and report.warning
    assert report.warning_features == ["att_rate_term"]


def test_without_limits_any_drifted_feature_warns_as_before(profile):
    report = calibrated(profile, None, income_factor=0.7)
    assert (report.warning, report.warning_features) == (True, ["income_per_capita_baht"])
    assert report.basis == "one threshold for all, 0.2"


def test_thresholds_are_the_term_to_term_psi_times_the_multiple_with_a_floor(profile):
    from risk.scoring.drift_reference import drift_limits
    from risk.scoring.settings import DriftSettings

    settings = DriftSettings(threshold=0.2, warn=0.1, term_multiple=2.0)
    X, scores = population(20_000, seed=2, income_factor=0.7)  # the second past term: incomes 30% lower
    between = DriftAccumulator(profile).add(X, scores).report(threshold=np.inf, warn=0.0)
    made = drift_limits(profile, ("2567-1", dt.date(2024, 7, 25), X, scores), settings, NAMES, against="2568-1")
    income_psi = between.features[1].psi
    assert income_psi > 0.1
    assert made.of("income_per_capita_baht") == pytest.approx(2 * income_psi)
    assert made.of("sex") == 0.2  # two samples of one population: PSI ~0.0002, so the floor
    assert made.score == max(0.2, 2 * between.score_psi)
    assert made.basis.startswith("2 x the PSI between past terms 2567-1 (on 2024-07-25, 20,000 students) and 2568-1")


def test_without_a_second_past_term_the_floor_is_used_and_the_record_says_why(profile):
    from risk.scoring.drift_reference import drift_limits
    from risk.scoring.settings import DriftSettings

    made = drift_limits(profile, "2567-1 is the first term of the data", DriftSettings(threshold=0.15, warn=0.1),
                        NAMES, against="2568-1")
    assert (made.features, made.score, made.of("sex")) == ({}, 0.15, 0.15)
    assert made.basis == "no second past term (2567-1 is the first term of the data): every threshold is the config's 0.15"
