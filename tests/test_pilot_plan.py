"""The wait-list plan: a reproducible stratified draw, the ICC from past terms, and what a plan can detect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from risk.errors import ConfigError
from risk.impact.design import (
    ALERT_NOW,
    assign_schools,
    design_effect,
    icc_from_past_terms,
    minimum_detectable_effect,
    power_for_effect,
)
from risk.impact.estimate import intention_to_treat
from risk.impact.plan import Baseline, _baseline_lines, semester_base_rate
from risk.impact.simulate import simulate_pilot
from risk.impact.strata import size_bucket


def schools(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"school_id": [f"1{j:07d}" for j in range(n)],
                         "province": rng.choice(["Nan", "Tak", "Yala"], n),
                         "size": rng.integers(20, 2000, n)})


def test_same_schools_and_seed_give_the_same_plan_in_any_row_order():
    table = schools()
    plan = assign_schools(table, 0.5, ["province", "size"], seed=7)
    shuffled = assign_schools(table.sample(frac=1.0, random_state=3), 0.5, ["province", "size"], seed=7)
    pd.testing.assert_frame_equal(plan, shuffled)


def test_another_seed_gives_another_plan():
    table = schools()
    first = assign_schools(table, 0.5, ["province"], seed=1)["arm"]
    second = assign_schools(table, 0.5, ["province"], seed=2)["arm"]
    assert (first != second).any()


def test_each_stratum_gets_its_share_of_alert_schools():
    plan = assign_schools(schools(400), 0.3, ["province", "size"], seed=5)
    for _, rows in plan.groupby("stratum"):
        wanted = 0.3 * len(rows)
        assert np.floor(wanted + 1e-9) <= (rows["arm"] == ALERT_NOW).sum() <= np.ceil(wanted - 1e-9)


def test_a_whole_share_is_met_exactly_in_every_stratum():
    table = pd.DataFrame({"school_id": range(40), "province": ["Nan"] * 20 + ["Tak"] * 20, "size": 100})
    plan = assign_schools(table, 0.25, ["province"], seed=11)
    assert plan.groupby("stratum")["arm"].apply(lambda a: (a == ALERT_NOW).sum()).to_dict() == {
        "Nan": 5, "Tak": 5}


def test_a_school_alone_in_its_stratum_gets_alerts_half_the_time_not_never():
    table = pd.DataFrame({"school_id": ["a", "b", "c"], "province": ["Nan", "Tak", "Yala"], "size": 50})
    treated = np.mean([assign_schools(table, 0.5, ["province"], seed=s)["arm"] == ALERT_NOW
                       for s in range(100)], axis=0)
    assert (np.abs(treated - 0.5) < 0.2).all()  # 100 draws: SD 0.05 about 0.5


def test_strata_too_small_for_both_arms_lose_their_size_then_are_pooled():
    table = pd.DataFrame({"school_id": list("abcdefg"),
                          "province": ["Nan", "Nan", "Nan", "Nan", "Tak", "Tak", "Yala"],
                          "size": [50, 50, 900, 900, 50, 900, 50]})
    plan = assign_schools(table, 0.5, ["province", "size"], seed=1).set_index("school_id")["stratum"]
    # Nan's size strata hold two schools each; Tak's two sizes hold one each, so Tak keeps only
    # its province; Yala's one school has nobody to be compared with and joins the pool.
    assert plan.to_dict() == {"a": "Nan|small", "b": "Nan|small", "c": "Nan|large", "d": "Nan|large",
                              "e": "Tak", "f": "Tak", "g": "pooled"}


def test_size_strata_are_obec_classes_of_the_student_count():
    counts = pd.Series([0, 120, 121, 600, 601, 1500, 1501])
    assert size_bucket(counts).tolist() == ["small", "small", "medium", "medium", "large", "large",
                                            "extra_large"]


def test_a_share_outside_zero_to_one_or_an_unknown_stratum_is_refused():
    with pytest.raises(ConfigError, match="share"):
        assign_schools(schools(), 1.0, [], seed=0)
    with pytest.raises(ConfigError, match="district"):
        assign_schools(schools(), 0.5, ["district"], seed=0)


def test_icc_of_two_schools_matches_the_anova_by_hand():
    # School A: 2 of 4 dropped out, school B: none. MSB = 0.5, MSW = 1/6, n0 = 4:
    # (0.5 - 1/6) / (0.5 + 3 * 1/6) = 1/3.
    outcomes = pd.DataFrame({"school_id": list("AAAABBBB"), "term": "2567-1",
                             "dropped_out": [1, 1, 0, 0, 0, 0, 0, 0]})
    estimate = icc_from_past_terms(outcomes)
    assert estimate.icc == pytest.approx(1 / 3)
    assert estimate.per_term == {"2567-1": pytest.approx(1 / 3)}


def test_icc_recovers_a_planted_school_correlation():
    # School rates from Beta(3.8, 15.2): mean 0.2, intra-class correlation 1 / (3.8 + 15.2 + 1) = 0.05.
    rng = np.random.default_rng(4)
    frames = []
    for term in ("2566-1", "2566-2", "2567-1"):
        rates = rng.beta(3.8, 15.2, 400)
        school = np.repeat(np.arange(400), 50)
        frames.append(pd.DataFrame({"school_id": school, "term": term,
                                    "dropped_out": (rng.random(len(school)) < rates[school]).astype(int)}))
    assert icc_from_past_terms(pd.concat(frames)).icc == pytest.approx(0.05, abs=0.012)


def test_a_change_of_dropout_level_between_terms_is_not_read_as_clustering():
    rng = np.random.default_rng(5)
    school = np.repeat(np.arange(200), 40)
    frames = [pd.DataFrame({"school_id": school, "term": term,
                            "dropped_out": (rng.random(len(school)) < rate).astype(int)})
              for term, rate in (("2566-2", 0.05), ("2567-1", 0.30))]
    assert icc_from_past_terms(pd.concat(frames)).icc < 0.01


def test_design_effect_with_equal_schools_is_one_plus_m_minus_one_icc():
    assert design_effect(21, 0.0, 0.05) == pytest.approx(2.0)
    assert design_effect(21, 0.5, 0.05) == pytest.approx(1 + (1.25 * 21 - 1) * 0.05)


def test_without_clustering_the_mde_is_the_textbook_two_proportion_one():
    # ICC 0 and many schools: (z_0.975 + z_0.8) * sqrt(p(1-p)/n_arm + p1(1-p1)/n_arm).
    mde = minimum_detectable_effect(2000, 50, 0.5, 0.2, 0.0)
    p1 = 0.2 + mde.absolute_change
    textbook = (1.959964 + 0.841621) * np.sqrt((0.2 * 0.8 + p1 * (1 - p1)) / 50_000)
    assert -mde.absolute_change == pytest.approx(textbook, rel=0.01)
    assert mde.relative_change == pytest.approx(mde.absolute_change / 0.2)


def test_power_at_the_mde_is_the_power_asked_for_and_rises_with_the_effect():
    counts = np.random.default_rng(0).poisson(30, 200)
    mde = minimum_detectable_effect(200, counts, 0.5, 0.15, 0.04)
    assert power_for_effect(200, counts, 0.5, 0.15, 0.04, mde.relative_change) == pytest.approx(0.8, abs=1e-6)
    assert power_for_effect(200, counts, 0.5, 0.15, 0.04, 1.5 * mde.relative_change) > 0.9
    assert mde.cv_students > 0.1  # the counts' spread entered the design effect


def test_unequal_schools_need_a_larger_effect_than_equal_ones():
    equal = minimum_detectable_effect(100, 30, 0.5, 0.15, 0.05)
    unequal = minimum_detectable_effect(100, [10, 50] * 50, 0.5, 0.15, 0.05)
    assert unequal.relative_change < equal.relative_change < 0


# Clustering strong enough (design effect about 1.5) that a CI ignoring it would detect far
# more often than the plan predicts (about 0.93), and this test would fail.
ICC_LOGIT = 0.15


def past_terms(n_schools: int, mean_students: float, terms: int) -> pd.DataFrame:
    """Flagged students' outcomes of earlier terms, with no alerts (no effect)."""
    frames = []
    for term in range(terms):
        students = simulate_pilot(n_schools, mean_students, effects={}, icc_logit=ICC_LOGIT,
                                  seed=1000 + term).students
        frames.append(students.loc[students["flagged"], ["school_id", "dropped_out"]].assign(term=str(term)))
    return pd.concat(frames)


def test_pilots_at_the_predicted_mde_detect_it_at_the_predicted_power():
    # The plan's inputs as `risk pilot plan` gets them: base rate, ICC and flagged students per
    # school from past terms; then 200 pilots planted with exactly that relative effect.
    n_schools, mean_students = 200, 30
    past = past_terms(n_schools, mean_students, terms=20)
    counts = past.groupby(["term", "school_id"]).size().to_numpy()
    mde = minimum_detectable_effect(n_schools, counts, 0.5, past["dropped_out"].mean(),
                                    icc_from_past_terms(past).icc)
    detected = []
    for seed in range(200):
        world = simulate_pilot(n_schools, mean_students, effects={"alert": mde.relative_change},
                               icc_logit=ICC_LOGIT, seed=seed)
        ci = intention_to_treat(world.students, permutations=20, seed=seed).absolute
        detected.append(ci.ci_high < 0 or ci.ci_low > 0)
    assert mde.design_effect > 1.4
    assert np.mean(detected) == pytest.approx(0.8, abs=0.08)


def past_outcomes() -> pd.DataFrame:
    """Two first semesters with 1 dropout in 10 each, one second semester with 3 in 10."""
    rows = [(term, 1 if i < k else 0) for term, k in (("2566-1", 1), ("2566-2", 3), ("2567-1", 1)) for i in range(10)]
    return pd.DataFrame(rows, columns=["term", "dropped_out"])


def test_the_base_rate_comes_from_past_terms_of_the_pilot_terms_semester():
    assert semester_base_rate(past_outcomes(), "2568-1") == (pytest.approx(0.1), ["2566-1", "2567-1"], True)
    assert semester_base_rate(past_outcomes(), "2567-2") == (pytest.approx(0.3), ["2566-2"], True)


def test_without_a_past_term_of_its_semester_the_base_rate_is_of_all_past_terms():
    first_semesters = past_outcomes().query("term != '2566-2'")
    assert semester_base_rate(first_semesters, "2567-2") == (pytest.approx(0.1), ["2566-1", "2567-1"], False)


def test_the_plan_names_the_terms_its_base_rate_came_from():
    icc = icc_from_past_terms(past_outcomes().assign(school_id=["A", "B"] * 15))
    baseline = Baseline(basis="flagged", terms=["2566-1", "2566-2", "2567-1"], base_rate=0.1, icc=icc,
                        flagged_share=0.2, rate_terms=["2566-1", "2567-1"], same_semester=True)
    line = " ".join(_baseline_lines(baseline))
    assert "base rate 10.0% from terms 2566-1, 2567-1 (the pilot term's semester)" in line
