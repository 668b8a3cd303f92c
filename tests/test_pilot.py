"""The randomised wait-list rollout (issue 30) through the real store, service and CLI.

- While a plan's term runs, a wait-list school's alerts are stored (its students scored) but
  listed to no one: the API's list is empty, its alerts cannot be acknowledged, and the
  teacher page says, in Thai and English, that alerts start next term. An alert-now school
  sees its alerts. Once the next term is scored, everything shows again.
- ``risk pilot plan`` draws the same plan from the same seed, stores it (one per term unless
  ``--replace``), logs it to MLflow (params, and the arms as CSV of school ids), and prints
  the minimum detectable effect with where its base rate and ICC came from.
- A wait-list teacher cannot read its students' scores (their class and reasons are the withheld
  alert's) through ``/v1/students/{id}/risk`` during the pilot term: the 404 of a student not its
  own. Analyst and admin keys read them, upstream keys score them, and the summary names each
  school's arm.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from conftest import (
    SCHOOL_A,
    SCHOOL_B,
    STUDENTS,
    WORLD_KEY,
    hand_service_settings,
)
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from store_rows import hand_scoring_run
from typer.testing import CliRunner

from risk.cli import app as cli
from risk.data.ids import masked_id, pseudonym
from risk.serve.app import create_app
from risk.serve.settings import ServeSettings
from risk.store import (
    PilotExistsError,
    PlanRecord,
    Store,
    alert_counts,
    audit_entries,
    create_key,
    open_alerts,
    open_store,
    pilot_arms,
    pilot_plan,
    wait_list_term,
    write_pilot,
    write_summaries,
)
from risk.store.models import Alert, PilotPlan, Score

PILOT_TERM, NEXT_TERM = "2569-1", "2569-2"
JULY_24, NOV_20 = dt.date(2026, 7, 24), dt.date(2026, 11, 20)
KEY_A, KEY_B = pseudonym(STUDENTS[0], WORLD_KEY), pseudonym(STUDENTS[2], WORLD_KEY)  # a child of A, one of B
NOTE_TH = "โรงเรียนของท่านอยู่ในกลุ่มรอ (wait-list) ของโครงการนำร่องภาคเรียน 2569-1"
NOTE_EN = "Your school is on the pilot's wait-list for term 2569-1"


def scored(store: Store, term: str, as_of: dt.date, rows: list[tuple[int, str]]) -> str:
    """A finished run of ``term`` scoring each (student_key, school_id) at_risk, and a newly_at_risk alert for each."""
    hints = {key: masked_id(STUDENTS[0] if key == KEY_A else STUDENTS[2]) for key, _ in rows}
    return hand_scoring_run(store, term, as_of, rows, rows, id_hints=hints)


def plan(term: str = PILOT_TERM, seed: int = 1) -> PlanRecord:
    return PlanRecord(pilot_id=f"p{term.replace('-', '')}s{seed}", term=term, share=0.5, strata=["province"], seed=seed,
                      created_at=dt.datetime(2026, 5, 1, 8, 0))


A_NOW_B_WAITS = pd.DataFrame({"school_id": [SCHOOL_A, SCHOOL_B], "arm": ["alert_now", "wait_list"],
                              "stratum": ["40", "30"]})


def stored_alert_ids(store: Store, school_id: str) -> list[int]:
    """Every alert of the school in the table, shown or not."""
    a = Alert.__table__.c
    with store.engine.connect() as conn:
        return [int(i) for i in conn.execute(select(a.id).where(a.school_id == school_id).order_by(a.id)).scalars()]


# ---------------------------------------------------------------- the service during and after the pilot term
@pytest.fixture
def service(hand_validated: Path, tmp_path: Path) -> Iterator[dict]:
    """The real app on a store whose pilot term is scored: A's and B's child alerted, A alerts now, B waits."""
    url = f"sqlite:///{tmp_path / 'risk.db'}"
    store = open_store(url)
    scored(store, PILOT_TERM, JULY_24, [(KEY_A, SCHOOL_A), (KEY_B, SCHOOL_B)])
    write_pilot(store, plan(), A_NOW_B_WAITS)
    keys = {"a": create_key(store, "teacher", school_id=SCHOOL_A, label="teacher A"),
            "b": create_key(store, "teacher", school_id=SCHOOL_B, label="teacher B"),
            "admin": create_key(store, "admin", label="admin"), "analyst": create_key(store, "analyst", label="analyst")}
    settings = hand_service_settings(hand_validated, url, tmp_path)
    with TestClient(create_app(settings, id_key=WORLD_KEY)) as client:
        yield {"client": client, "store": store, "tokens": {k: v.token for k, v in keys.items()}}
    store.close()


def listed(service: dict, school_id: str, who: str) -> list[dict]:
    response = service["client"].get(f"/v1/schools/{school_id}/alerts", headers={"X-API-Key": service["tokens"][who]})
    assert response.status_code == 200, response.text
    return response.json()["alerts"]


def page(service: dict, who: str, lang: str = "th") -> str:
    client = service["client"]
    client.cookies.set("risk_key", service["tokens"][who])
    response = client.get(f"/teacher?lang={lang}")
    client.cookies.clear()
    assert response.status_code == 200
    return html.unescape(response.text)


def test_a_wait_list_school_lists_no_alerts_in_the_api_while_its_students_are_scored_and_stored(service) -> None:
    store = service["store"]
    assert listed(service, SCHOOL_B, "b") == [] and listed(service, SCHOOL_B, "admin") == []
    assert len(stored_alert_ids(store, SCHOOL_B)) == 1  # the alert is kept, for the impact estimate
    with store.engine.connect() as conn:
        scores_b = conn.execute(select(func.count()).where(Score.__table__.c.school_id == SCHOOL_B)).scalar()
    assert scores_b == 1 and wait_list_term(store, SCHOOL_B) == PILOT_TERM
    assert open_alerts(store, SCHOOL_B).empty


def test_the_alert_list_of_a_wait_list_school_says_until_which_term(service) -> None:
    def until(school_id: str, who: str) -> str | None:
        response = service["client"].get(f"/v1/schools/{school_id}/alerts",
                                         headers={"X-API-Key": service["tokens"][who]})
        assert response.status_code == 200, response.text
        return response.json()["wait_list_until"]

    assert until(SCHOOL_B, "b") == "2569-2" and until(SCHOOL_A, "a") is None


def test_an_alert_now_school_sees_its_alerts_in_the_api_and_on_the_page(service) -> None:
    alerts = listed(service, SCHOOL_A, "a")
    assert [a["id"] for a in alerts] == stored_alert_ids(service["store"], SCHOOL_A)
    assert f'id="alert-{alerts[0]["id"]}"' in page(service, "a")
    assert NOTE_TH not in page(service, "a") and wait_list_term(service["store"], SCHOOL_A) is None


def test_the_wait_list_page_shows_no_alert_and_says_why_in_thai_and_english(service) -> None:
    thai, english = page(service, "b", "th"), page(service, "b", "en")
    assert NOTE_TH in thai and "(2569-2)" in thai
    assert NOTE_EN in english and "alerts will show from next term (2569-2)" in english
    assert 'id="alert-' not in thai and 'id="alert-' not in english


def test_a_wait_list_alert_cannot_be_acknowledged_during_the_pilot_term(service) -> None:
    alert_b = stored_alert_ids(service["store"], SCHOOL_B)[0]
    body = {"actions": ["home_visit"], "acted_on": JULY_24.isoformat()}
    for who in ("b", "admin"):
        response = service["client"].post(f"/v1/alerts/{alert_b}/ack", json=body,
                                          headers={"X-API-Key": service["tokens"][who]})
        assert response.status_code == 404, response.text


def test_the_next_terms_scoring_shows_the_wait_list_schools_alerts_again(service) -> None:
    store = service["store"]
    scored(store, NEXT_TERM, NOV_20, [(KEY_B, SCHOOL_B)])
    alerts = listed(service, SCHOOL_B, "b")
    assert sorted(a["id"] for a in alerts) == stored_alert_ids(store, SCHOOL_B)  # the pilot term's one too
    assert len(alerts) == 2 and wait_list_term(store, SCHOOL_B) is None
    shown = page(service, "b", "en")
    assert NOTE_EN not in shown and all(f'id="alert-{a["id"]}"' in shown for a in alerts)


def test_summaries_and_alert_counts_of_the_pilot_term_count_both_arms(service) -> None:
    store = service["store"]
    with store.engine.connect() as conn:
        run_id = conn.execute(select(Alert.__table__.c.run_id).limit(1)).scalar()
    assert alert_counts(store, run_id) == {"newly_at_risk": 2}
    write_summaries(store, run_id, pd.DataFrame({
        "level": ["school", "school"], "area_code": [SCHOOL_A, SCHOOL_B], "students": [1, 1], "normal": [0, 0],
        "at_risk": [1, 1], "problem": [0, 0], "flagged_rate": [1.0, 1.0]}))
    analyst = create_key(store, "analyst", label="analyst").token
    response = service["client"].get("/v1/summary?level=school", headers={"X-API-Key": analyst})
    assert response.status_code == 200, response.text
    assert {a["area_code"]: a["at_risk"] for a in response.json()["areas"]} == {SCHOOL_A: 1, SCHOOL_B: 1}


def student_risk(service: dict, student_id: str, who: str):
    return service["client"].get(f"/v1/students/{student_id}/risk", headers={"X-API-Key": service["tokens"][who]})


def test_a_wait_list_teacher_reads_no_score_of_its_student_until_the_next_term(service) -> None:
    store = service["store"]
    withheld, not_its_own = student_risk(service, STUDENTS[2], "b"), student_risk(service, STUDENTS[0], "b")
    assert withheld.status_code == not_its_own.status_code == 404
    assert withheld.json() == not_its_own.json()  # no class, no reasons, and no hint that the child is B's
    assert student_risk(service, STUDENTS[0], "a").status_code == 200  # the alert-now school reads its own
    for who in ("analyst", "admin"):  # the pilot withholds alerts from teachers, not scores
        shown = student_risk(service, STUDENTS[2], who)
        assert shown.status_code == 200 and shown.json()["latest"]["risk_class"] == "at_risk", shown.text
    service["client"].app.state.services.audit.flush()  # refusals are written off the request's path
    refused = audit_entries(store, student_key=KEY_B)
    assert any("on the wait-list of pilot term 2569-1" in d for d in refused["detail"])  # the real cause, on record

    scored(store, NEXT_TERM, NOV_20, [(KEY_B, SCHOOL_B)])
    after = student_risk(service, STUDENTS[2], "b")
    assert after.status_code == 200, after.text
    body = after.json()
    assert (body["latest"]["term"], body["latest"]["risk_class"]) == (NEXT_TERM, "at_risk")
    assert [(h["term"], h["risk_class"]) for h in body["history"]] == [(PILOT_TERM, "at_risk")]  # the pilot term's too


def summary_areas(service: dict, level: str) -> dict[str, dict]:
    response = service["client"].get(f"/v1/summary?level={level}", headers={"X-API-Key": service["tokens"]["analyst"]})
    assert response.status_code == 200, response.text
    return {a["area_code"]: a for a in response.json()["areas"]}


def test_school_summaries_name_each_schools_arm_in_the_pilot_of_their_term(service) -> None:
    store = service["store"]
    latest = {}
    for term, as_of in ((PILOT_TERM, JULY_24), (NEXT_TERM, NOV_20)):
        if term == NEXT_TERM:
            scored(store, NEXT_TERM, NOV_20, [(KEY_A, SCHOOL_A), (KEY_B, SCHOOL_B)])
        with store.engine.connect() as conn:
            latest[term] = conn.execute(select(Alert.__table__.c.run_id).where(Alert.__table__.c.as_of == as_of)
                                        .limit(1)).scalar()
        write_summaries(store, latest[term], pd.DataFrame({
            "level": ["school", "school", "nation"], "area_code": [SCHOOL_A, SCHOOL_B, "TH"], "students": [1, 1, 2],
            "normal": [0, 0, 0], "at_risk": [1, 1, 2], "problem": [0, 0, 0], "flagged_rate": [1.0, 1.0, 1.0]}))
        schools, nation = summary_areas(service, "school"), summary_areas(service, "nation")
        if term == PILOT_TERM:
            assert {code: a["arm"] for code, a in schools.items()} == {SCHOOL_A: "alert_now", SCHOOL_B: "wait_list"}
        else:  # no plan stands for the next term
            assert {code: a["arm"] for code, a in schools.items()} == {SCHOOL_A: None, SCHOOL_B: None}
        assert nation["TH"]["arm"] is None and nation["TH"]["at_risk"] == 2  # both arms counted


@pytest.mark.slow
def test_an_upstream_key_scores_a_wait_list_schools_student_during_the_pilot_term(world, champion, tmp_path) -> None:
    """The wait-list withholds alerts from teachers only: ``POST /v1/score`` answers for its students as before."""
    from test_serve import clean_students, payload_of, source_tables

    tables = source_tables(world / "source")
    enrolled = tables["enrollments"]
    clean = sorted(clean_students(world, tables))
    student = next(s for s in clean if (enrolled.loc[enrolled["student_id"] == s, "term"] == PILOT_TERM).any())
    school = enrolled.loc[(enrolled["student_id"] == student) & (enrolled["term"] == PILOT_TERM), "school_id"].iloc[0]
    url = f"sqlite:///{tmp_path / 'risk.db'}"
    store = open_store(url)
    scored(store, PILOT_TERM, JULY_24, [(pseudonym(student, WORLD_KEY), school)])
    write_pilot(store, plan(), pd.DataFrame({"school_id": [school], "arm": ["wait_list"], "stratum": ["x"]}))
    assert wait_list_term(store, school) == PILOT_TERM
    upstream = create_key(store, "upstream", label="upstream").token
    teacher = create_key(store, "teacher", school_id=school, label="teacher").token
    settings = ServeSettings(data=world / "validated", store_url=url, tracking_dir=champion[0],
                             model_cache=tmp_path / "cache", access_log=False, key_cache_seconds=0,
                             rate_limit={"per_second": 100_000, "burst": 100_000})
    with TestClient(create_app(settings, id_key=WORLD_KEY)) as client:
        response = client.post("/v1/score", json=payload_of(tables, student, JULY_24), headers={"X-API-Key": upstream})
        withheld = client.get(f"/v1/students/{student}/risk", headers={"X-API-Key": teacher})
    store.close()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["school_id"] == school and body["risk_class"] in {"normal", "at_risk", "problem"}
    assert 0 <= body["probability"] <= 1 and withheld.status_code == 404


# ---------------------------------------------------------------- plans in the store (SQLite and PostgreSQL)
@pytest.fixture
def store(backend: tuple[str, str | None]) -> Iterator[Store]:
    opened = open_store(backend[0])
    yield opened
    opened.close()


def test_a_second_plan_for_a_term_is_refused_unless_it_replaces_the_first(store) -> None:
    write_pilot(store, plan(seed=1), A_NOW_B_WAITS)
    with pytest.raises(PilotExistsError, match="2569-1 has a pilot plan already"):
        write_pilot(store, plan(seed=2), A_NOW_B_WAITS.assign(arm=["wait_list", "alert_now"]))
    assert pilot_plan(store, PILOT_TERM).seed == 1
    write_pilot(store, plan(seed=2), A_NOW_B_WAITS.assign(arm=["wait_list", "alert_now"]), replace=True)
    assert pilot_plan(store, PILOT_TERM).seed == 2
    arms = pilot_arms(store, PILOT_TERM).set_index("school_id")["arm"]
    assert arms.to_dict() == {SCHOOL_A: "wait_list", SCHOOL_B: "alert_now"}
    with store.engine.connect() as conn:
        kept = conn.execute(select(PilotPlan.__table__.c.seed).where(PilotPlan.replaced_at.is_not(None))).scalars()
        assert list(kept) == [1]  # the first draw is kept, marked replaced


def test_a_plan_takes_effect_with_its_terms_first_scoring(store) -> None:
    scored(store, "2568-2", dt.date(2026, 2, 10), [(KEY_B, SCHOOL_B)])
    write_pilot(store, plan(), A_NOW_B_WAITS)
    assert len(open_alerts(store, SCHOOL_B)) == 1  # the current term is still the one before the pilot's
    scored(store, PILOT_TERM, JULY_24, [(KEY_B, SCHOOL_B)])
    assert open_alerts(store, SCHOOL_B).empty


# ---------------------------------------------------------------- risk pilot plan on the synthetic world
def run_plan(world: Path, home: Path, *extra: str):
    return CliRunner().invoke(cli, ["pilot", "plan", "--term", "2568-2", "--data", str(world / "validated"),
                                    "--store", f"sqlite:///{home / 'risk.db'}", "--tracking-dir", str(home), *extra])


@pytest.mark.slow
def test_the_cli_plan_is_reproducible_stored_logged_and_prints_its_mde(world: Path, tmp_path: Path) -> None:
    first = run_plan(world, tmp_path, "--seed", "11")
    assert first.exit_code == 0, first.output
    store = open_store(f"sqlite:///{tmp_path / 'risk.db'}")
    arms = pilot_arms(store, "2568-2")
    assert len(arms) >= 20 and set(arms["arm"]) == {"alert_now", "wait_list"}
    assert "minimum detectable effect (80% power, 5% two-sided): a fall of" in first.output
    assert "all enrolled students' dropout, from the labels (no scores are stored for past terms)" in first.output

    refused = run_plan(world, tmp_path, "--seed", "11")
    assert refused.exit_code == 2 and "has a pilot plan already" in refused.output
    assert "Traceback" not in refused.output and len(refused.output.strip().splitlines()) == 1

    again = run_plan(world, tmp_path, "--seed", "11", "--replace")
    assert again.exit_code == 0, again.output
    pd.testing.assert_frame_equal(pilot_arms(store, "2568-2"), arms)  # the same seed draws the same plan
    other = run_plan(world, tmp_path, "--seed", "12", "--replace")
    assert other.exit_code == 0 and not pilot_arms(store, "2568-2")["arm"].equals(arms["arm"])

    record = pilot_plan(store, "2568-2")
    run = mlflow.get_run(record.mlflow_run_id)
    assert {"term": "2568-2", "share": "0.5", "strata": "province,size", "seed": "12"}.items() <= run.data.params.items()
    logged = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="assignment.csv",
                                                             dst_path=str(tmp_path / "logged")), dtype=str)
    assert list(logged.columns) == ["school_id", "arm", "stratum"]  # school ids and arms, no student data
    pd.testing.assert_frame_equal(logged[["school_id", "arm"]], pilot_arms(store, "2568-2")[["school_id", "arm"]])
    assert mlflow.get_experiment(run.info.experiment_id).name == "dropout-risk-pilots"
    shown = CliRunner().invoke(cli, ["pilot", "show", "--term", "2568-2", "--data", str(world / "validated"),
                                     "--store", f"sqlite:///{tmp_path / 'risk.db'}"])
    assert shown.exit_code == 0 and f"pilot {record.pilot_id}" in shown.output and "seed 12" in shown.output
    store.close()


def test_a_share_outside_0_and_1_is_one_sentence_and_exit_2(hand_validated: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["pilot", "plan", "--term", "2567-1", "--seed", "1", "--share", "1.5",
                                      "--data", str(hand_validated), "--store", f"sqlite:///{tmp_path / 'risk.db'}"])
    assert result.exit_code == 2 and result.output.strip() == "error: share must be between 0 and 1 (exclusive), got 1.5"


@pytest.mark.slow
def test_the_base_rate_comes_from_flagged_students_when_past_terms_were_scored(world: Path, tmp_path: Path) -> None:
    from risk.config import load_settings
    from risk.features.sources import connect, view_validated
    from risk.impact.plan import plan_lines, plan_pilot

    con = connect()
    view_validated(con, world / "validated")
    past = con.execute("SELECT student_key, school_id FROM enrollments WHERE term = '2568-1' "
                       "ORDER BY student_key").df()
    con.close()
    store = open_store(f"sqlite:///{tmp_path / 'risk.db'}")
    scored(store, "2568-1", dt.date(2025, 7, 1), list(zip(past["student_key"][::4], past["school_id"][::4],
                                                          strict=True)))
    result = plan_pilot(store, world / "validated", term="2568-2", share=0.5, strata=["province"], seed=3,
                        policy=load_settings().labels)
    assert result.baseline.basis == "flagged" and result.baseline.terms == ["2568-1"]
    assert result.baseline.icc.n_students <= len(past[::4]) and result.mde is not None
    assert result.baseline.flagged_share == pytest.approx(0.25, abs=0.02)
    assert "flagged (at-risk or problem) students' dropout, from the scores stored" in "\n".join(plan_lines(result))
    assert pilot_plan(store, "2568-2") is None  # drawing writes nothing; record_plan stores it
    store.close()


def test_migration_0006_goes_down_to_0005_and_up_again(store, backend) -> None:
    from sqlalchemy import create_engine, inspect

    from risk.store.migrate import current_revision, downgrade, head_revision, upgrade

    write_pilot(store, plan(), A_NOW_B_WAITS)
    engine = create_engine(backend[0])
    downgrade(engine, "0005")
    assert current_revision(engine) == "0005"
    assert not {"pilot_plans", "pilot_schools"} & set(inspect(engine).get_table_names(schema=backend[1]))
    upgrade(engine, "0006")
    assert current_revision(engine) == "0006" and pilot_plan(store, PILOT_TERM) is None
    upgrade(engine)  # and on to the head, whatever later revisions there are
    assert current_revision(engine) == head_revision()
    engine.dispose()
