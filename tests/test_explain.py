"""Reasons a teacher reads: SHAP from LightGBM, filtered by the catalog's direction and the training median."""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import shap
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from risk.features.catalog import Catalog, Texts, load_catalog
from risk.models.booster import booster_contributions
from risk.models.explain import reason_codes_json, reasons_json, top_reasons
from risk.models.forest import CompiledForest
from risk.models.profile import training_profile

CATALOG_FILE = Path(__file__).resolve().parent.parent / "configs" / "features.yaml"
NAMES = ["att_rate_term", "gpa_last_term", "flag_substance", "sex", "income_per_capita_baht"]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(CATALOG_FILE)


def profile_from(columns: dict[str, list[float]]):
    """A training profile of the given columns (three values each, so the median is the middle one)."""
    X = np.array(list(columns.values()), dtype=np.float64).T
    return training_profile(X, list(columns), scores=np.linspace(0, 1, len(X)))


def one_row(contribution_by_feature: dict[str, float]) -> np.ndarray:
    """Contributions of one student in the order given, then an expected value of −3 log-odds."""
    return np.array([[*contribution_by_feature.values(), -3.0]])


def synthetic_students(n: int = 2_000, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Five real features; risk rises as attendance, grades and income fall and with substance use."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([
        rng.beta(12, 1.5, n),                       # att_rate_term, share
        rng.uniform(0, 4, n).round(1),              # gpa_last_term
        (rng.random(n) < 0.1).astype(float),        # flag_substance
        rng.integers(0, 2, n).astype(float),        # sex (category code; no effect)
        rng.lognormal(7.5, 0.6, n).round(),         # income_per_capita_baht
    ])
    logit = -2 - 12 * (X[:, 0] - 0.88) - 0.8 * (X[:, 1] - 2) + 1.5 * X[:, 2] - 0.0004 * (X[:, 4] - 1800)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


@pytest.fixture(scope="module")
def trained():
    X, y = synthetic_students()
    params = {"objective": "binary", "num_leaves": 8, "learning_rate": 0.1, "min_data_in_leaf": 20,
              "verbose": -1, "seed": 1, "deterministic": True, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(X, y, feature_name=NAMES), num_boost_round=40)
    return booster, X


@pytest.mark.filterwarnings("ignore::UserWarning:shap")
def test_contributions_equal_shap_tree_explainer(trained):
    booster, X = trained
    ours = booster_contributions(booster, X)
    explainer = shap.TreeExplainer(booster)
    theirs = np.asarray(explainer.shap_values(X), dtype=np.float64)
    assert ours.shape == (len(X), len(NAMES) + 1)
    assert theirs.shape == (len(X), len(NAMES))
    assert ours.dtype == np.float64
    assert np.max(np.abs(ours[:, :-1] - theirs)) < 1e-6
    assert np.max(np.abs(ours[:, -1] - float(np.ravel(explainer.expected_value)[0]))) < 1e-6


@pytest.mark.filterwarnings("ignore::UserWarning:shap")
def test_the_compiled_forests_contributions_equal_shap_tree_explainer_too(trained):
    # Batches are explained by the compiled forest's TreeSHAP tables (risk.models.forest), not pred_contrib.
    booster, X = trained
    forest = CompiledForest.from_booster(booster)
    assert forest is not None and forest.explains
    ours = forest.contributions(X)
    explainer = shap.TreeExplainer(booster)
    theirs = np.asarray(explainer.shap_values(X), dtype=np.float64)
    assert np.max(np.abs(ours[:, :-1] - theirs)) < 1e-6
    assert np.max(np.abs(ours[:, -1] - float(np.ravel(explainer.expected_value)[0]))) < 1e-6


def test_contributions_add_up_to_the_raw_score(trained):
    booster, X = trained
    assert np.allclose(booster_contributions(booster, X).sum(axis=1), booster.predict(X, raw_score=True))


def test_reasons_from_a_trained_model_name_low_attendance_first_for_a_child_who_rarely_comes(trained, catalog):
    booster, X = trained
    profile = training_profile(X, NAMES, booster.predict(X))
    child = np.array([[0.55, 2.0, 0.0, 1.0, 1800.0]])
    (reasons,) = top_reasons(booster_contributions(booster, child), child, NAMES, catalog, profile)
    assert reasons[0].code == "att_rate_term"
    assert reasons[0].en == "Attended only 55% of school days this term"


# One case per domain of the catalog: feature, the student's value, three training values
# (low, median, high), and the texts a teacher reads in English and Thai.
DOMAIN_CASES = [
    ("att_rate_term", 0.71, [0.80, 0.95, 1.00],
     "Attended only 71% of school days this term", "มาเรียนเพียง 71% ของวันเรียนในภาคเรียนนี้"),
    ("gpa_last_term", 1.5, [2.0, 3.0, 3.5],
     "Grade average last term was 1.5", "เกรดเฉลี่ยภาคเรียนที่แล้ว 1.5"),
    ("repeated_grade", 1.0, [0.0, 0.0, 1.0],
     "Repeating this grade: yes", "ซ้ำชั้น: ใช่"),
    ("income_per_capita_baht", 1200.0, [1500.0, 3000.0, 6000.0],
     "Household income is 1,200 baht per person a month", "รายได้ครัวเรือน 1,200 บาท ต่อคนต่อเดือน"),
    ("bmi_for_age_z", -2.3, [-1.0, 0.0, 1.0],
     "BMI-for-age is 2.3 SD under the WHO median", "ดัชนีมวลกายตามอายุต่ำกว่าค่ามัธยฐานของ WHO 2.3 SD"),
    ("flag_substance", 1.0, [0.0, 0.0, 0.0],
     "Substance use flagged: yes", "พบการใช้สารเสพติด: ใช่"),
    ("months_since_last_payment", 7.0, [1.0, 2.0, 3.0],
     "7 months since the last assistance received", "ไม่ได้รับความช่วยเหลือมา 7 เดือน"),
    ("school_past_dropout_rate", 0.12, [0.01, 0.02, 0.05],
     "12% of this school's students did not return in past terms",
     "12% ของนักเรียนโรงเรียนนี้ไม่กลับมาเรียนในภาคเรียนก่อน ๆ"),
]


@pytest.mark.parametrize(("name", "value", "training", "en", "th"), DOMAIN_CASES, ids=[c[0] for c in DOMAIN_CASES])
def test_reason_text_fills_the_value_in_both_languages(catalog, name, value, training, en, th):
    role = catalog.get(name).role  # the school's past rate is context: told once per school, not per child
    (reasons,) = top_reasons(one_row({name: 0.4}), np.array([[value]]), [name], catalog,
                             profile_from({name: training}), role=role)
    assert [(r.code, r.value, r.contribution, r.en, r.th) for r in reasons] == [(name, value, 0.4, en, th)]


def test_the_domain_cases_cover_every_domain(catalog):
    assert {catalog.get(case[0]).domain for case in DOMAIN_CASES} == {
        "attendance", "grades", "enrollment", "household", "health", "behaviour", "assistance", "context"}


def test_reasons_come_strongest_first_and_only_from_contributions_above_zero(catalog):
    names = ["att_rate_term", "gpa_last_term", "flag_substance", "income_per_capita_baht"]
    profile = profile_from({"att_rate_term": [0.8, 0.9, 1.0], "gpa_last_term": [2.0, 2.5, 3.0],
                            "flag_substance": [0, 0, 1], "income_per_capita_baht": [1000, 2000, 3000]})
    X = np.array([[0.70, 1.0, 1.0, 500.0]])
    contribs = one_row({"att_rate_term": 0.2, "gpa_last_term": 0.9, "flag_substance": 0.0,
                        "income_per_capita_baht": 0.5})
    (reasons,) = top_reasons(contribs, X, names, catalog, profile, k=3)
    assert [r.code for r in reasons] == ["gpa_last_term", "income_per_capita_baht", "att_rate_term"]


def test_a_student_who_attends_98_percent_gets_the_next_contributor_instead(catalog):
    names = ["att_rate_term", "gpa_last_term"]
    profile = profile_from({"att_rate_term": [0.80, 0.90, 1.00], "gpa_last_term": [2.0, 2.5, 3.0]})
    X = np.array([[0.98, 1.5]])
    (reasons,) = top_reasons(one_row({"att_rate_term": 0.8, "gpa_last_term": 0.3}), X, names, catalog, profile, k=1)
    assert [r.en for r in reasons] == ["Grade average last term was 1.5"]


def test_a_value_at_the_median_is_not_a_reason(catalog):
    profile = profile_from({"att_rate_term": [0.80, 0.90, 1.00]})
    (reasons,) = top_reasons(one_row({"att_rate_term": 0.8}), np.array([[0.90]]), ["att_rate_term"], catalog, profile)
    assert reasons == []


def test_a_value_at_the_median_of_a_float32_training_matrix_is_not_a_reason(catalog):
    # Training matrices are float32; 47 of 49 days is 0.95918367346 in float64 but its float32
    # copy, the stored median, is 0.95918369293: unrounded, the child at the median read as below it.
    at_median = 47 / 49
    column = np.array([0.80, at_median, 1.00], dtype=np.float32).astype(np.float64).tolist()
    profile = profile_from({"att_rate_term": column})
    (reasons,) = top_reasons(one_row({"att_rate_term": 0.8}), np.array([[at_median]]), ["att_rate_term"], catalog,
                             profile)
    assert reasons == []


def test_a_flag_is_a_reason_only_when_set(catalog):
    profile = profile_from({"flag_substance": [0, 0, 1]})
    X = np.array([[1.0], [0.0]])
    contribs = np.array([[0.5, -3.0], [0.5, -3.0]])
    reasons = top_reasons(contribs, X, ["flag_substance"], catalog, profile)
    assert [[r.en for r in row] for row in reasons] == [["Substance use flagged: yes"], []]


def test_context_is_no_childs_reason_but_is_the_schools(catalog):
    names = ["school_past_dropout_rate", "transition_year", "att_rate_term"]
    profile = profile_from({"school_past_dropout_rate": [0.01, 0.02, 0.05], "transition_year": [0, 0, 1],
                            "att_rate_term": [0.8, 0.9, 1.0]})
    X = np.array([[0.12, 1.0, 0.7]])
    contribs = one_row({"school_past_dropout_rate": 2.0, "transition_year": 1.5, "att_rate_term": 0.1})
    (child,) = top_reasons(contribs, X, names, catalog, profile, k=3)
    (context,) = top_reasons(contribs, X, names, catalog, profile, k=3, role="context")
    assert [r.code for r in child] == ["att_rate_term"]
    assert [r.code for r in context] == ["school_past_dropout_rate", "transition_year"]


def test_a_protected_feature_is_never_a_reason_whatever_its_contribution(catalog):
    names = ["non_thai", "has_disability", "sex", "gpa_last_term"]
    profile = profile_from({"non_thai": [0, 0, 1], "has_disability": [0, 0, 1], "sex": [0, 1, 1],
                            "gpa_last_term": [2.0, 2.5, 3.0]})
    X = np.array([[1.0, 1.0, 0.0, 1.5]])
    contribs = one_row({"non_thai": 3.0, "has_disability": 2.0, "sex": 1.0, "gpa_last_term": 0.1})
    for role in ("child", "context"):
        (reasons,) = top_reasons(contribs, X, names, catalog, profile, k=3, role=role)
        assert [r.code for r in reasons] == (["gpa_last_term"] if role == "child" else [])
    with pytest.raises(ValueError, match="protected features are never reasons"):
        top_reasons(contribs, X, names, catalog, profile, role="protected")


def test_one_reason_per_group_the_strongest_and_the_next_slot_goes_to_another_fact(catalog):
    names = ["att_rate_term", "att_rate_20d", "att_exam_line_margin", "gpa_last_term", "gpa_term_before",
             "grade_level"]
    profile = profile_from({"att_rate_term": [0.8, 0.9, 1.0], "att_rate_20d": [0.8, 0.9, 1.0],
                            "att_exam_line_margin": [0.0, 0.1, 0.2], "gpa_last_term": [2.0, 2.5, 3.0],
                            "gpa_term_before": [2.0, 2.5, 3.0], "grade_level": [3, 8, 11]})
    X = np.array([[0.7, 0.6, -0.1, 1.5, 1.8, 10.0]])
    contribs = one_row({"att_rate_term": 0.5, "att_rate_20d": 0.9, "att_exam_line_margin": 0.7,
                        "gpa_last_term": 0.2, "gpa_term_before": 0.3, "grade_level": 0.0})
    (reasons,) = top_reasons(contribs, X, names, catalog, profile, k=3)
    assert [r.code for r in reasons] == ["att_rate_20d", "gpa_term_before"]


def test_exam_line_reasons_only_from_p1_up(catalog):
    names = ["att_exam_line_margin", "grades_not_eligible_last_term", "att_late_term", "grade_level"]
    profile = profile_from({"att_exam_line_margin": [0.0, 0.1, 0.2], "grades_not_eligible_last_term": [0, 0, 1],
                            "att_late_term": [0, 1, 3], "grade_level": [3, 8, 11]})
    grades = load_catalog(CATALOG_FILE).grades
    rows = [grades.index(g) for g in ("K2", "K3", "P1", "M4")] + [np.nan]
    X = np.array([[-0.1, 2.0, 5.0, g] for g in rows])
    contribs = np.tile(one_row({"att_exam_line_margin": 0.9, "grades_not_eligible_last_term": 0.5,
                                "att_late_term": 0.1, "grade_level": 0.0}), (len(rows), 1))
    codes = [[r.code for r in row] for row in top_reasons(contribs, X, names, catalog, profile, k=3)]
    exam = ["att_exam_line_margin", "grades_not_eligible_last_term", "att_late_term"]
    assert codes == [["att_late_term"], ["att_late_term"], exam, exam, ["att_late_term"]]
    # Without a grade column no grade is known: the exam-line features are no reasons at all.
    (alone,) = top_reasons(contribs[:1, [0, 2, 4]], X[:1, [0, 2]], ["att_exam_line_margin", "att_late_term"],
                           catalog, profile_from({"att_exam_line_margin": [0.0, 0.1, 0.2], "att_late_term": [0, 1, 3]}))
    assert [r.code for r in alone] == ["att_late_term"]


def test_a_blocked_feature_is_no_reason_for_that_row(catalog):
    names = ["att_rate_term", "gpa_last_term"]
    profile = profile_from({"att_rate_term": [0.8, 0.9, 1.0], "gpa_last_term": [2.0, 2.5, 3.0]})
    X = np.array([[0.7, 1.5], [0.7, 1.5]])
    contribs = np.tile(one_row({"att_rate_term": 0.9, "gpa_last_term": 0.2}), (2, 1))
    blocked = np.array([[True, False], [False, False]])
    codes = [[r.code for r in row] for row in top_reasons(contribs, X, names, catalog, profile, blocked=blocked)]
    assert codes == [["gpa_last_term"], ["att_rate_term", "gpa_last_term"]]


def test_direction_none_is_never_a_reason(catalog):
    names = ["sex", "grade_level", "region", "att_rate_term"]
    profile = profile_from({"sex": [0, 1, 1], "grade_level": [3, 8, 11], "region": [0, 1, 5],
                            "att_rate_term": [0.8, 0.9, 1.0]})
    X = np.array([[0.0, 14.0, 5.0, 0.7]])  # every value away from its median, both sides
    contribs = one_row({"sex": 2.0, "grade_level": 1.5, "region": 1.0, "att_rate_term": 0.1})
    (reasons,) = top_reasons(contribs, X, names, catalog, profile, k=3)
    assert [r.code for r in reasons] == ["att_rate_term"]


def test_a_missing_value_is_skipped(catalog):
    names = ["att_rate_term", "gpa_last_term"]
    profile = profile_from({"att_rate_term": [0.8, 0.9, 1.0], "gpa_last_term": [2.0, 2.5, 3.0]})
    X = np.array([[np.nan, 1.0]])
    (reasons,) = top_reasons(one_row({"att_rate_term": 0.9, "gpa_last_term": 0.2}), X, names, catalog, profile)
    assert [r.code for r in reasons] == ["gpa_last_term"]


def test_a_missing_value_is_a_reason_when_the_catalog_gives_a_missing_reason(catalog):
    missing = Texts(en="No attendance recorded this term", th="ไม่มีการบันทึกเวลาเรียนในภาคเรียนนี้")
    features = [f.model_copy(update={"missing_reason": missing}) if f.name == "att_rate_term" else f
                for f in catalog.features]
    with_missing = Catalog(version="test", features=features)
    names = ["att_rate_term", "gpa_last_term"]
    profile = profile_from({"att_rate_term": [0.8, 0.9, 1.0], "gpa_last_term": [2.0, 2.5, 3.0]})
    X = np.array([[np.nan, 1.0]])
    (reasons,) = top_reasons(one_row({"att_rate_term": 0.9, "gpa_last_term": 0.2}), X, names, with_missing,
                             profile)
    assert [(r.code, r.value, r.en, r.th) for r in reasons][0] == (
        "att_rate_term", None, "No attendance recorded this term", "ไม่มีการบันทึกเวลาเรียนในภาคเรียนนี้")
    assert [r.code for r in reasons] == ["att_rate_term", "gpa_last_term"]


def test_a_feature_missing_from_the_catalog_is_an_error_that_names_it(catalog):
    from risk.errors import ConfigError

    profile = profile_from({"shoe_size": [1, 2, 3]})
    with pytest.raises(ConfigError, match="shoe_size"):
        top_reasons(one_row({"shoe_size": 1.0}), np.array([[4.0]]), ["shoe_size"], catalog, profile)


# Property: over many random students, no reason contradicts its catalog direction.
PROPERTY_NAMES = ["att_rate_term", "att_longest_absence_streak", "gpa_last_term", "flag_substance", "sex",
                  "income_per_capita_baht", "region", "sdq_prosocial", "att_rate_20d", "non_thai",
                  "school_past_dropout_rate"]
PROPERTY_TRAINING = {"att_rate_term": [0.8, 0.9, 1.0], "att_longest_absence_streak": [0, 1, 5],
                     "gpa_last_term": [2.0, 2.5, 3.0], "flag_substance": [0, 0, 1], "sex": [0, 1, 1],
                     "income_per_capita_baht": [1000, 2000, 3000], "region": [0, 2, 5], "sdq_prosocial": [5, 7, 9],
                     "att_rate_20d": [0.8, 0.9, 1.0], "non_thai": [0, 0, 1], "school_past_dropout_rate": [0.01, 0.02, 0.05]}
CHOICES = {"att_rate_term": [0.5, 0.8, 0.9, 0.98, 1.0], "att_longest_absence_streak": [0, 1, 3, 10],
           "gpa_last_term": [0.0, 1.5, 2.5, 4.0], "flag_substance": [0, 1], "sex": [0, 1],
           "income_per_capita_baht": [300, 2000, 9000], "region": [0, 2, 5], "sdq_prosocial": [2, 7, 10],
           "att_rate_20d": [0.5, 0.9, 1.0], "non_thai": [0, 1], "school_past_dropout_rate": [0.0, 0.02, 0.2]}


@st.composite
def students(draw):
    rows = draw(st.integers(1, 30))
    columns = [draw(st.lists(st.sampled_from([*CHOICES[name], float("nan")]), min_size=rows, max_size=rows))
               for name in PROPERTY_NAMES]
    X = np.array(columns, dtype=np.float64).T
    contribs = draw(arrays(np.float64, (rows, len(PROPERTY_NAMES) + 1),
                           elements=st.floats(-2, 2, allow_nan=False)))
    return X, contribs, draw(st.integers(1, 5))


@settings(max_examples=200, deadline=None)
@given(students())
def test_no_reason_contradicts_its_direction(catalog, data):
    X, contribs, k = data
    profile = profile_from(PROPERTY_TRAINING)
    medians = dict(zip(PROPERTY_NAMES, profile.medians(PROPERTY_NAMES), strict=True))
    for i, row in enumerate(top_reasons(contribs, X, PROPERTY_NAMES, catalog, profile, k=k)):
        assert len(row) <= k
        assert [r.contribution for r in row] == sorted((r.contribution for r in row), reverse=True)
        groups = [catalog.get(r.code).group for r in row]
        assert len(groups) == len(set(groups)), "two reasons of one group"
        for reason in row:
            direction = catalog.get(reason.code).direction
            assert catalog.get(reason.code).role == "child"
            assert reason.contribution > 0
            assert reason.value is not None
            assert (direction == "lower" and reason.value < medians[reason.code]) or (
                direction == "higher" and reason.value > medians[reason.code])
        # Nothing eligible was passed over: fewer than k reasons means no other fact (group) qualified.
        shown = {r.code for r in row}
        eligible = {
            catalog.get(n).group for j, n in enumerate(PROPERTY_NAMES)
            if contribs[i, j] > 0 and catalog.get(n).direction != "none" and catalog.get(n).role == "child"
            and not np.isnan(X[i, j])
            and (X[i, j] < medians[n] if catalog.get(n).direction == "lower" else X[i, j] > medians[n])}
        assert len(row) == min(k, len(eligible)), shown


def test_json_outputs_keep_thai_readable(catalog):
    profile = profile_from({"att_rate_term": [0.8, 0.9, 1.0], "flag_substance": [0, 0, 1]})
    X = np.array([[0.71, 1.0], [0.95, 0.0]])
    contribs = np.array([[0.5, 0.3, -3.0], [0.5, 0.3, -3.0]])
    reasons = top_reasons(contribs, X, ["att_rate_term", "flag_substance"], catalog, profile)
    th = reasons_json(reasons, "th")
    assert th[0] == '["มาเรียนเพียง 71% ของวันเรียนในภาคเรียนนี้", "พบการใช้สารเสพติด: ใช่"]'
    assert th[1] == "[]"
    assert json.loads(reasons_json(reasons, "en")[0])[1] == "Substance use flagged: yes"
    assert reason_codes_json(reasons) == ['["att_rate_term", "flag_substance"]', "[]"]
    with pytest.raises(ValueError, match="lang"):
        reasons_json(reasons, "fr")


def test_no_rows_give_no_reasons(catalog):
    profile = profile_from({"att_rate_term": [0.8, 0.9, 1.0]})
    assert top_reasons(np.zeros((0, 2)), np.zeros((0, 1)), ["att_rate_term"], catalog, profile) == []
