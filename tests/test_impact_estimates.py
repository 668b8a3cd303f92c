"""Impact estimates held to simulated pilots whose truth is known (risk.impact.simulate)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from risk.errors import ContractError
from risk.impact.actions import per_action_effects
from risk.impact.estimate import complier_effect, intention_to_treat
from risk.impact.simulate import simulate_pilot

TWO_ACTIONS = {"home_visit": -0.3, "learning_support": -0.1}


def hand_pilot() -> pd.DataFrame:
    """Four schools, two per arm; flagged dropout 2/4 and 1/4 in alert schools, 3/4 and 2/4 in wait-list ones."""
    dropped = {"A": [1, 1, 0, 0], "B": [1, 0, 0, 0], "C": [1, 1, 1, 0], "D": [1, 1, 0, 0]}
    rows = [{"student_key": f"{school}{i}", "school_id": school, "flagged": True, "dropped_out": y,
             "arm": "alert_now" if school in "AB" else "wait_list"}
            for school, ys in dropped.items() for i, y in enumerate(ys)]
    # An unflagged student who dropped out in an alert school: the alerts could not reach them.
    rows.append({"student_key": "A9", "school_id": "A", "flagged": False, "dropped_out": 1, "arm": "alert_now"})
    return pd.DataFrame(rows)


def test_without_strata_the_effect_is_the_difference_of_flagged_dropout_rates():
    effect = intention_to_treat(hand_pilot(), permutations=200)
    assert effect.alert_now_rate == pytest.approx(3 / 8)
    assert effect.wait_list_rate == pytest.approx(5 / 8)
    assert effect.absolute.estimate == pytest.approx(3 / 8 - 5 / 8)
    assert effect.relative.estimate == pytest.approx((3 / 8 - 5 / 8) / (5 / 8))
    assert (effect.absolute.n_students, effect.absolute.n_schools) == (16, 4)


def test_strata_without_both_arms_are_pooled_not_left_to_identify_nothing():
    # Each school its own stratum (a plan of singleton strata): strata fixed effects alone would
    # absorb every school and report 0 ± 0; pooled, the estimate is the plain difference.
    frame = hand_pilot().assign(stratum=lambda f: f["school_id"])
    effect = intention_to_treat(frame, permutations=200)
    plain = intention_to_treat(hand_pilot(), permutations=200)
    assert effect.absolute.estimate == pytest.approx(3 / 8 - 5 / 8)
    assert effect.absolute.se == pytest.approx(plain.absolute.se) and effect.absolute.se > 0
    assert effect.randomisation.p_value == pytest.approx(plain.randomisation.p_value)


def test_an_unknown_arm_is_named_in_the_error():
    frame = hand_pilot()
    frame.loc[0, "arm"] = "alerts"
    with pytest.raises(ContractError, match="alerts"):
        intention_to_treat(frame)


def test_the_pilot_ci_covers_the_planted_effect():
    world = simulate_pilot(300, 120, effects={"alert": -0.3}, seed=3)
    effect = intention_to_treat(world.students, permutations=1000, seed=3)
    assert effect.absolute.covers(world.truth.itt_absolute)
    assert effect.relative.covers(world.truth.itt_relative)
    assert effect.randomisation.covers(world.truth.itt_absolute)
    assert effect.absolute.ci_high < 0  # a third fewer dropouts in 300 schools is seen


def test_with_no_effect_the_ci_covers_zero_and_randomisation_finds_nothing():
    world = simulate_pilot(300, 120, effects={"alert": 0.0}, seed=4)
    effect = intention_to_treat(world.students, permutations=1000, seed=4)
    assert effect.absolute.covers(0.0) and effect.randomisation.covers(0.0)
    assert effect.randomisation.p_value > 0.05


def test_randomisation_inference_is_reproducible_from_its_seed_and_agrees_with_the_clustered_ci():
    world = simulate_pilot(200, 100, effects={"alert": -0.3}, seed=5)
    first = intention_to_treat(world.students, permutations=500, seed=9).randomisation
    again = intention_to_treat(world.students, permutations=500, seed=9).randomisation
    clustered = intention_to_treat(world.students, permutations=500, seed=9).absolute
    assert first == again
    assert first.ci_high - first.ci_low == pytest.approx(clustered.ci_high - clustered.ci_low, rel=0.25)


def test_the_effect_in_schools_that_acted_is_the_pilot_effect_over_the_share_that_acted():
    world = simulate_pilot(300, 120, effects={"alert": -0.3}, school_act_share=0.5, seed=6)
    students = world.students.drop(columns="stratum")  # no strata: 2SLS is the Wald ratio exactly
    itt = intention_to_treat(students, permutations=100).absolute.estimate
    flagged = students[students["flagged"]]
    first_stage = flagged.groupby("arm", observed=True)["acted_school"].mean()
    complier = complier_effect(students)
    assert complier.estimate == pytest.approx(itt / (first_stage["alert_now"] - first_stage["wait_list"]))
    assert complier.covers(world.truth.complier_absolute)


def test_under_selection_the_naive_difference_is_biased_and_the_adjusted_one_is_closer():
    # Teachers act more on children whose risk they see (x2, recorded) and, a little, on risk
    # nobody recorded: acted-on children would have dropped out more, which hides the help.
    world = simulate_pilot(400, 150, effects=TWO_ACTIONS, act_rate=0.4, selection=1.5,
                           hidden_selection=0.3, seed=7)
    students = world.students
    alerted = students[students["flagged"] & (students["arm"] == "alert_now")]
    home_visit = per_action_effects(alerted, ["home_visit", "learning_support"], ["x1", "x2"], seed=7)[0]
    truth = world.truth.action_ate["home_visit"]
    naive_error = home_visit.naive.estimate - truth
    assert naive_error > 2 * home_visit.naive.se
    assert abs(home_visit.adjusted.estimate - truth) < abs(naive_error)
    assert "observational" in home_visit.evidence and "weaker" in home_visit.adjusted.evidence


def test_without_hidden_selection_the_adjusted_estimate_covers_the_truth():
    world = simulate_pilot(400, 150, effects=TWO_ACTIONS, act_rate=0.4, selection=1.5, seed=8)
    students = world.students
    alerted = students[students["flagged"] & (students["arm"] == "alert_now")]
    results = per_action_effects(alerted, ["home_visit", "learning_support"], ["x1", "x2"], seed=8)
    for result in results:
        assert result.adjusted.covers(world.truth.action_ate[result.action])


def test_an_action_nobody_got_cannot_be_estimated():
    world = simulate_pilot(60, 60, effects={"home_visit": -0.3}, seed=9)
    alerted = world.students[world.students["flagged"] & (world.students["arm"] == "alert_now")]
    with pytest.raises(ContractError, match="counselling"):
        per_action_effects(alerted.assign(counselling=0), ["counselling"], ["x1", "x2"])


def test_the_lightgbm_learner_gives_an_estimate_near_the_logistic_one():
    world = simulate_pilot(300, 120, effects={"home_visit": -0.3}, act_rate=0.4, selection=1.0, seed=10)
    alerted = world.students[world.students["flagged"] & (world.students["arm"] == "alert_now")]
    logistic = per_action_effects(alerted, ["home_visit"], ["x1", "x2"], folds=3, seed=1)[0].adjusted
    boosted = per_action_effects(alerted, ["home_visit"], ["x1", "x2"], learner="lightgbm", folds=3,
                                 seed=1)[0].adjusted
    assert abs(boosted.estimate - logistic.estimate) < 2 * logistic.se
    assert np.isfinite(boosted.se) and boosted.se > 0
