"""An alert is one per student, term and as_of: scoring a date again updates it, and an acknowledgement stays with it.

DESIGN.md "Reasons, roles and alerts". The store tests run on SQLite and PostgreSQL;
one test scores the session's small world three times at one date with two models
through the real scorer (``score_students``: ``build_alerts`` then ``write_alerts``),
acknowledging alerts between the runs; one upgrades a store of revision 0002 holding
the duplicates the old scorer left; one posts bad dates to the real app (in this process).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from collections.abc import Iterator

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import MODEL_NAME, WORLD_KEY, hand_service_settings
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError
from test_serve import scored  # noqa: F401  (the module fixture: the world's batch scores and alerts)

from risk.config import load_settings
from risk.models.bundle import ModelBundle
from risk.scoring.batch import ScoreReport, score_students
from risk.scoring.settings import load_scoring_settings
from risk.serve.app import create_app
from risk.store import (
    AcknowledgementDateError,
    Store,
    StoreError,
    acknowledge,
    alert_counts,
    create_key,
    finish_run,
    open_alerts,
    open_store,
    run_record,
    start_run,
    write_alerts,
)
from risk.store.db import _engine
from risk.store.migrate import current_revision, downgrade, head_revision, upgrade
from risk.store.models import Acknowledgement, Alert

TERM = "2569-1"
SCHOOL = "1040100001"
JUNE_12, JULY_24 = dt.date(2026, 6, 12), dt.date(2026, 7, 24)
KIND_OF = {"at_risk": "newly_at_risk", "problem": "escalated_problem", None: "left_register"}


@pytest.fixture
def store(backend: tuple[str, str | None]) -> Iterator[Store]:
    opened = open_store(backend[0])
    yield opened
    opened.close()


def run_at(store: Store, as_of: dt.date = JULY_24, model_version: str = "3") -> str:
    return start_run(store, as_of=as_of, term=TERM, model_name=MODEL_NAME, model_version=model_version, settings={})


def alerts_of(classes: dict[int, str | None], as_of: dt.date = JULY_24, probability: float = 0.4) -> pd.DataFrame:
    """One alert per student key: its class now (None: left the register), normal before."""
    keys = list(classes)
    return pd.DataFrame({
        "student_key": keys, "school_id": SCHOOL, "as_of": as_of,
        "kind": [KIND_OF[c] for c in classes.values()], "previous_class": "normal",
        "current_class": list(classes.values()), "probability": [None if c is None else probability
                                                                   for c in classes.values()],
        "grade_level": "M3", "classroom": "3/2", "sex": "female", "id_hint": "•••••••••0001",
        "reasons_en": [["Absent 5 of the last 10 days"]] * len(keys), "reasons_th": [["ขาดเรียน 5 ใน 10 วันล่าสุด"]] * len(keys),
        "actions_en": [["Home visit"]] * len(keys), "actions_th": [["เยี่ยมบ้าน"]] * len(keys),
    })  # fmt: skip


def stored_alerts(store: Store) -> pd.DataFrame:
    """Every alert row (superseded and withdrawn ones too), by id."""
    a = Alert.__table__.c
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(a.id, a.run_id, a.student_key, a.term, a.as_of, a.kind, a.current_class,
                                      a.probability, a.status, a.updated_at, a.supersedes_alert_id, a.superseded_at)
                            .order_by(a.id))
        return pd.DataFrame.from_records([tuple(r) for r in rows], columns=list(rows.keys()))


def acknowledgements(store: Store) -> dict[int, int]:
    """Acknowledgement id → the alert it belongs to."""
    ack = Acknowledgement.__table__.c
    with store.engine.connect() as conn:
        return dict(conn.execute(sa.select(ack.id, ack.alert_id)).all())


def the_alert(store: Store, student_key: int) -> int:
    """The id of the student's current alert at JULY_24."""
    rows = stored_alerts(store)
    current = rows[(rows["student_key"] == student_key) & rows["superseded_at"].isna()]
    assert len(current) == 1
    return int(current["id"].iloc[0])


# --- writing a date again --------------------------------------------------------------


def test_scoring_a_date_again_with_another_model_updates_its_alerts_in_place(store: Store) -> None:
    first = run_at(store)
    assert write_alerts(store, first, alerts_of({1: "at_risk", 2: "problem"}))["new"] == 2
    before = stored_alerts(store)
    again = run_at(store, model_version="4")
    counts = write_alerts(store, again, alerts_of({1: "problem", 2: "problem"}, probability=0.8))
    assert counts == {"new": 0, "updated": 2, "kept_acknowledged": 0, "reraised": 0, "withdrawn": 0}
    after = stored_alerts(store)
    assert after["id"].tolist() == before["id"].tolist()  # the same alerts, so a teacher's page stays valid
    assert after["kind"].tolist() == ["escalated_problem", "escalated_problem"]
    assert after["probability"].tolist() == [0.8, 0.8] and set(after["run_id"]) == {again}
    assert after["status"].eq("open").all() and after["updated_at"].notna().all()
    assert (after["term"] == TERM).all()
    assert run_record(store, again)["alerts"] == counts


def test_an_acknowledged_alert_stays_as_it_was_when_its_date_is_scored_again(store: Store) -> None:
    first = run_at(store)
    write_alerts(store, first, alerts_of({1: "at_risk"}))
    ack_id = acknowledge(store, the_alert(store, 1), "Home visit", JULY_24)
    counts = write_alerts(store, run_at(store, model_version="4"), alerts_of({1: "at_risk"}, probability=0.45))
    assert counts["kept_acknowledged"] == 1 and counts["updated"] == counts["new"] == 0
    (row,) = stored_alerts(store).itertuples()
    assert (row.status, row.run_id, row.probability) == ("acknowledged", first, 0.4)
    assert acknowledgements(store) == {ack_id: row.id}
    assert open_alerts(store, SCHOOL).empty


def test_a_worse_class_after_an_acknowledgement_raises_a_new_alert_linked_to_the_old(store: Store) -> None:
    write_alerts(store, run_at(store), alerts_of({1: "at_risk", 2: "at_risk"}))
    old = {k: the_alert(store, k) for k in (1, 2)}
    acks = {k: acknowledge(store, old[k], "Called the parents", JULY_24) for k in (1, 2)}
    counts = write_alerts(store, run_at(store, model_version="4"), alerts_of({1: "problem", 2: None}))
    assert counts["reraised"] == 2 and counts["kept_acknowledged"] == 0
    rows = stored_alerts(store).set_index("id")
    for key in (1, 2):
        assert rows.loc[old[key], "status"] == "acknowledged" and pd.notna(rows.loc[old[key], "superseded_at"])
        new = the_alert(store, key)
        assert new != old[key] and rows.loc[new, "supersedes_alert_id"] == old[key]
        assert rows.loc[new, "status"] == "open"
    assert rows.loc[the_alert(store, 2), "kind"] == "left_register"  # leaving the register is worse than any class
    assert acknowledgements(store) == {acks[k]: old[k] for k in (1, 2)}
    shown = open_alerts(store, SCHOOL).set_index("student_key")
    assert shown.loc[1, "supersedes_alert_id"] == old[1] and shown.loc[1, "kind"] == "escalated_problem"
    # A third scoring at the same date updates the re-raised alert; it does not raise yet another.
    assert write_alerts(store, run_at(store), alerts_of({1: "problem", 2: None}))["updated"] == 2
    assert len(stored_alerts(store)) == 4


def test_an_open_alert_no_longer_supported_is_withdrawn_and_comes_back_under_its_id(store: Store) -> None:
    write_alerts(store, run_at(store), alerts_of({1: "at_risk", 2: "at_risk", 3: "at_risk"}))
    acknowledge(store, the_alert(store, 3), "Met the student", JULY_24)
    withdrawn_id = the_alert(store, 2)
    second = run_at(store, model_version="4")
    counts = write_alerts(store, second, alerts_of({1: "at_risk"}))
    assert counts == {"new": 0, "updated": 1, "kept_acknowledged": 1, "reraised": 0, "withdrawn": 1}
    rows = stored_alerts(store).set_index("student_key")
    assert rows.loc[2, "status"] == "withdrawn" and rows.loc[3, "status"] == "acknowledged"
    assert open_alerts(store, SCHOOL)["student_key"].tolist() == [1]
    assert alert_counts(store, second) == {"newly_at_risk": 2}  # 1 open, 3 acknowledged; 2 withdrawn
    with pytest.raises(StoreError, match="is withdrawn, not open"):
        acknowledge(store, withdrawn_id, "Visited", JULY_24)
    write_alerts(store, run_at(store), alerts_of({1: "at_risk", 2: "at_risk"}))
    assert the_alert(store, 2) == withdrawn_id and stored_alerts(store).set_index("id").loc[withdrawn_id,
                                                                                         "status"] == "open"


def test_every_run_of_a_date_reports_the_same_alert_counts(store: Store) -> None:
    earlier = run_at(store, JUNE_12)
    write_alerts(store, earlier, alerts_of({7: "problem"}, as_of=JUNE_12))
    runs = [run_at(store), run_at(store, model_version="4")]
    write_alerts(store, runs[0], alerts_of({1: "at_risk", 2: "problem"}))
    write_alerts(store, runs[1], alerts_of({1: "at_risk", 2: "problem"}))
    assert alert_counts(store, runs[0]) == alert_counts(store, runs[1]) == {"newly_at_risk": 1,
                                                                            "escalated_problem": 1}
    assert alert_counts(store, earlier) == {"escalated_problem": 1}


def test_an_alert_frame_with_only_the_required_columns_is_stored_and_rewritten(store: Store) -> None:
    bare = alerts_of({1: "at_risk"})[["student_key", "school_id", "as_of", "kind"]]
    assert write_alerts(store, run_at(store), bare)["new"] == 1
    assert write_alerts(store, run_at(store, model_version="4"), bare)["updated"] == 1
    assert stored_alerts(store)["current_class"].isna().all()


def test_a_student_twice_in_one_run_is_refused(store: Store) -> None:
    frame = pd.concat([alerts_of({1: "at_risk"}), alerts_of({1: "problem"})], ignore_index=True)
    with pytest.raises(StoreError, match="Student 1 has two alerts in one run"):
        write_alerts(store, run_at(store), frame)
    assert stored_alerts(store).empty


def test_alerts_dated_otherwise_than_their_run_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match=f"scored {JULY_24}, but its alerts are dated {JUNE_12}"):
        write_alerts(store, run_at(store), alerts_of({1: "at_risk"}, as_of=JUNE_12))
    with pytest.raises(StoreError, match="no scoring run nope"):
        write_alerts(store, "nope", alerts_of({1: "at_risk"}))


def test_the_store_refuses_a_second_current_alert_for_a_student_and_date(store: Store) -> None:
    run_id = run_at(store)
    write_alerts(store, run_id, alerts_of({1: "at_risk"}))
    row = {"run_id": run_id, "student_key": 1, "school_id": SCHOOL, "as_of": JULY_24, "term": TERM,
           "kind": "newly_at_risk", "created_at": dt.datetime(2026, 7, 24), "status": "open"}
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(sa.insert(Alert.__table__).values(**row))


# --- acknowledgement dates -------------------------------------------------------------


@pytest.mark.parametrize("acted_on", [dt.date(1900, 1, 1), dt.date(5338, 1, 1), "day_before", "tomorrow"])
def test_an_acknowledgement_dated_before_its_alert_or_after_today_is_refused(store: Store, acted_on) -> None:
    today = dt.date.today()
    as_of = today - dt.timedelta(days=10)
    acted_on = {"day_before": as_of - dt.timedelta(days=1), "tomorrow": today + dt.timedelta(days=1)}.get(
        acted_on, acted_on)
    run_id = start_run(store, as_of=as_of, term=TERM, model_name=MODEL_NAME, model_version="3", settings={})
    write_alerts(store, run_id, alerts_of({1: "at_risk"}, as_of=as_of))
    alert_id = the_alert(store, 1)
    with pytest.raises(AcknowledgementDateError, match=f"{acted_on.isoformat()}, must lie between the alert's "
                                                       f"date {as_of.isoformat()} and today {today.isoformat()}"):
        acknowledge(store, alert_id, "Home visit", acted_on)
    assert acknowledgements(store) == {} and open_alerts(store, SCHOOL)["id"].tolist() == [alert_id]


def test_an_acknowledgement_on_the_alerts_date_or_today_is_taken(store: Store) -> None:
    today = dt.date.today()
    as_of = today - dt.timedelta(days=10)
    run_id = start_run(store, as_of=as_of, term=TERM, model_name=MODEL_NAME, model_version="3", settings={})
    write_alerts(store, run_id, alerts_of({1: "at_risk", 2: "at_risk"}, as_of=as_of))
    acknowledge(store, the_alert(store, 1), "Home visit", as_of)
    acknowledge(store, the_alert(store, 2), "Home visit", today)
    assert len(acknowledgements(store)) == 2 and open_alerts(store, SCHOOL).empty


# --- three scorings of one date by two models, through the real scorer -----------------


def stricter(bundle: ModelBundle, factor: float = 0.4) -> ModelBundle:
    """The same booster with every class threshold lowered: a second model that flags more, and higher."""
    def lowered(policy):
        return policy.model_copy(update={"problem_threshold": policy.problem_threshold * factor,
                                         "at_risk_threshold": policy.at_risk_threshold * factor})

    policy = lowered(bundle.policy)
    policy = policy.model_copy(update={"groups": {k: lowered(g) for k, g in policy.groups.items()}})
    return dataclasses.replace(bundle, policy=policy)


def score(world, bundle: ModelBundle, version: str, as_of: dt.date, store: Store, out) -> ScoreReport:
    return score_students(world / "validated", as_of, bundle=bundle, model_name=MODEL_NAME, model_version=version,
                          store=store, out=out, settings=load_settings(), scoring=load_scoring_settings(),
                          progress=False)


def acknowledge_every_third(store: Store, rows: pd.DataFrame, acted_on: dt.date) -> dict[int, int]:
    """Acknowledge every third of ``rows`` (open alerts): acknowledgement id → alert id."""
    return {acknowledge(store, int(i), "เยี่ยมบ้าน home visit", acted_on): int(i) for i in rows["id"].iloc[::3]}


def test_three_scorings_of_a_date_by_two_models_leave_one_alert_per_student_and_every_acknowledgement(
        world, champion, backend, tmp_path) -> None:
    _, version, bundle = champion
    store = open_store(backend[0])
    score(world, bundle, version, JUNE_12, store, tmp_path / "june.parquet")  # the runs below compare with it
    first = score(world, bundle, version, JULY_24, store, tmp_path / "first.parquet")
    after_first = stored_alerts(store).query("as_of == @JULY_24")
    assert len(after_first) > 30 and after_first["student_key"].is_unique
    acked = acknowledge_every_third(store, after_first, JULY_24)

    second = score(world, stricter(bundle), f"{version}-strict", JULY_24, store, tmp_path / "second.parquet")
    counts = run_record(store, second.run_id)["alerts"]
    assert second.alert_outcomes == counts and "; stored: new " in "\n".join(second.summary_lines())
    assert counts["kept_acknowledged"] + counts["reraised"] == len(acked)
    assert min(counts["updated"], counts["new"], counts["reraised"]) > 0, counts
    open_now = stored_alerts(store).query("as_of == @JULY_24 and status == 'open'")
    acked |= acknowledge_every_third(store, open_now, JULY_24)

    third = score(world, bundle, version, JULY_24, store, tmp_path / "third.parquet")
    counts = run_record(store, third.run_id)["alerts"]
    assert counts["withdrawn"] > 0, counts  # the stricter model's extra alerts that nobody acknowledged

    rows = stored_alerts(store).query("as_of == @JULY_24")
    current = rows[rows["superseded_at"].isna()]
    assert current["student_key"].is_unique and (current["term"] == TERM).all()
    standing = current[current["status"] != "withdrawn"]
    # Every acknowledgement is still there, on the alert it was made on, which is still acknowledged.
    assert acknowledgements(store) == acked
    assert rows.set_index("id").loc[list(acked.values()), "status"].eq("acknowledged").all()
    # The champion's alerts are back under the ids of the first run; those open again have its kinds.
    first_alerts = after_first.set_index("student_key")
    assert set(first_alerts.index) <= set(standing["student_key"])
    same = standing.set_index("student_key").loc[first_alerts.index]
    unchanged = same["supersedes_alert_id"].isna()
    assert (same.loc[unchanged, "id"] == first_alerts.loc[unchanged, "id"]).all()
    reopened = unchanged & (same["status"] == "open")
    assert reopened.sum() > 0
    assert (same.loc[reopened, "kind"] == first_alerts.loc[reopened, "kind"]).all()
    # Students alerted only by the stricter model remain only where a school acknowledged them.
    extra = standing[~standing["student_key"].isin(first_alerts.index)]
    assert extra["status"].eq("acknowledged").all()
    # Re-raised alerts each point at an acknowledged alert of the same student that left the index.
    linked = rows[rows["supersedes_alert_id"].notna()]
    assert len(linked) > 0
    old = rows.set_index("id").loc[linked["supersedes_alert_id"].astype(int)]
    assert (old["student_key"].to_numpy() == linked["student_key"].to_numpy()).all()
    assert old["status"].eq("acknowledged").all() and old["superseded_at"].notna().all()
    assert alert_counts(store, first.run_id) == alert_counts(store, third.run_id)
    store.close()


# --- the migration that folds the duplicates the old scorer left -----------------------

V2_RUNS = sa.table("scoring_runs", *(sa.column(c) for c in ("run_id", "term", "model_name", "model_version",
                                                            "status")),
                   sa.column("as_of", sa.Date()), sa.column("started_at", sa.DateTime()),
                   sa.column("finished_at", sa.DateTime()))
V2_ALERTS = sa.table("alerts", sa.column("id", sa.BigInteger()), sa.column("run_id"), sa.column("student_key"),
                     sa.column("school_id"), sa.column("kind"), sa.column("current_class"), sa.column("status"), sa.column("as_of", sa.Date()),
                     sa.column("created_at", sa.DateTime()))
V2_ACKS = sa.table("acknowledgements", sa.column("id", sa.BigInteger()), sa.column("alert_id"),
                   sa.column("action_taken"), sa.column("acted_on", sa.Date()), sa.column("recorded_at", sa.DateTime()))


def plant_v2(conn: sa.Connection, run: str, as_of: dt.date, alerts: list[tuple[int, str]]) -> list[int]:
    """A finished run of revision 0002 with alerts (student key, status); acknowledged ones get an acknowledgement."""
    stamp = dt.datetime(2026, 7, 25)
    conn.execute(sa.insert(V2_RUNS).values(run_id=run, as_of=as_of, term=TERM, model_name=MODEL_NAME,
                                           model_version=run, status="finished", started_at=stamp,
                                           finished_at=stamp))
    ids = []
    for key, status in alerts:
        alert_id = conn.execute(sa.insert(V2_ALERTS).values(
            run_id=run, student_key=key, school_id=SCHOOL, as_of=as_of, kind="newly_at_risk", current_class="at_risk", status=status,
            created_at=stamp).returning(V2_ALERTS.c.id)).scalar_one()
        if status == "acknowledged":
            conn.execute(sa.insert(V2_ACKS).values(alert_id=alert_id, action_taken="Home visit", acted_on=as_of,
                                                   recorded_at=stamp))
        ids.append(alert_id)
    return ids


def test_upgrading_a_store_with_duplicate_alerts_keeps_one_per_date_and_every_acknowledgement(backend) -> None:
    engine = _engine(backend[0])  # the store's own engine: on SQLite, foreign keys enforced
    upgrade(engine, "0002")
    with engine.begin() as conn:
        # student: 1 open twice; 2 acknowledged then open; 3 acknowledged, acknowledged, open; 4 once;
        # 5 on two dates
        june = plant_v2(conn, "june", JUNE_12, [(5, "open")])
        one = plant_v2(conn, "one", JULY_24, [(1, "open"), (2, "acknowledged"), (3, "acknowledged"), (4, "open"),
                                              (5, "open")])
        two = plant_v2(conn, "two", JULY_24, [(1, "open"), (2, "open"), (3, "acknowledged")])
        three = plant_v2(conn, "three", JULY_24, [(3, "open")])
        acks_before = dict(conn.execute(sa.select(V2_ACKS.c.id, V2_ACKS.c.alert_id)).all())
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    store = Store(engine=engine, url=backend[0])
    rows = stored_alerts(store).set_index("id")
    assert sorted(rows.index) == sorted([june[0], two[0], one[1], one[2], two[2], one[3], one[4]])
    assert sorted(set(one + two + three + june) - set(rows.index)) == sorted([one[0], two[1], three[0]])
    assert rows.loc[one[2], "status"] == "acknowledged" and pd.notna(rows.loc[one[2], "superseded_at"])
    assert rows["superseded_at"].notna().sum() == 1 and (rows["term"] == TERM).all()
    assert acknowledgements(store) == acks_before
    # The fold left one current alert per student and date; the index now refuses a second.
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(Alert.__table__).values(
            run_id="three", student_key=2, school_id=SCHOOL, as_of=JULY_24, term=TERM, kind="newly_at_risk",
            created_at=dt.datetime(2026, 7, 26), status="open"))
    # A scoring of the date now meets the kept alerts: the acknowledged one stays, the open one is updated.
    run_id = start_run(store, as_of=JULY_24, term=TERM, model_name=MODEL_NAME, model_version="4", settings={})
    counts = write_alerts(store, run_id, alerts_of({1: "at_risk", 2: "at_risk"}))
    # 1 updated; 2 and 3 kept acknowledged; 4 and 5 (at this date) withdrawn
    assert counts == {"new": 0, "updated": 1, "kept_acknowledged": 2, "reraised": 0, "withdrawn": 2}
    finish_run(store, run_id, students=2, drift={})
    downgrade(engine, "0002")
    assert current_revision(engine) == "0002"
    with engine.connect() as conn:
        assert dict(conn.execute(sa.select(V2_ACKS.c.id, V2_ACKS.c.alert_id)).all()) == acks_before
    engine.dispose()


def test_a_failed_migration_leaves_a_sqlite_store_as_it_was(tmp_path) -> None:
    """An alert whose run is gone (planted with foreign keys off) cannot be given a term, so 0003 fails whole."""
    url = f"sqlite:///{tmp_path / 'risk.db'}"
    engine = _engine(url)
    upgrade(engine, "0002")
    engine.dispose()
    raw = sqlite3.connect(tmp_path / "risk.db")
    raw.execute("INSERT INTO alerts (run_id, student_key, school_id, as_of, kind, created_at, status) VALUES "
                "('gone', 1, '1040100001', '2026-07-24', 'newly_at_risk', '2026-07-24 08:00:00', 'open')")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="Cannot open the store at .*NOT NULL constraint failed"):
        open_store(url)
    engine = _engine(url)
    assert current_revision(engine) == "0002"
    assert "alerts" not in {c["name"] for c in sa.inspect(engine).get_columns("scoring_runs")}
    assert "term" not in {c["name"] for c in sa.inspect(engine).get_columns("alerts")}
    engine.dispose()


# --- the service: a bad date is a 422 that says why --------------------------------------


@pytest.fixture(scope="module")
def teacher_app(world, scored, tmp_path_factory) -> Iterator[tuple[TestClient, str]]:  # noqa: F811
    """The app on the scored world's store (no model: acknowledging needs none), and the school with most
    alerts, whose teacher's key the client sends."""
    url, store, frame = scored
    school = frame.loc[frame["risk_class"] != "normal", "school_id"].value_counts().index[0]
    token = create_key(store, "teacher", school_id=school, label="teacher of the school").token
    app = create_app(hand_service_settings(world / "validated", url, tmp_path_factory.mktemp("ack-app")),
                     id_key=WORLD_KEY)
    with TestClient(app) as client:
        client.headers["X-API-Key"] = token
        yield client, school


def test_the_service_refuses_an_acknowledgement_dated_before_the_alert_or_after_today(teacher_app):
    client, school = teacher_app
    alerts = client.get(f"/v1/schools/{school}/alerts").json()["alerts"]
    first, second = alerts[0], alerts[1]
    today = dt.date.today()
    for bad in ("1900-01-01", "5338-01-01", (today + dt.timedelta(days=1)).isoformat()):
        response = client.post(f"/v1/alerts/{first['id']}/ack", json={"action_taken": "เยี่ยมบ้าน", "acted_on": bad})
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "acted_on"]
        assert f"{bad}, must lie between the alert's date {first['as_of']} and today" in error["msg"]
    ok = client.post(f"/v1/alerts/{first['id']}/ack", json={"action_taken": "เยี่ยมบ้าน", "acted_on": first["as_of"]})
    assert ok.status_code == 200, ok.text
    ok = client.post(f"/v1/alerts/{second['id']}/ack",
                     json={"action_taken": "โทรหาผู้ปกครอง", "acted_on": today.isoformat()})
    assert ok.status_code == 200, ok.text
