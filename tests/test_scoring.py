"""Batch scoring on the small world: every student once, reasons, resume after a real kill, alerts, report."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from conftest import WORLD_KEY, pii_leaks

from risk.config import load_settings
from risk.data.validate import validate_sources
from risk.features.base import AsOf
from risk.features.build import build_features
from risk.features.context_rates import open_validated
from risk.models.policy import CLASSES
from risk.scoring.batch import score_students
from risk.scoring.explained import explained_scores
from risk.scoring.settings import load_scoring_settings
from risk.store import (
    done_buckets,
    find_unfinished_run,
    latest_finished_run,
    latest_scores,
    open_alerts,
    open_store,
    run_record,
    summaries,
)
from risk.store.context import school_context
from risk.store.models import SchoolContext

AS_OF = dt.date(2026, 7, 24)  # ten weeks into the world's last term (2569-1)


def run_score(world, champion, store, out):
    _, version, bundle = champion
    return score_students(world / "validated", AS_OF, bundle=bundle, model_name="dropout-risk",
                          model_version=version, store=store, out=out, settings=load_settings(),
                          scoring=load_scoring_settings(), progress=False)


@pytest.fixture(scope="module")
def scored(world, champion, tmp_path_factory):
    folder = tmp_path_factory.mktemp("scored")
    store = open_store(f"sqlite:///{folder / 'risk.db'}")
    report = run_score(world, champion, store, folder / "scores.parquet")
    return store, report, pd.read_parquet(folder / "scores.parquet"), folder


def test_every_enrolled_student_is_scored_once(scored):
    store, report, frame, _ = scored
    assert frame["student_key"].is_unique and len(frame) == report.students > 0
    stored = pd.concat(latest_scores(store, report.run_id, columns=["student_key"]))
    assert sorted(stored["student_key"]) == sorted(frame["student_key"])
    assert run_record(store, report.run_id)["status"] == "finished"


def test_flagged_students_have_reasons_and_normal_ones_none(scored):
    _, _, frame, _ = scored
    reasons = frame["reasons_en"].map(json.loads)
    flagged = frame["risk_class"] != "normal"
    assert flagged.any()
    assert reasons[flagged].map(len).between(1, 3).all()
    assert (reasons[~flagged].map(len) == 0).all()
    thai = frame.loc[flagged, "reasons_th"].map(json.loads)
    assert all(any("\u0e00" <= ch <= "\u0e7f" for ch in text) for texts in thai for text in texts)


def test_exam_line_rule_is_a_reason_of_its_own(scored, champion):
    _, _, bundle = champion
    _, _, frame, _ = scored
    codes = frame["reason_codes"].map(json.loads)
    hit = codes.map(lambda c: "rule:exam_line" in c)
    assert hit.any()
    assert (frame.loc[hit, "risk_class"] != "normal").all()
    assert frame.loc[hit, "reasons_en"].str.contains("under the 80% line").all()


@pytest.mark.privacy
def test_stored_scores_carry_a_masked_hint_and_no_raw_id(scored, world):
    _, _, frame, folder = scored
    assert frame["id_hint"].str.fullmatch(r"•+\w{4}").all()
    assert pii_leaks(world / "source", folder) == []


def test_two_runs_at_the_same_date_and_model_give_identical_scores(scored, world, champion, tmp_path):
    _, _, first, _ = scored
    store = open_store(f"sqlite:///{tmp_path / 'again.db'}")
    run_score(world, champion, store, tmp_path / "again.parquet")
    again = pd.read_parquet(tmp_path / "again.parquet")
    pd.testing.assert_frame_equal(first, again)


def model_classes(frame: pd.DataFrame, bundle) -> np.ndarray:
    """Each student's class from the probability alone, by the policy's thresholds for their term's group."""
    names = bundle.names
    X = np.full((len(frame), len(names)), np.nan)
    if bundle.policy.thresholds_by == "year_end_term":  # semester 2 ends the school year
        X[:, names.index("year_end_term")] = frame["term"].str.endswith("-2").astype(float)
    problem, at_risk = bundle.policy.thresholds(X, names)
    p = frame["probability"].to_numpy()
    return np.where(p >= problem, 2, np.where(p >= at_risk, 1, 0))


def test_raised_by_marks_exactly_the_students_a_rule_put_above_the_models_class(scored, champion):
    _, _, bundle = champion
    store, report, frame, _ = scored
    rank = frame["risk_class"].map(CLASSES.index).to_numpy()
    above = rank > model_classes(frame, bundle)
    assert above.any(), "no rule raised anyone: the test world should have children under the 80% line"
    assert frame["raised_by"].notna().to_numpy().tolist() == above.tolist()
    assert set(frame.loc[above, "raised_by"]) <= {rule.id for rule in bundle.policy.rules}
    stored = pd.concat(latest_scores(store, report.run_id, columns=["student_key", "raised_by"]))
    merged = stored.merge(frame[["student_key", "raised_by"]], on="student_key", suffixes=("_stored", ""))
    assert (merged["raised_by_stored"].fillna("-") == merged["raised_by"].fillna("-")).all()
    assert sum(report.raised_by_rule.values()) == above.sum()
    assert f"{above.sum():,} raised by a rule rather than the model" in report.summary_lines()[1]


def context_counts(store, run_id: str) -> dict[tuple[str, str], int]:
    table = SchoolContext.__table__
    with store.engine.connect() as conn:
        rows = conn.execute(table.select().where(table.c.run_id == run_id))
        frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=list(rows.keys()))
    return {} if frame.empty else frame.groupby(["school_id", "code"])["students"].sum().to_dict()


def explained_context(world, bundle) -> pd.DataFrame:
    """Every student's context reasons at AS_OF, explained again from the features: (student_key, school_id, code)."""
    point = AsOf(AS_OF)
    con = open_validated(world / "validated", point, load_settings())
    features = build_features(con, point, bundle.catalog, keep_shared=True)
    scored = explained_scores(bundle, features[bundle.names].to_numpy(np.float64), load_scoring_settings().reasons)
    rows = [(key, school, code) for key, school, codes in zip(features["student_key"], features["school_id"],
                                                               scored["context_codes"], strict=True)
            for code in json.loads(codes)]
    return pd.DataFrame(rows, columns=["student_key", "school_id", "code"])


def test_school_context_sums_to_the_explained_students_per_school_and_code(scored, champion, world):
    _, _, bundle = champion
    store, report, frame, _ = scored
    explained = frame[frame["risk_class"].isin(load_scoring_settings().reasons.for_classes)]
    rows = explained_context(world, bundle)
    assert set(rows["student_key"]) <= set(explained["student_key"]), "context only for explained students"
    expected = rows.groupby(["school_id", "code"])["student_key"].nunique().to_dict()
    assert expected, "no explained student carries a context reason"
    assert context_counts(store, report.run_id) == expected
    school = explained["school_id"].value_counts().index[0]
    lines = school_context(store, report.run_id, school)
    assert [line.students for line in lines] == sorted((line.students for line in lines), reverse=True)
    assert all(line.students <= (explained["school_id"] == school).sum() for line in lines)


def test_summaries_add_up_from_school_to_nation(scored):
    store, report, frame, _ = scored
    nation = summaries(store, report.run_id, "nation").iloc[0]
    assert nation["students"] == len(frame)
    for level in ("school", "district", "province", "region"):
        assert summaries(store, report.run_id, level)["students"].sum() == len(frame)
    assert nation["problem"] == (frame["risk_class"] == "problem").sum()


def test_first_run_alerts_every_flagged_student(scored):
    store, report, frame, _ = scored
    flagged = frame[frame["risk_class"] != "normal"]
    alerts = pd.concat([open_alerts(store, school) for school in flagged["school_id"].unique()])
    assert sorted(alerts["student_key"]) == sorted(flagged["student_key"])
    assert set(alerts["kind"]) <= {"newly_at_risk", "escalated_problem"}
    assert alerts["actions_th"].map(len).gt(0).all()


def test_drift_is_stored_with_the_run(scored):
    store, report, _, _ = scored
    drift = run_record(store, report.run_id)["drift"]
    assert drift["rows"] == report.students
    assert {f["status"] for f in drift["features"]} <= {"stable", "watch", "drifted"}


def test_drift_compares_with_the_held_out_term_at_the_same_school_day(scored, champion):
    """Week 10 is no sampled week: the run is compared with the model's held-out term of the same
    semester, rebuilt on the date it had passed as many school days, where ratios of the days so far
    (attendance, the exam line) line up."""
    store, report, _, _ = scored
    _, _, bundle = champion
    drift = run_record(store, report.run_id)["drift"]
    semester = [t for t in bundle.meta["split"]["test"] + bundle.meta["split"]["calibration"] if t.endswith("-1")]
    assert drift["reference"].startswith(f"held-out term {semester[0]} on ")
    status = {f["name"]: f["status"] for f in drift["features"]}
    assert status["att_rate_term"] != "drifted" and status["att_exam_line_margin"] != "drifted"


# Buckets of the run that is killed: steps enough to be killed after 3 with 5 still to do. Scoring time
# goes with the bucket count more than with the students (the world in 32 buckets, configs/risk.yaml's,
# scored in ~14 s, in 8 in ~5 s), so more buckets would only make each run slower.
KILL_BUCKETS = 8


@pytest.fixture(scope="module")
def fine_buckets(world, tmp_path_factory):
    """The world validated into KILL_BUCKETS buckets, so a scoring run has several steps to be killed between."""
    folder = tmp_path_factory.mktemp(f"buckets{KILL_BUCKETS}")
    validate_sources(world / "source", folder / "validated", key=WORLD_KEY, progress=False, buckets=KILL_BUCKETS)
    return folder / "validated"


@pytest.fixture(scope="module")
def unkilled(fine_buckets, champion, tmp_path_factory):
    """The kill test's scoring run, never killed, in a store of its own: (store, run id); one for both backends."""
    folder = tmp_path_factory.mktemp("unkilled")
    store = open_store(f"sqlite:///{folder / 'unkilled.db'}")
    _, version, bundle = champion
    report = score_students(fine_buckets, AS_OF, bundle=bundle, model_name="dropout-risk", model_version=version,
                            store=store, out=folder / "unkilled.parquet", settings=load_settings(),
                            scoring=load_scoring_settings(), progress=False)
    return store, report.run_id


def test_killed_scoring_resumes_and_scores_every_student_once(fine_buckets, champion, unkilled, backend, tmp_path):
    home, version, _ = champion
    url = backend[0]
    command = [sys.executable, "-m", "risk", "score", "--as-of", AS_OF.isoformat(), "--data", str(fine_buckets),
               "--store", url, "--out", str(tmp_path / "scores.parquet"), "--tracking-dir", str(home), "--quiet"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    process = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    store = open_store(url)
    deadline = time.monotonic() + 120
    done: set[int] = set()
    while time.monotonic() < deadline and process.poll() is None:
        run_id = find_unfinished_run(store, as_of=AS_OF, model_version=version)
        done = done_buckets(store, run_id) if run_id else set()
        if len(done) >= 3:
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed, done = run_id, done_buckets(store, run_id)  # what the killed run left in the store
    assert 3 <= len(done) < KILL_BUCKETS
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    # The killed run went on from the buckets it had stored (the summary's line may be wrapped).
    assert f"({len(done)} already done)" in " ".join(finished.stdout.split()), finished.stdout
    frame = pd.read_parquet(tmp_path / "scores.parquet")
    run_id = latest_finished_run(store)
    assert run_id == killed
    stored = pd.concat(latest_scores(store, run_id, columns=["student_key"]))
    assert stored["student_key"].is_unique and frame["student_key"].is_unique
    assert sorted(stored["student_key"]) == sorted(frame["student_key"])
    assert len(done_buckets(store, run_id)) == KILL_BUCKETS
    # The bucket killed half-written and the buckets written again count their school context once.
    resumed = context_counts(store, run_id)
    assert resumed and resumed == context_counts(*unkilled)


def hint_columns(keys: list[int], school: str = "1040100001") -> dict[str, list]:
    return {"student_key": keys, "school_id": [school] * len(keys), "grade_level": ["M3"] * len(keys),
            "classroom": ["3/1"] * len(keys), "sex": ["female"] * len(keys), "id_hint": ["•••••••••1234"] * len(keys)}


def test_alerts_across_two_rounds_follow_each_students_class_change(champion, backend, tmp_path):
    """Round 1 (stored, finished) then round 2 (this run's parts): one student for each kind of change."""
    from risk.scoring.alerts import build_alerts
    from risk.store import finish_run, start_run, write_bucket_scores

    _, _, bundle = champion
    store = open_store(backend[0])
    first_day, second_day = dt.date(2026, 6, 12), AS_OF
    # student: 1 normal→at_risk, 2 at_risk→problem, 3 problem→normal, 4 at_risk→(gone), 5 normal→normal,
    # 6 (new)→problem
    before = pd.DataFrame({**hint_columns([1, 2, 3, 4, 5]), "as_of": first_day, "term": "2569-1",
                           "district_code": "4001", "province_code": "40", "region": "northeast",
                           "probability": [0.01, 0.2, 0.6, 0.2, 0.01],
                           "risk_class": ["normal", "at_risk", "problem", "at_risk", "normal"],
                           "reasons_en": "[]", "reasons_th": "[]", "reason_codes": "[]", "model_version": "1"})
    run = start_run(store, as_of=first_day, term="2569-1", model_name="dropout-risk", model_version="1", settings={})
    write_bucket_scores(store, run, 0, before)
    finish_run(store, run, students=5, drift={})
    now = pd.DataFrame({**hint_columns([1, 2, 3, 5, 6]), "probability": [0.2, 0.7, 0.01, 0.01, 0.8],
                        "risk_class": ["at_risk", "problem", "normal", "normal", "problem"],
                        "reasons_en": ['["a"]', '["b"]', "[]", "[]", '["c"]'],
                        "reasons_th": ['["ก"]', '["ข"]', "[]", "[]", '["ค"]'],
                        "reason_codes": ['["att_rate_term"]', '["rule:exam_line", "income_per_capita_baht"]', "[]",
                                         "[]", '["sdq_total"]']})
    parts = tmp_path / "now.parquet"
    now.to_parquet(parts)
    alerts = build_alerts(store, [parts], as_of=second_day, bundle=bundle, scoring=load_scoring_settings())
    kinds = dict(zip(alerts["student_key"], alerts["kind"], strict=True))
    assert kinds == {1: "newly_at_risk", 2: "escalated_problem", 3: "improved", 4: "left_register",
                     6: "escalated_problem"}
    actions = dict(zip(alerts["student_key"], alerts["actions_en"].map(json.loads), strict=True))
    # One action per reason, in the reasons' order (a rule takes its feature's action).
    assert actions[1] == [load_scoring_settings().actions["home_visit"].en]
    assert actions[2] == [load_scoring_settings().actions[a].en for a in ("home_visit", "cct_referral")]
    assert actions[4] == [load_scoring_settings().alerts.left_register_action.en]
    assert actions[6] == [load_scoring_settings().actions["counselling"].en]
    left = alerts[alerts["kind"] == "left_register"].iloc[0]
    assert left["previous_class"] == "at_risk" and pd.isna(left["current_class"])
