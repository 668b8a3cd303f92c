"""Structured actions (issue 30): what a school did, as configured action codes, through the real service and files.

- The API's acknowledgement takes action codes (each stored as an ``alert_actions`` row with
  the date, the note and the key), refuses a code the service is not configured with (422
  naming the allowed ones), and still takes the old body of words alone.
- The teacher page offers the codes as boxes to tick (Thai and English labels from config),
  for its own school's alerts only.
- ``risk actions import FILE`` (CSV or Excel) stores only pseudonyms, links each action to the
  student's alert, quarantines bad rows with their rule, and its counts add up.
- Migration 0005 keeps an old free-text acknowledgement as it was, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openpyxl
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
from sqlalchemy import create_engine, inspect, select, text
from store_rows import hand_scoring_run

from risk.data.actions_import import read_action_file
from risk.data.ids import masked_id, pseudonym
from risk.scoring.settings import load_scoring_settings
from risk.serve.app import create_app
from risk.store import (
    Store,
    acknowledge,
    create_key,
    import_actions,
    open_alerts,
    open_store,
    stored_actions,
)
from risk.store.migrate import downgrade, upgrade
from risk.store.models import Acknowledgement

JULY_10, JULY_24, JULY_27 = dt.date(2026, 7, 10), dt.date(2026, 7, 24), dt.date(2026, 7, 27)
RAW_A, RAW_B = STUDENTS[0], STUDENTS[1]  # real IDs: A's child in school A, B's in school B
KEY_A, KEY_B = pseudonym(RAW_A, WORLD_KEY), pseudonym(RAW_B, WORLD_KEY)
KEY_C = 424242  # a child of school A known only by pseudonym, scored, never alerted
CODES = load_scoring_settings().action_codes
ROOT = Path(__file__).resolve().parents[1]


def scored_with_alerts(store: Store, as_of: dt.date, alerted: list[tuple[int, str]],
                       others: list[tuple[int, str]] = ()) -> str:
    """A finished run of 2569-1 scoring alerted and others, alerting the first with A's and B's real hints."""
    hints = {KEY_A: masked_id(RAW_A), KEY_B: masked_id(RAW_B)}
    return hand_scoring_run(store, "2569-1", as_of, [*alerted, *others], alerted, id_hints=hints)


def alert_of(store: Store, school_id: str, student_key: int) -> int:
    frame = open_alerts(store, school_id)
    return int(frame.loc[frame["student_key"] == student_key, "id"].iloc[0])


# ---------------------------------------------------------------- the service
@pytest.fixture
def service(hand_validated: Path, tmp_path: Path) -> Iterator[dict]:
    """The real app (no model needed for alerts) on a fresh store: A's child and B's child alerted, keys of each role."""
    url = f"sqlite:///{tmp_path / 'risk.db'}"
    store = open_store(url)
    scored_with_alerts(store, JULY_24, [(KEY_A, SCHOOL_A), (KEY_B, SCHOOL_B)], [(KEY_C, SCHOOL_A)])
    keys = {"a": create_key(store, "teacher", school_id=SCHOOL_A, label="teacher A"),
            "b": create_key(store, "teacher", school_id=SCHOOL_B, label="teacher B")}
    settings = hand_service_settings(hand_validated, url, tmp_path)
    app = create_app(settings, id_key=WORLD_KEY)
    with TestClient(app) as client:
        yield {"client": client, "store": store, "url": url, "path": tmp_path / "risk.db",
               "tokens": {k: v.token for k, v in keys.items()}, "key_ids": {k: v.record.key_id for k, v in keys.items()},
               "alert_a": alert_of(store, SCHOOL_A, KEY_A), "alert_b": alert_of(store, SCHOOL_B, KEY_B)}
    store.close()


def ack(service: dict, alert_id: int, who: str, body: dict):
    return service["client"].post(f"/v1/alerts/{alert_id}/ack", json=body,
                                  headers={"X-API-Key": service["tokens"][who]})


def test_an_acknowledgement_stores_each_code_with_its_date_note_and_key(service) -> None:
    body = {"actions": ["home_visit", "cct_referral", "home_visit"], "action_taken": "Met the mother at home",
            "acted_on": JULY_27.isoformat()}
    response = ack(service, service["alert_a"], "a", body)
    assert response.status_code == 200, response.text
    assert response.json()["actions"] == ["home_visit", "cct_referral"]  # once each, in the order given
    stored = stored_actions(service["store"])
    assert stored["code"].tolist() == ["home_visit", "cct_referral"]
    assert set(stored["acted_on"]) == {JULY_27} and set(stored["note"]) == {"Met the mother at home"}
    assert set(stored["recorded_by"]) == {service["key_ids"]["a"]} and set(stored["source"]) == {"api"}
    assert set(stored["student_key"]) == {KEY_A} and set(stored["school_id"]) == {SCHOOL_A}
    assert set(stored["alert_id"]) == {service["alert_a"]}
    assert set(stored["acknowledgement_id"]) == {response.json()["acknowledgement_id"]}
    assert service["alert_a"] not in open_alerts(service["store"], SCHOOL_A)["id"].tolist()


def test_codes_alone_acknowledge_without_words(service) -> None:
    response = ack(service, service["alert_a"], "a", {"actions": ["counselling"]})
    assert response.status_code == 200, response.text
    with service["store"].session() as session:
        record = session.get(Acknowledgement, response.json()["acknowledgement_id"])
        assert (record.action_taken, record.acted_on) == (None, dt.date.today())
    assert stored_actions(service["store"])["code"].tolist() == ["counselling"]


def test_an_unknown_code_is_a_422_naming_the_allowed_codes_and_records_nothing(service) -> None:
    response = ack(service, service["alert_a"], "a", {"actions": ["home_visit", "send_to_the_army"]})
    assert response.status_code == 422
    (item,) = response.json()["detail"]
    assert (item["type"], item["loc"]) == ("unknown_action", ["body", "actions", 1])
    assert "'send_to_the_army' is not an action code" in item["msg"]
    assert all(code in item["msg"] for code in CODES)
    assert stored_actions(service["store"]).empty
    assert service["alert_a"] in open_alerts(service["store"], SCHOOL_A)["id"].tolist()


def test_the_old_body_of_words_alone_still_acknowledges(service) -> None:
    response = ack(service, service["alert_a"], "a", {"action_taken": "เยี่ยมบ้าน home visit", "acted_on": "2026-07-27"})
    assert response.status_code == 200 and response.json()["actions"] == []
    with service["store"].session() as session:
        record = session.get(Acknowledgement, response.json()["acknowledgement_id"])
        assert (record.action_taken, record.acted_on) == ("เยี่ยมบ้าน home visit", JULY_27)
    assert stored_actions(service["store"]).empty


def test_a_body_that_says_nothing_is_a_422(service) -> None:
    for body in ({}, {"actions": []}, {"acted_on": "2026-07-27"}):
        assert ack(service, service["alert_a"], "a", body).status_code == 422, body


def test_a_teacher_cannot_record_actions_on_another_schools_child(service) -> None:
    """Refused as an alert that does not exist (404, as for any other school's alert id): nothing is stored."""
    body = {"actions": ["home_visit"], "acted_on": "2026-07-27"}
    assert ack(service, service["alert_a"], "b", body).status_code == 404
    client = service["client"]
    client.cookies.set("risk_key", service["tokens"]["b"])
    page = client.post(f"/teacher/alerts/{service['alert_a']}/ack", data={"action": "home_visit",
                                                                        "acted_on": "2026-07-27", "lang": "en"})
    client.cookies.clear()
    assert page.status_code == 404
    assert stored_actions(service["store"]).empty
    assert service["alert_a"] in open_alerts(service["store"], SCHOOL_A)["id"].tolist()


def test_the_page_offers_the_configured_codes_with_thai_and_english_labels(service) -> None:
    client = service["client"]
    client.cookies.set("risk_key", service["tokens"]["a"])
    thai, english = client.get("/teacher").text, client.get("/teacher?lang=en").text
    client.cookies.clear()
    boxes = f'<fieldset class="codes" id="codes-{service["alert_a"]}">'
    assert boxes in thai and f'codes-{service["alert_b"]}' not in thai  # A's alert only, none of B's
    for code, label in CODES.items():
        assert f'name="action" value="{code}"> {label.th}</label>' in thai
        assert f'name="action" value="{code}"> {label.en}</label>' in english
    assert "เยี่ยมบ้าน" in thai and "Home visit" in english


def test_the_page_records_the_ticked_boxes(service) -> None:
    client = service["client"]
    client.cookies.set("risk_key", service["tokens"]["a"])
    form = "action=home_visit&action=payment_check&action_taken=&acted_on=2026-07-27&lang=th"
    response = client.post(f"/teacher/alerts/{service['alert_a']}/ack", content=form, follow_redirects=False,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    client.cookies.clear()
    assert response.status_code == 303, response.text
    stored = stored_actions(service["store"])
    assert stored["code"].tolist() == ["home_visit", "payment_check"] and set(stored["source"]) == {"page"}
    assert set(stored["recorded_by"]) == {service["key_ids"]["a"]} and set(stored["acted_on"]) == {JULY_27}


def test_the_page_refuses_a_code_it_did_not_offer_in_the_teachers_language(service) -> None:
    client = service["client"]
    client.cookies.set("risk_key", service["tokens"]["a"])
    response = client.post(f"/teacher/alerts/{service['alert_a']}/ack",
                           data={"action": "fly_away", "acted_on": "2026-07-27", "lang": "en"})
    nothing = client.post(f"/teacher/alerts/{service['alert_a']}/ack", data={"acted_on": "2026-07-27", "lang": "en"})
    client.cookies.clear()
    assert response.status_code == 422 and "not one of the choices" in response.text
    assert nothing.status_code == 422 and "Tick or say what was done, and when." in nothing.text
    assert stored_actions(service["store"]).empty


# ---------------------------------------------------------------- risk actions import
def run_import(file: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISK_")}
    env["RISK_ID_KEY"] = WORLD_KEY.decode()
    return subprocess.run([sys.executable, "-m", "risk", "actions", "import", str(file), "--store", url, *extra],
                          capture_output=True, text=True, env=env, cwd=ROOT)


ROWS = [  # student_id, student_key, date, code, note, school_id
    [RAW_A, "", "27/07/2569", "home_visit", "ครูประจำชั้นไปเยี่ยมบ้าน", ""],  # Thai day-first, Buddhist Era
    ["", str(KEY_C), "2026-07-28", "learning_support", "", SCHOOL_A],  # pseudonym, no alert: stored unlinked
    [RAW_B, "", "2026-07-29", "cct_referral", "", ""],
    [RAW_A[:-1] + str((int(RAW_A[-1]) + 1) % 10), "", "2026-07-27", "home_visit", "", ""],  # bad check digit
    [RAW_A, "", "2026-07-27", "teleport", "", ""],  # not a configured code
    [RAW_A, "", "31/02/2569", "home_visit", "", ""],  # no such day
    ["", "987654321", "2026-07-27", "counselling", "", ""],  # a pseudonym the store never saw
    [RAW_A, "", "27/07/2569", "home_visit", "again", ""],  # the first row again
]
HEADER = ["student_id", "student_key", "date", "code", "note", "school_id"]


def test_an_import_stores_pseudonyms_only_links_alerts_and_counts_what_it_quarantined(service, tmp_path) -> None:
    file = tmp_path / "actions.csv"
    pd.DataFrame(ROWS, columns=HEADER).to_csv(file, index=False)
    done = run_import(file, service["url"])
    assert done.returncode == 1, done.stderr  # some rows quarantined, the rest stored
    assert "8 rows = 3 stored (2 linked to an alert) + 5 quarantined" in done.stdout
    for rule, n in {"invalid_id": 1, "not_allowed": 1, "bad_type": 1, "unknown_student": 1, "duplicate": 1}.items():
        assert f"{rule}: {n}" in done.stdout

    stored = stored_actions(service["store"]).set_index("student_key")
    assert sorted(stored.index) == sorted([KEY_A, KEY_B, KEY_C]) and set(stored["source"]) == {"import"}
    assert stored.loc[KEY_A, "alert_id"] == service["alert_a"] and stored.loc[KEY_B, "alert_id"] == service["alert_b"]
    assert pd.isna(stored.loc[KEY_C, "alert_id"]) and stored.loc[KEY_C, "school_id"] == SCHOOL_A
    assert stored.loc[KEY_A, "acted_on"] == JULY_27 and stored.loc[KEY_A, "note"] == "ครูประจำชั้นไปเยี่ยมบ้าน"
    assert stored.loc[KEY_B, "school_id"] == SCHOOL_B  # from its alert

    quarantined = pd.read_csv(tmp_path / "actions.quarantine.csv", dtype=str)
    assert quarantined["row"].astype(int).tolist() == [4, 5, 6, 7, 8]
    assert quarantined["rule"].tolist() == ["invalid_id", "not_allowed", "bad_type", "unknown_student", "duplicate"]
    assert quarantined.loc[2, "value"] == "31/02/2569"  # as written
    # No raw ID anywhere the import wrote: not in the store's files, its tables, the quarantine or the output.
    written = b"".join(p.read_bytes() for p in service["path"].parent.glob("risk.db*"))  # the WAL too
    assert masked_id(RAW_A).encode() in written  # the scan reads the stored text: the alert's hint is there
    for raw in (RAW_A, RAW_B, ROWS[3][0]):
        assert raw.encode() not in written
        assert raw not in (tmp_path / "actions.quarantine.csv").read_text(encoding="utf-8")
        assert raw not in done.stdout + done.stderr
        assert not [v for v in table_values(service["store"]) if raw in v]


def table_values(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return [str(v) for table in inspect(store.engine).get_table_names()
                for row in conn.execute(text(f'SELECT * FROM "{table}"')) for v in row]


def test_importing_the_same_file_again_stores_nothing_twice(service, tmp_path) -> None:
    file = tmp_path / "actions.xlsx"
    book = openpyxl.Workbook()
    book.active.append(HEADER)
    for row in ROWS[:3]:
        book.active.append([int(row[0]) if row[0] else None, *row[1:]])  # IDs as Excel numbers, as exports have them
    book.save(file)
    first, again = run_import(file, service["url"]), run_import(file, service["url"])
    assert first.returncode == 0, first.stderr + first.stdout
    assert "3 rows = 3 stored (2 linked to an alert) + 0 quarantined" in first.stdout
    assert again.returncode == 1 and "3 rows = 0 stored (0 linked to an alert) + 3 quarantined" in again.stdout
    assert len(stored_actions(service["store"])) == 3


def test_a_file_without_a_code_column_is_one_sentence_and_exit_2(service, tmp_path) -> None:
    file = tmp_path / "actions.csv"
    pd.DataFrame([[RAW_A, "2026-07-27"]], columns=["student_id", "date"]).to_csv(file, index=False)
    done = run_import(file, service["url"])
    assert done.returncode == 2 and "missing required column(s) code" in done.stderr
    assert "Traceback" not in done.stderr and RAW_A not in done.stderr


def test_the_reader_counts_add_up_and_hold_no_raw_id(tmp_path) -> None:
    file = tmp_path / "actions.csv"
    pd.DataFrame(ROWS, columns=HEADER).to_csv(file, index=False)
    read = read_action_file(file, WORLD_KEY, CODES, today=dt.date(2026, 12, 7))
    assert read.rows == len(ROWS) == len(read.clean) + len(read.quarantined)
    assert read.clean["student_key"].tolist() == [KEY_A, KEY_C, KEY_B, 987654321, KEY_A]
    assert read.clean["id_hint"].tolist()[:3] == [masked_id(RAW_A), "", masked_id(RAW_B)]
    assert "student_id" not in read.clean
    future = read_action_file(file, WORLD_KEY, CODES, today=dt.date(2026, 7, 27))  # the 28th and 29th lie ahead
    assert future.quarantined.set_index("row").loc[[2, 3], "rule"].tolist() == ["bad_date", "bad_date"]


# ---------------------------------------------------------------- the store, on SQLite and PostgreSQL
@pytest.fixture
def store(backend: tuple[str, str | None]) -> Iterator[Store]:
    opened = open_store(backend[0])
    yield opened
    opened.close()


def test_an_import_links_the_latest_alert_on_or_before_the_day_of_the_rows_school(store) -> None:
    scored_with_alerts(store, JULY_10, [(KEY_A, SCHOOL_A)])
    scored_with_alerts(store, JULY_24, [(KEY_A, SCHOOL_A)])
    by_date = {row.as_of: int(row.id) for row in open_alerts(store, SCHOOL_A).itertuples()}
    frame = pd.DataFrame({
        "row": [1, 2, 3, 4], "student_key": [KEY_A] * 4, "school_id": [None, None, None, SCHOOL_B],
        "code": ["home_visit", "counselling", "payment_check", "home_visit"],
        "acted_on": [dt.date(2026, 7, 15), JULY_27, dt.date(2026, 7, 1), JULY_27], "note": [None] * 4,
    })  # fmt: skip
    outcome = import_actions(store, frame)
    assert (outcome.stored, outcome.linked, len(outcome.refused)) == (4, 2, 0)
    stored = stored_actions(store).set_index("code")
    assert stored.loc["home_visit"].set_index("school_id").loc[SCHOOL_A, "alert_id"] == by_date[JULY_10]
    assert stored.loc["counselling", "alert_id"] == by_date[JULY_24]
    # Before any alert: no link; the school is where the child was scored (first, after the day).
    assert pd.isna(stored.loc["payment_check", "alert_id"]) and stored.loc["payment_check", "school_id"] == SCHOOL_A
    # A row naming another school is not linked to this school's alert.
    assert pd.isna(stored.loc["home_visit"].set_index("school_id").loc[SCHOOL_B, "alert_id"])


def test_an_old_free_text_acknowledgement_survives_migration_0005(backend: tuple[str, str | None]) -> None:
    engine = create_engine(backend[0])
    try:
        upgrade(engine, "0004")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO scoring_runs (run_id, as_of, term, model_name, model_version, started_at, "
                              "status) VALUES ('r1', '2026-07-24', '2569-1', 'dropout-risk', '3', "
                              "'2026-07-24 08:00:00', 'finished')"))
            conn.execute(text("INSERT INTO alerts (id, run_id, student_key, school_id, as_of, term, kind, created_at, "
                              "status) VALUES (1, 'r1', 7, '1040100001', '2026-07-24', '2569-1', 'newly_at_risk', "
                              "'2026-07-24 08:00:00', 'acknowledged')"))
            conn.execute(text("INSERT INTO acknowledgements (id, alert_id, action_taken, acted_on, recorded_at, "
                              "recorded_by) VALUES (1, 1, 'โทรคุยกับผู้ปกครอง', '2026-07-25', '2026-07-25 09:00:00', "
                              "'key-1')"))
        upgrade(engine)
        store = open_store(backend[0])
        with store.session() as session:
            old = session.get(Acknowledgement, 1)
            assert (old.action_taken, old.acted_on, old.recorded_by) == ("โทรคุยกับผู้ปกครอง", dt.date(2026, 7, 25),
                                                                         "key-1")
        assert stored_actions(store).empty  # nothing made up from the words
        store.close()
        downgrade(engine, "0004")
        with engine.connect() as conn:
            assert conn.execute(select(text("action_taken")).select_from(text("acknowledgements"))).scalar_one() \
                == "โทรคุยกับผู้ปกครอง"
    finally:
        engine.dispose()


def test_downgrading_gives_a_codes_only_acknowledgement_its_codes_as_words(store, backend) -> None:
    scored_with_alerts(store, JULY_24, [(KEY_A, SCHOOL_A)])
    acknowledge(store, alert_of(store, SCHOOL_A, KEY_A), None, JULY_27, codes=["home_visit", "counselling"])
    engine = create_engine(backend[0])
    try:
        downgrade(engine, "0004")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT action_taken FROM acknowledgements")).scalar_one() == \
                "home_visit, counselling"
        upgrade(engine)
    finally:
        engine.dispose()
