"""The closed synthetic loop: a teacher model acts on alerts, the next term is drawn with a planted effect."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy.special import expit, logit

from risk.data.actions_import import read_action_file
from risk.data.ids import pseudonyms
from risk.data.synth import (
    SynthConfig,
    TeacherModel,
    act_on_alerts,
    actions_file,
    continue_export,
    generate,
)
from risk.data.synth.continue_term import (
    LoopError,
    combined_effect,
    parse_effects,
    plan_from_actions,
    plan_from_alerts,
)
from risk.data.synth.help import treated_outcome
from risk.data.validate import validate_sources
from risk.store import (
    PlanRecord,
    Store,
    finish_run,
    import_actions,
    open_store,
    start_run,
    write_alerts,
    write_bucket_scores,
    write_pilot,
)

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "synth.yaml"
KEY = b"synth-loop-test-key-0123456789abcdef"
STUDENTS, TERMS, SEED = 300, 2, 13
EFFECTS = {"home_visit": -0.5, "learning_support": -0.3}
TEXTS = {"Home visit": "home_visit", "Learning support": "learning_support", "Counselling": "counselling"}


@pytest.fixture(scope="module")
def config() -> SynthConfig:
    return SynthConfig.from_yaml(CONFIG).clean()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, config: SynthConfig) -> Path:
    out = tmp_path_factory.mktemp("source")
    generate(out, students=STUDENTS, terms=TERMS, seed=SEED, config=config, progress=False)
    return out


def last_term(source: Path) -> pd.DataFrame:
    truth = pq.read_table(source / "truth.parquet").to_pandas()
    return truth[truth["term"] == truth["term"].max()].reset_index(drop=True)


def alerts_of(students: pd.DataFrame, rng: np.random.Generator, share: float = 0.3) -> pd.DataFrame:
    """Alerts as the store holds them, on the students a noisy score ranks highest (the score sees part of the risk)."""
    score = logit(students["p_dropout"].to_numpy()) + rng.normal(0, 1.0, len(students))
    flagged = students[score >= np.quantile(score, 1 - share)]
    suggested = [["Home visit", "Counselling"], ["Learning support", "Home visit"], []]
    return pd.DataFrame({
        "student_key": pseudonyms(flagged["student_id"].to_numpy(), KEY), "school_id": flagged["school_id"].to_numpy(),
        "as_of": pd.Timestamp("2026-07-24").date(), "probability": expit(score[score >= np.quantile(score, 1 - share)]),
        "current_class": "at_risk", "actions_en": [suggested[i % 3] for i in range(len(flagged))],
    })


def true_risk(students: pd.DataFrame) -> pd.Series:
    return pd.Series(students["p_dropout"].to_numpy(), index=pseudonyms(students["student_id"].to_numpy(), KEY))


def teacher_plan(source: Path, seed: int = 1) -> pd.DataFrame:
    students = last_term(source)
    rng = np.random.default_rng(seed)
    return act_on_alerts(alerts_of(students, rng), true_risk(students), TEXTS, "2569-1", TeacherModel(), rng)


@pytest.fixture(scope="module")
def plan(source: Path) -> pd.DataFrame:
    return teacher_plan(source)


@pytest.fixture(scope="module")
def continued(tmp_path_factory: pytest.TempPathFactory, source: Path, plan: pd.DataFrame,
              config: SynthConfig) -> Path:
    out = tmp_path_factory.mktemp("continued")
    continue_export(source, out, help_plan=plan, effects=EFFECTS, key=KEY, seed=5, config=config)
    return out


def export_hashes(folder: Path) -> dict[str, str]:
    """Hashes of the contract tables' files (not the truth or the reports)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob("*/part-*"))}


@pytest.mark.slow  # another world generated (or validated): ~7 s under load
def test_continuing_writes_a_valid_next_term_export(continued: Path, tmp_path: Path) -> None:
    report = validate_sources(continued, tmp_path / "validated", key=KEY, progress=False, buckets=2)
    counts = {t.table: t for t in report.tables}
    assert not report.failure
    assert all(t.balanced and t.quarantined == 0 for t in report.tables), report.tables
    enrolled = pq.read_table(continued / "enrollments").to_pandas()
    assert sorted(enrolled["term"].unique()) == ["2568-2", "2569-1", "2569-2"]
    assert counts["enrollments"].used == len(enrolled)
    # The same students carried forward: the next term's enrollments are the source's stayers plus entrants.
    source_ids = set(enrolled.loc[enrolled["term"] == "2569-1", "student_id"])
    next_ids = set(enrolled.loc[enrolled["term"] == "2569-2", "student_id"])
    assert len(source_ids & next_ids) > 0.9 * len(source_ids)


def test_rows_before_the_next_term_are_the_sources(source: Path, continued: Path) -> None:
    before = pq.read_table(source / "attendance_daily").to_pandas()
    after = pq.read_table(continued / "attendance_daily").to_pandas()
    after = after[after["date"] <= before["date"].max()].reset_index(drop=True)
    pd.testing.assert_frame_equal(before.reset_index(drop=True), after)


@pytest.mark.slow  # another world generated (or validated): ~7 s under load
def test_zero_effect_is_synth_with_one_more_term(source: Path, plan: pd.DataFrame, config: SynthConfig,
                                                  tmp_path: Path) -> None:
    continue_export(source, tmp_path / "zero", help_plan=plan, effects={}, key=KEY, seed=5, config=config)
    generate(tmp_path / "plain", students=STUDENTS, terms=TERMS + 1, seed=SEED, config=config,
             last_term="2569-2", progress=False)
    assert export_hashes(tmp_path / "zero") == export_hashes(tmp_path / "plain")
    zero = pq.read_table(tmp_path / "zero" / "truth.parquet").to_pandas()
    plain = pq.read_table(tmp_path / "plain" / "truth.parquet").to_pandas()
    pd.testing.assert_frame_equal(zero[plain.columns], plain)
    helped = zero[zero["acted"].fillna(False).astype(bool)]
    assert len(helped) and (helped["dropped_out_treated"] == helped["dropped_out_untreated"]).all()


def test_truth_holds_each_students_potential_outcomes(continued: Path, plan: pd.DataFrame) -> None:
    truth = pq.read_table(continued / "truth.parquet").to_pandas()
    term = truth[truth["term"] == "2569-1"]
    assert term["p_dropout_untreated"].notna().all() and truth.loc[truth["term"] != "2569-1", "acted"].isna().all()
    acted = term["acted"].astype(bool)
    assert acted.sum() == plan["acted"].sum()
    assert (term.loc[acted, "dropped_out"] == term.loc[acted, "dropped_out_treated"]).all()
    assert (term.loc[~acted, "dropped_out"] == term.loc[~acted, "dropped_out_untreated"]).all()
    assert np.allclose(term.loc[acted, "p_dropout"], term.loc[acted, "p_dropout_treated"])
    expected = term["action"].map(lambda a: combined_effect(a.split("+"), EFFECTS) if isinstance(a, str) else 0.0)
    assert np.allclose(term["planted_effect"], expected)
    relative = term["p_dropout_treated"] / term["p_dropout_untreated"] - 1
    assert np.allclose(relative, term["planted_effect"], atol=1e-9)
    # A protective effect only ever turns a dropout into a stayer.
    assert not (term["dropped_out_treated"] & ~term["dropped_out_untreated"]).any()
    report = json.loads((continued / "continue_report.json").read_text())
    assert report["effects"] == EFFECTS and report["acted"] == int(acted.sum())


def test_planted_effect_is_drawn_at_its_size() -> None:
    rng = np.random.default_rng(0)
    n, p_dead, effect = 400_000, 0.0005, -0.3
    p = (1 - p_dead) * rng.uniform(0.02, 0.4, n)
    share = np.where(rng.random(n) < 0.2, 0.01, 0.05)
    u = rng.random((n, 3))
    dead = u[:, 0] < p_dead
    dropout = ~dead & (u[:, 1] < p / (1 - p_dead))
    within = dropout & (u[:, 2] < share)
    treated, p_treated = treated_outcome(p, p_dead, share, dropout, within, dead, np.full(n, effect), rng.random(n))
    assert np.allclose(p_treated, p * (1 + effect))
    # Drawn: the treated dropout rate is lower by the effect, within sampling error (sd ~0.4% of the ratio).
    assert treated.mean() / dropout.mean() - 1 == pytest.approx(effect, abs=0.015)
    assert not (treated & ~dropout).any() and (treated[within]).all()
    same, p_same = treated_outcome(p, p_dead, share, dropout, within, dead, np.zeros(n), rng.random(n))
    assert (same == dropout).all() and np.array_equal(p_same, p)
    harmed, _ = treated_outcome(p, p_dead, share, dropout, within, dead, np.full(n, 0.3), rng.random(n))
    assert harmed.mean() / dropout.mean() - 1 == pytest.approx(0.3, abs=0.015) and (harmed[dropout]).all()


def test_teachers_act_more_on_the_truly_riskier_children() -> None:
    rng = np.random.default_rng(3)
    n = 6000
    risk = expit(rng.normal(-3, 1, n))
    alerts = pd.DataFrame({"student_key": np.arange(n), "school_id": [f"{i % 200:010d}" for i in range(n)],
                           "as_of": pd.Timestamp("2026-07-24").date(), "probability": 0.1, "current_class": "at_risk",
                           "actions_en": [["Home visit", "Learning support"]] * n})
    risk_of = pd.Series(risk, index=np.arange(n))

    def gap(selection: float) -> float:
        chosen = act_on_alerts(alerts, risk_of, TEXTS, "2569-1", TeacherModel(selection=selection),
                               np.random.default_rng(9))
        z = logit(chosen["true_risk"])
        return float(z[chosen["acted"]].mean() - z[~chosen["acted"]].mean())

    assert gap(1.0) > 0.5 and abs(gap(0.0)) < 0.1 and gap(-1.0) < -0.5


def test_teachers_follow_the_reasons_the_share_and_the_arms() -> None:
    rng = np.random.default_rng(4)
    n = 4000
    schools = [f"{i % 100:010d}" for i in range(n)]
    alerts = pd.DataFrame({"student_key": np.arange(n), "school_id": schools, "as_of": pd.Timestamp("2026-07-24").date(),
                           "probability": 0.1, "current_class": "at_risk",
                           "actions_en": [["Learning support", "Home visit", "Counselling"]] * n})
    arms = {s: ("alert_now" if int(s) % 2 else "wait_list") for s in set(schools)}
    chosen = act_on_alerts(alerts, pd.Series(0.05, index=np.arange(n)), TEXTS, "2569-1",
                           TeacherModel(act_share=0.6, idle_schools=0.0, school_sd=0.0, selection=0.0), rng, arms)
    assert not chosen.loc[chosen["arm"] == "wait_list", "acted"].any()
    assert chosen.loc[chosen["arm"] == "alert_now", "acted"].mean() == pytest.approx(0.6, abs=0.04)
    assert (chosen["code"] == "learning_support").mean() == pytest.approx(0.7, abs=0.04)
    days = pd.to_datetime(chosen.loc[chosen["acted"], "acted_on"]) - pd.Timestamp("2026-07-24")
    assert days.dt.days.between(1, 14).all()


def test_the_actions_file_is_what_risk_actions_import_reads(plan: pd.DataFrame, tmp_path: Path) -> None:
    written = actions_file(plan, tmp_path / "actions.csv")
    read = read_action_file(tmp_path / "actions.csv", KEY, set(TEXTS.values()))
    assert written == plan["acted"].sum() == read.rows == len(read.clean) and read.quarantined.empty
    assert set(read.clean["student_key"]) == set(plan.loc[plan["acted"], "student_key"])


@pytest.mark.slow  # another world generated (or validated): ~7 s under load
def test_the_loop_is_reproducible_from_its_seed(source: Path, plan: pd.DataFrame, continued: Path,
                                                config: SynthConfig, tmp_path: Path) -> None:
    pd.testing.assert_frame_equal(teacher_plan(source), plan)
    assert not teacher_plan(source, seed=2)["acted"].equals(plan["acted"])
    continue_export(source, tmp_path / "again", help_plan=plan, effects=EFFECTS, key=KEY, seed=5, config=config)
    assert export_hashes(tmp_path / "again") == export_hashes(continued)
    same = pq.read_table(tmp_path / "again" / "truth.parquet").to_pandas()
    pd.testing.assert_frame_equal(same, pq.read_table(continued / "truth.parquet").to_pandas())


def test_bad_loop_inputs_say_what_is_wrong(source: Path, plan: pd.DataFrame, config: SynthConfig,
                                           tmp_path: Path) -> None:
    assert parse_effects("home_visit=-0.3, learning_support=-0.2") == {"home_visit": -0.3, "learning_support": -0.2}
    with pytest.raises(LoopError, match="CODE=EFFECT"):
        parse_effects("home_visit=-3")
    with pytest.raises(LoopError, match="another folder"):
        continue_export(source, source, help_plan=plan, effects={}, key=KEY, seed=5, config=config)
    with pytest.raises(LoopError, match="pseudonym key"):
        continue_export(source, tmp_path / "x", help_plan=plan, effects={}, key=b"another-key-0123456789abcdefgh",
                        seed=5, config=config)


def stored_alerts(store: Store, students: pd.DataFrame, as_of: dt.date) -> None:
    """Score ``students`` and raise an alert for each in a real store, as a scoring run does."""
    n, keys = len(students), pseudonyms(students["student_id"].to_numpy(), KEY)
    school = students["school_id"].tolist()
    common = {"student_key": keys, "as_of": [as_of] * n, "school_id": school, "grade_level": ["M3"] * n,
              "classroom": ["3/1"] * n, "sex": ["female"] * n, "id_hint": ["•••••••••0000"] * n,
              "probability": [0.4] * n, "reasons_en": [["Absent 5 of the last 10 days"]] * n,
              "reasons_th": [["ขาดเรียน 5 ใน 10 วันล่าสุด"]] * n}
    run = start_run(store, as_of=as_of, term="2569-1", model_name="dropout-risk", model_version="1", settings={})
    write_bucket_scores(store, run, 0, pd.DataFrame({
        **common, "term": ["2569-1"] * n, "district_code": [s[:4] for s in school],
        "province_code": [s[:2] for s in school], "region": ["northeast"] * n, "risk_class": ["at_risk"] * n,
        "reason_codes": [[]] * n, "model_version": ["1"] * n}))
    finish_run(store, run, students=n, drift={})
    write_alerts(store, run, pd.DataFrame({
        **common, "kind": ["newly_at_risk"] * n, "previous_class": ["normal"] * n, "current_class": ["at_risk"] * n,
        "actions_en": [["Learning support", "Home visit"]] * n, "actions_th": [["ช่วยเหลือด้านการเรียน", "เยี่ยมบ้าน"]] * n}))


@pytest.mark.slow  # another world generated (or validated): ~7 s under load
def test_the_loop_through_a_real_store(source: Path, tmp_path: Path) -> None:
    """Alerts in the store -> teacher model -> actions file -> risk actions import's store path -> --actions-from."""
    store = open_store(f"sqlite:///{tmp_path / 'risk.db'}")
    students = last_term(source).nlargest(80, "p_dropout")
    stored_alerts(store, students, dt.date(2026, 7, 24))
    schools = sorted(students["school_id"].unique())
    write_pilot(store, PlanRecord(pilot_id="loop", term="2569-1", share=0.5, strata=[], seed=1,
                                  created_at=dt.datetime(2026, 5, 1)),
                pd.DataFrame({"school_id": schools, "arm": ["alert_now", "wait_list"] * (len(schools) // 2)
                              + ["alert_now"] * (len(schools) % 2), "stratum": "all"}))
    plan = plan_from_alerts(source, store, key=KEY, model=TeacherModel(idle_schools=0.0), action_texts=TEXTS, seed=1)
    assert len(plan) == 80 and 0 < plan["acted"].sum() < 80
    assert set(plan["arm"]) == {"alert_now", "wait_list"} and not plan.loc[plan["arm"] == "wait_list", "acted"].any()
    assert set(plan["code"]) <= {"learning_support", "home_visit"}
    actions_file(plan, tmp_path / "actions.csv")
    read = read_action_file(tmp_path / "actions.csv", KEY, set(TEXTS.values()))
    assert import_actions(store, read.clean).stored == plan["acted"].sum()
    again = plan_from_actions(source, store)
    assert len(again) == 80 and again["alerted"].all() and again["acted"].sum() == plan["acted"].sum()
    taken, stored = plan[plan["acted"]], again[again["acted"]]
    assert sorted(zip(stored["student_key"], stored["code"], strict=True)) == sorted(
        zip(taken["student_key"], taken["code"], strict=True))
    assert (again.loc[~again["acted"], "code"] == "").all()
    store.close()
    continue_export(source, tmp_path / "next", help_plan=again, effects=EFFECTS, key=KEY, seed=5,
                    config=SynthConfig.from_yaml(CONFIG).clean())
    truth = pq.read_table(tmp_path / "next" / "truth.parquet").to_pandas()
    term = truth[truth["term"] == "2569-1"]
    assert term["alerted"].sum() == 80 and term["acted"].sum() == plan["acted"].sum()
    idle = term[term["alerted"] & ~term["acted"]]
    assert idle["action"].isna().all() and (idle["planted_effect"] == 0).all()
