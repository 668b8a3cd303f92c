"""The independent reason check (issue 28's acceptance): a real run passes it, and every check can fail."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from built_once import scored_copy, scored_report

from risk.config import load_settings
from risk.features.base import AsOf
from risk.features.build import build_features
from risk.features.context_rates import open_validated
from risk.scoring.explained import Explained, explain_rows
from risk.scoring.reason_audit import CHECKS, audit_explained, audit_reasons
from risk.scoring.settings import load_scoring_settings
from risk.store import finish_run, latest_scores, open_store, start_run, write_bucket_scores

AS_OF = dt.date(2026, 7, 24)  # ten weeks into the world's last term (2569-1)


@pytest.fixture(scope="module")
def features(world, champion):
    """Every student's feature row at AS_OF, from the champion's own catalog."""
    _, _, bundle = champion
    point = AsOf(AS_OF)
    con = open_validated(world / "validated", point, load_settings())
    frame = build_features(con, point, bundle.catalog, keep_shared=True)
    return frame[bundle.names].to_numpy(np.float64)


@pytest.fixture(scope="module")
def explained(features, champion) -> Explained:
    _, _, bundle = champion
    return explain_rows(bundle, features, load_scoring_settings().reasons)


@pytest.fixture(scope="module")
def scored(world, champion, tmp_path_factory):
    """The champion's scoring run of the world at AS_OF, in a store of its own: (store, report)."""
    folder = scored_copy(world, champion, AS_OF, tmp_path_factory, "scored")
    store = open_store(f"sqlite:///{folder / 'risk.db'}")
    yield store, scored_report(folder)
    store.close()


def test_a_real_models_stored_run_gives_no_reason_a_teacher_must_not_read(champion, scored):
    _, _, bundle = champion
    store, report = scored
    audit = audit_reasons(store, report.run_id, bundle.catalog, bundle.policy)
    assert audit.students == report.flagged > 0
    assert audit.reasons >= audit.students  # every flagged student has at least one reason
    assert audit.counts() == dict.fromkeys(CHECKS[:-1], 0), {k: c.examples for k, c in audit.checks.items()}


def test_a_real_models_explanation_has_no_reason_that_contradicts_the_child(explained, features, champion):
    _, _, bundle = champion
    audit = audit_explained(explained, features, bundle.names, bundle.catalog, bundle.profile, bundle.policy)
    assert audit.students > 0 and audit.reasons > audit.students
    assert audit.clean, {k: c.examples for k, c in audit.checks.items() if c.count}
    # The context a flagged child carries is context, and nothing protected is in it.
    roles = {bundle.catalog.get(code).role for row in explained.context for code, _, _ in row}
    assert roles == {"context"}


def planted_rows() -> pd.DataFrame:
    """One flagged student per check, each with one bad reason; and a normal student whose codes are not read."""
    rows = [  # (grade, class, codes)
        ("M2", "at_risk", ["att_rate_term", "non_thai"]),                 # protected
        ("M2", "problem", ["school_past_dropout_rate"]),                   # context
        ("K2", "at_risk", ["att_exam_line_margin"]),                       # below_min_grade (feature)
        ("M2", "at_risk", ["att_rate_term", "gpa_last_term", "att_rate_20d"]),  # same_group
        ("M2", "at_risk", ["shoe_size"]),                                  # unknown
        ("M2", "normal", ["sex", "region"]),                               # not flagged: not audited
        ("P4", "at_risk", ["rule:exam_line", "gpa_last_term"]),            # clean
    ]
    n = len(rows)
    return pd.DataFrame({
        "student_key": list(range(1, n + 1)), "school_id": ["1040100001"] * n, "grade_level": [r[0] for r in rows],
        "classroom": ["1/1"] * n, "sex": ["female"] * n, "id_hint": ["•••••••••1234"] * n, "as_of": AS_OF,
        "term": "2569-1", "district_code": "4001", "province_code": "40", "region": "northeast",
        "probability": [0.3] * n, "risk_class": [r[1] for r in rows],
        "reasons_en": ['["x"]'] * n, "reasons_th": ['["ก"]'] * n,
        "reason_codes": [pd.io.json.ujson_dumps(r[2]) for r in rows], "model_version": "1"})


def test_each_stored_check_counts_a_planted_reason(champion, tmp_path):
    _, _, bundle = champion
    store = open_store(f"sqlite:///{tmp_path / 'planted.db'}")
    run = start_run(store, as_of=AS_OF, term="2569-1", model_name="dropout-risk", model_version="1", settings={})
    write_bucket_scores(store, run, 0, planted_rows())
    finish_run(store, run, students=7, drift={})
    audit = audit_reasons(store, run, bundle.catalog, bundle.policy)
    assert audit.students == 6
    assert audit.counts() == {"protected": 1, "context": 1, "below_min_grade": 1, "same_group": 1, "unknown": 1}
    assert audit.checks["protected"].examples == [
        {"student": 1, "code": "non_thai", "detail": "a protected feature given as a reason"}]
    assert audit.checks["same_group"].examples[0]["code"] == "att_rate_20d"


def test_a_rule_code_below_its_rules_grade_is_counted(champion, tmp_path):
    _, _, bundle = champion
    (rule,) = [r for r in bundle.policy.rules if r.id == "exam_line"]
    assert rule.min_grade == "P1"
    store = open_store(f"sqlite:///{tmp_path / 'rule.db'}")
    run = start_run(store, as_of=AS_OF, term="2569-1", model_name="dropout-risk", model_version="1", settings={})
    frame = planted_rows().iloc[[6]].assign(grade_level="K3")
    write_bucket_scores(store, run, 0, frame)
    finish_run(store, run, students=1, drift={})
    audit = audit_reasons(store, run, bundle.catalog, bundle.policy)
    assert audit.counts()["below_min_grade"] == 1
    assert audit.checks["below_min_grade"].examples[0]["detail"] == "grade K3, reason only from P1"


def first_flagged_with(explained: Explained, features: np.ndarray, names: list[str], test) -> int:
    """The first flagged row whose feature vector passes ``test``."""
    rows = [i for i, c in enumerate(explained.risk_class) if c != "normal" and test(features[i])]
    assert rows, "no flagged student fits the plant"
    return rows[0]


def planted(explained: Explained, row: int, codes: list[str]) -> Explained:
    reasons = [list(r) for r in explained.reasons]
    reasons[row] = [(code, "planted", "ปลูก") for code in codes]
    return Explained(explained.probability, explained.risk_class, reasons, explained.raised_by, explained.context)


def test_each_in_memory_check_counts_a_planted_reason(explained, features, champion):
    _, _, bundle = champion
    names, profile = bundle.names, bundle.profile
    median = dict(zip(names, profile.medians(names), strict=True))
    column = names.index("att_rate_term")
    # A child who attends more than the training median, told "attended only ...": a contradiction.
    good = first_flagged_with(explained, features, names, lambda x: x[column] > median["att_rate_term"])
    audit = audit_explained(planted(explained, good, ["att_rate_term"]), features, names, bundle.catalog, profile,
                            bundle.policy)
    assert audit.counts() == {**dict.fromkeys(CHECKS, 0), "contradicts": 1}
    assert audit.checks["contradicts"].examples[0]["student"] == good
    # Every other check, each on its own planted reason.
    plants = {"protected": ["non_thai"], "context": ["transition_year"], "unknown": ["shoe_size"],
              "same_group": ["gpa_last_term", "gpa_term_before"]}
    for check, codes in plants.items():
        audit = audit_explained(planted(explained, good, codes), features, names, bundle.catalog, profile,
                                bundle.policy)
        assert audit.counts()[check] == 1, check
    # The same child moved to K2: the exam line (feature or rule) is no reason for a kindergarten child.
    kindergarten = features.copy()
    kindergarten[good, names.index("grade_level")] = bundle.catalog.grade_index("K2")
    for code in ("att_exam_line_margin", "rule:exam_line"):
        audit = audit_explained(planted(explained, good, [code]), kindergarten, names, bundle.catalog, profile,
                                bundle.policy)
        assert audit.counts()["below_min_grade"] == 1, code


def test_a_rule_reason_whose_line_is_not_crossed_contradicts_the_child(explained, features, champion):
    _, _, bundle = champion
    names = bundle.names
    (rule,) = [r for r in bundle.policy.rules if r.id == "exam_line"]
    column = names.index(rule.feature)
    row = first_flagged_with(explained, features, names, lambda x: x[column] >= rule.below)
    audit = audit_explained(planted(explained, row, ["rule:exam_line"]), features, names, bundle.catalog,
                            bundle.profile, bundle.policy)
    assert audit.counts()["contradicts"] == 1
    assert "does not cross the rule's line 0.8" in audit.checks["contradicts"].examples[0]["detail"]


def test_a_rule_raised_student_is_marked_and_only_they_are(explained, features, champion):
    _, _, bundle = champion
    probability, codes, hits = bundle.classify(features)
    model = bundle.policy.model_codes(probability, features, bundle.names)
    raised = np.array([r is not None for r in explained.raised_by])
    assert (raised == (codes > model)).all()
    assert raised.any(), "the world has no student raised by the exam line"
    assert set(explained.raised_by[raised]) == {"exam_line"}
    assert (explained.risk_class[raised] != "normal").all()


def test_a_fired_rule_comes_first_and_no_reason_of_its_group_follows(explained, champion):
    _, _, bundle = champion
    group = bundle.catalog.get("att_rate_term").group
    ruled = [row for row in explained.reasons if row and row[0][0] == "rule:exam_line"]
    assert ruled
    for row in ruled:
        assert row[0][1].startswith("Attendance of ") and "under the 80% line" in row[0][1]
        assert all(bundle.catalog.get(code).group != group for code, _, _ in row[1:]), row


def test_explained_scores_carry_the_rule_mark_and_the_context_as_json(features, champion):
    import json

    from risk.scoring.explained import explained_scores

    _, _, bundle = champion
    frame = explained_scores(bundle, features[:400], load_scoring_settings().reasons)
    assert list(frame.columns) == ["probability", "risk_class", "reasons_en", "reasons_th", "reason_codes",
                                   "raised_by", "context_codes", "context_en", "context_th"]
    for column in ("context_codes", "context_en", "context_th"):
        lists = frame[column].map(json.loads)
        assert lists.map(lambda x: isinstance(x, list)).all()
    context = frame["context_codes"].map(json.loads)
    assert (context.map(len) == frame["context_en"].map(json.loads).map(len)).all()
    assert (context[frame["risk_class"] == "normal"].map(len) == 0).all()
    assert {bundle.catalog.get(c).role for codes in context for c in codes} <= {"context"}


def test_stored_reasons_are_checked_against_each_childs_own_values(world, champion, scored):
    """`risk audit-reasons --features`: the stored codes against the date's feature matrix, and a planted lie is seen."""
    _, _, bundle = champion
    store, report = scored
    point = AsOf(AS_OF)
    values = build_features(open_validated(world / "validated", point, load_settings()), point, bundle.catalog,
                            keep_shared=True)
    audit = audit_reasons(store, report.run_id, bundle.catalog, bundle.policy, values=values, profile=bundle.profile)
    assert audit.reasons > 0 and audit.counts() == dict.fromkeys(CHECKS, 0), audit.counts()
    # Every child attended every day: each reason about the attendance rate (the 80% rule's included) is now a lie.
    stored = pd.concat(list(latest_scores(store, report.run_id, columns=["student_key", "risk_class", "reason_codes"])))
    flagged = stored[stored["risk_class"] != "normal"]
    lies = sum(code in {"att_rate_term", "rule:exam_line"} for codes in flagged["reason_codes"] for code in codes)
    assert lies > 0
    planted = values.assign(att_rate_term=1.0)
    audit = audit_reasons(store, report.run_id, bundle.catalog, bundle.policy, values=planted, profile=bundle.profile)
    assert audit.checks["contradicts"].count == lies
    # A flagged child the matrix lacks cannot be vouched for: each of their reasons is counted.
    absent = flagged.iloc[0]
    audit = audit_reasons(store, report.run_id, bundle.catalog, bundle.policy,
                          values=values[values["student_key"] != absent["student_key"]], profile=bundle.profile)
    assert audit.checks["contradicts"].count == len(absent["reason_codes"]) > 0
