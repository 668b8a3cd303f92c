"""The per-action estimate adjusts for the features the term was scored on, not only the score."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from risk.impact.actions import _covariates, per_action_effects
from risk.impact.features import scored_features
from risk.impact.outcomes import TermOutcomes
from risk.impact.run import estimate_impact
from risk.store import open_store


def selected_on_distance(seed: int = 3, schools: int = 120, per_school: int = 40) -> tuple[pd.DataFrame, float]:
    """Alerted children whose teachers visit those living far (``distance_km``, which the score does not hold).

    Living far raises dropout and the chance of a visit, so visited children would have dropped out more;
    a visit cuts each child's dropout probability by 30%. Returns the frame and the true average effect of
    a visit over its children (a proportion). A tenth of distances were never recorded (NaN).
    """
    rng = np.random.default_rng(seed)
    n = schools * per_school
    score = expit(rng.normal(-1.0, 0.8, n))
    distance = rng.gamma(2.0, 3.0, n)
    far = (distance - distance.mean()) / distance.std()
    p_untreated = expit(np.log(score / (1 - score)) + 1.2 * far)
    visited = (rng.random(n) < expit(-0.5 + 2.0 * far)).astype(float)
    dropped = (rng.random(n) < np.where(visited == 1, 0.7 * p_untreated, p_untreated)).astype(int)
    recorded = np.where(rng.random(n) < 0.1, np.nan, distance)
    frame = pd.DataFrame({"school_id": np.repeat(np.arange(schools), per_school), "score": score,
                          "distance_km": recorded, "home_visit": visited, "dropped_out": dropped})
    return frame, float((-0.3 * p_untreated).mean())


def test_selection_on_a_feature_the_score_lacks_is_undone_only_with_the_feature():
    frame, truth = selected_on_distance()
    with_score = per_action_effects(frame, ["home_visit"], [], seed=1)[0]
    with_feature = per_action_effects(frame, ["home_visit"], ["distance_km"], seed=1)[0]
    assert with_score.naive.estimate - truth > 2 * with_score.naive.se  # the visits look harmful
    assert abs(with_feature.adjusted.estimate - truth) < abs(with_score.adjusted.estimate - truth)
    assert with_score.adjusted.estimate > 0 > with_feature.adjusted.estimate  # only with it do visits help
    assert "distance_km" in with_feature.adjusted.method


def test_the_logistic_learner_fills_a_missing_feature_with_its_median_and_marks_where():
    frame = pd.DataFrame({"score": [0.5, 0.5, 0.5, 0.5], "a": [1.0, np.nan, 3.0, 5.0], "same": [2.0] * 4})
    X = _covariates(frame, ["a", "same"], "logistic")
    assert X[:, 1].tolist() == [1.0, 3.0, 3.0, 5.0]  # the median of 1, 3, 5; the constant column dropped
    assert X[:, 2].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert X.shape == (4, 3)


def test_lightgbm_keeps_a_missing_feature_missing():
    frame = pd.DataFrame({"score": [0.5, 0.5, 0.5], "a": [1.0, np.nan, 3.0]})
    assert np.isnan(_covariates(frame, ["a"], "lightgbm")[1, 1])


def plain_outcomes(features: list[str], note: str) -> TermOutcomes:
    frame, _ = selected_on_distance(schools=40)
    frame = frame.assign(flagged=True, alerted=1, acted=frame["home_visit"].astype(int), arm=None,
                         transition_p6=np.arange(len(frame)) % 2, transition_m3=0,
                         home_visit=frame["home_visit"].astype(int))
    return TermOutcomes(term="2569-1", frame=frame.rename(columns={"distance_km": "feature:distance_km"}),
                        plan=None, action_codes=["home_visit"], features=features, feature_note=note)


def test_the_method_names_what_was_adjusted_for():
    adjusted = estimate_impact(plain_outcomes(["feature:distance_km"], "1 features of the matrix at 2026-07-24"),
                               permutations=100).estimates.query("estimand == 'action_adjusted'")
    assert "the 1 features it was computed from (1 features of the matrix at 2026-07-24)" in adjusted["method"].iloc[0]


def test_without_a_feature_matrix_the_estimate_falls_back_to_score_and_grade_flags_and_says_why():
    result = estimate_impact(plain_outcomes([], "no finished scoring run of 2569-1 in the store"), permutations=100)
    adjusted = result.estimates.query("estimand == 'action_adjusted'")
    assert "the score and the transition-grade flags" in adjusted["method"].iloc[0]
    assert any("score and the transition-grade flags only: no finished scoring run" in n for n in result.notes)


def test_a_term_never_scored_gives_no_features_and_says_so(tmp_path):
    from risk.config import load_settings

    store = open_store(f"sqlite:///{tmp_path / 'risk.db'}")
    scored = scored_features(store, tmp_path / "validated", "2569-1", load_settings())
    assert scored.frame is None and scored.note == "no finished scoring run of 2569-1 in the store"
    store.close()


def test_adjusting_for_a_pure_noise_feature_changes_the_estimate_little():
    frame, _ = selected_on_distance(seed=5)
    noise = frame.assign(noise=np.random.default_rng(5).normal(size=len(frame)))
    plain = per_action_effects(noise, ["home_visit"], ["distance_km"], seed=1)[0].adjusted
    noisy = per_action_effects(noise, ["home_visit"], ["distance_km", "noise"], seed=1)[0].adjusted
    assert abs(noisy.estimate - plain.estimate) < 0.5 * plain.se
