"""The service as its callers see it: a real uvicorn process on loopback, the session's small world and model.

The service runs in its own process (``risk serve``) on a store scored by the batch
scorer, with its own MLflow store holding versions 1 and 2 of the session's model
(the same bundle logged twice), so promoting one does not touch the shared champion.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import psutil
import pytest
from built_once import registry_copy, scored_copy
from conftest import MODEL_NAME, WORLD_KEY, stop_process_group
from mlflow.tracking import MlflowClient

from risk.data.contract import TABLES
from risk.data.ids import pseudonym
from risk.store import audit_entries, create_key, open_store, revoke_key

AS_OF = dt.date(2026, 7, 24)  # ten weeks into the world's last term (2569-1)
STUDENT_TABLES = [name for name, table in TABLES.items() if table.has_student]


# ---------------------------------------------------------------- helpers shared by the service tests
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(folder: Path, *, data: Path, store_url: str, tracking_dir: Path, cache: Path,
                  tracking_uri: str | None = None, poll_seconds: float = 0.5, **settings: object,
                  ) -> tuple[subprocess.Popen, str, Path]:
    """``risk serve`` in its own process group on a free loopback port: (process, base URL, log file).

    ``settings`` replace the defaults below (``workers``, ``rate_limit``, ...).
    """
    port = free_port()
    config = folder / f"serve-{port}.yaml"
    config.write_text(json.dumps({
        "host": "127.0.0.1", "port": port, "data": str(data), "store_url": store_url,
        "tracking_dir": str(tracking_dir), "model_cache": str(cache), "poll_seconds": poll_seconds,
        "key_cache_seconds": 0, "batch_max_students": 20, "mlflow_timeout_seconds": 2,
        "rate_limit": {"per_second": 1000, "burst": 2000}, **settings}), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RISK_"))}
    env["RISK_ID_KEY"] = WORLD_KEY.decode()
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    log = folder / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "risk", "--log-level", "INFO", "serve", "--config",
                                    str(config)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"risk serve exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url, log
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_process_group(process)
    pytest.fail(f"risk serve did not answer in time:\n{log.read_text(errors='replace')[-3000:]}")


def source_tables(source: Path) -> dict[str, pd.DataFrame]:
    """Every student table of a synthetic export, with the file and row of each record."""
    out = {}
    for name in STUDENT_TABLES:
        parts = []
        for path in sorted((source / name).iterdir()):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False) if path.suffix == ".csv" \
                else pd.read_parquet(path)
            parts.append(frame.assign(_file=f"{name}/{path.name}", _row=range(len(frame))))
        out[name] = pd.concat(parts, ignore_index=True)
    return out


def payload_of(tables: dict[str, pd.DataFrame], student_id: str, as_of: dt.date = AS_OF) -> dict:
    """One student's records as the JSON an upstream system sends (dates as YYYY-MM-DD)."""
    out: dict = {"as_of": as_of.isoformat()}
    for name, frame in tables.items():
        rows = frame[frame["student_id"] == student_id].drop(columns=["_file", "_row"])
        records = json.loads(rows.to_json(orient="records", date_format="iso", date_unit="s"))
        for row in records:
            for column, value in row.items():
                if isinstance(value, str) and value.endswith("T00:00:00"):
                    row[column] = value[:10]
        out[name] = records
    return out


def clean_students(world: Path, tables: dict[str, pd.DataFrame]) -> set[str]:
    """Students none of whose source records had an error injected (their payload is all valid)."""
    injected = pd.read_parquet(world / "source" / "_injected.parquet")
    dirty: set[str] = set()
    for name, frame in tables.items():
        marked = frame.merge(injected[injected["table"] == name], left_on=["_file", "_row"], right_on=["file", "row"])
        dirty |= set(marked["student_id"])
    return set(tables["enrollments"]["student_id"].dropna()) - dirty


# ---------------------------------------------------------------- the world, scored, and a service on it
@pytest.fixture(scope="module")
def registry(champion_store, tmp_path_factory) -> Path:
    """An MLflow store of our own: the session's model logged as versions 1 and 2; champion → 1."""
    return registry_copy(champion_store, tmp_path_factory, "serve-registry")


@pytest.fixture(scope="module")
def scored(world, champion, tmp_path_factory):
    """A store holding the batch scores and alerts of the world at AS_OF, and the scores as a frame."""
    folder = scored_copy(world, champion, AS_OF, tmp_path_factory, "serve-store")
    store = open_store(f"sqlite:///{folder / 'risk.db'}")
    yield f"sqlite:///{folder / 'risk.db'}", store, pd.read_parquet(folder / "scores.parquet")
    store.close()


@pytest.fixture(scope="module")
def service(world, registry, scored, tmp_path_factory) -> Iterator[dict]:
    folder = tmp_path_factory.mktemp("serve-run")
    url, store, _ = scored
    process, base, log = start_service(folder, data=world / "validated", store_url=url, tracking_dir=registry,
                                       cache=folder / "cache")
    try:
        yield {"url": base, "log": log, "process": process, "cache": folder / "cache", "folder": folder}
    finally:
        stop_process_group(process)


@pytest.fixture(scope="module")
def people(world, scored) -> dict:
    """Tokens of each role, two teachers of two schools, and students of those schools (raw IDs)."""
    _, store, frame = scored
    tables = source_tables(world / "source")
    enrolled = tables["enrollments"].dropna(subset=["student_id"])
    ids = {pseudonym(s, WORLD_KEY): s for s in enrolled["student_id"].unique()}
    flagged = frame[frame["risk_class"] != "normal"]
    school_a = flagged["school_id"].value_counts().index[0]
    school_b = next(s for s in frame["school_id"].unique() if s != school_a)
    clean = clean_students(world, tables)
    in_a = [ids[k] for k in flagged.loc[flagged["school_id"] == school_a, "student_key"] if ids.get(k) in clean]
    in_b = [ids[k] for k in frame.loc[frame["school_id"] == school_b, "student_key"] if k in ids]
    tokens = {role: create_key(store, role, label=f"test {role}").token for role in ("upstream", "analyst", "admin")}
    tokens["teacher_a"] = create_key(store, "teacher", school_id=school_a, label="teacher A").token
    tokens["teacher_b"] = create_key(store, "teacher", school_id=school_b, label="teacher B").token
    return {"tokens": tokens, "school_a": school_a, "school_b": school_b, "student_a": in_a[0], "student_b": in_b[0],
            "tables": tables, "frame": frame, "store": store}


def call(service: dict, method: str, path: str, token: str | None = None, **kwargs) -> httpx.Response:
    headers = {**({"X-API-Key": token} if token else {}), **kwargs.pop("headers", {})}
    return httpx.request(method, service["url"] + path, headers=headers, timeout=60, **kwargs)


# ---------------------------------------------------------------- scoring
def test_online_score_equals_the_batch_score_and_reasons(service, people):
    student = people["student_a"]
    response = call(service, "POST", "/v1/score", people["tokens"]["upstream"],
                    json=payload_of(people["tables"], student))
    assert response.status_code == 200, response.text
    body = response.json()
    frame = people["frame"]
    batch = frame[frame["student_key"] == pseudonym(student, WORLD_KEY)].iloc[0]
    assert body["probability"] == pytest.approx(batch["probability"], rel=1e-12)
    assert body["risk_class"] == batch["risk_class"] != "normal"
    assert [r["code"] for r in body["reasons"]] == json.loads(batch["reason_codes"])
    assert [r["th"] for r in body["reasons"]] == json.loads(batch["reasons_th"])
    assert body["student"]["id_hint"] == batch["id_hint"] and body["left_out"] == []
    assert body["model_version"] == "1" and student not in response.text


# Issue 28: these never become a child's reasons (context is about the school, protected must never be shown).
PROTECTED = {"sex", "non_thai", "has_disability"}
CONTEXT = {"grade_level", "transition_year", "year_end_term", "age_years", "school_size", "school_rural", "region",
           "school_past_dropout_rate", "district_past_dropout_rate"}


def test_a_score_shows_its_rule_mark_and_context_apart_from_the_childs_reasons(service, people, world):
    """One child a rule flagged and one the model flagged: online, stored and in the school's alerts."""
    from risk.store.context import school_context

    frame, tables = people["frame"], people["tables"]
    clean = {pseudonym(s, WORLD_KEY): s for s in clean_students(world, tables)}
    flagged = frame[(frame["risk_class"] != "normal") & frame["student_key"].isin(list(clean))]
    by_rule = flagged[flagged["raised_by"].notna()].iloc[0]
    by_model = flagged[flagged["raised_by"].isna()].iloc[0]
    run_id = call(service, "GET", f"/v1/students/{clean[by_rule['student_key']]}/risk",
                  people["tokens"]["admin"]).json()["latest"]["run_id"]
    for batch in (by_rule, by_model):
        student = clean[batch["student_key"]]
        online = call(service, "POST", "/v1/score", people["tokens"]["upstream"], json=payload_of(tables, student))
        stored = call(service, "GET", f"/v1/students/{student}/risk", people["tokens"]["admin"])
        assert online.status_code == stored.status_code == 200, online.text + stored.text
        online, stored = online.json(), stored.json()["latest"]
        expected = None if pd.isna(batch["raised_by"]) else batch["raised_by"]
        assert online["raised_by"] == stored["raised_by"] == expected
        if expected is not None:  # the rule that raised the class is the child's first reason
            assert online["reasons"][0]["code"] == f"rule:{expected}"
        for body in (online, stored):
            assert not {r["code"] for r in body["reasons"]} & (PROTECTED | CONTEXT)
            assert {r["code"] for r in body["context"]} <= CONTEXT
        school = school_context(people["store"], run_id, batch["school_id"])
        assert [r["code"] for r in stored["context"]] == [line.code for line in school]
    school = by_rule["school_id"]
    alerts = call(service, "GET", f"/v1/schools/{school}/alerts", people["tokens"]["admin"]).json()["alerts"]
    marks = {(a["student"]["id_hint"], a["raised_by"]) for a in alerts}
    in_school = frame[(frame["school_id"] == school) & (frame["risk_class"] != "normal")]
    assert marks <= {(h, None if pd.isna(r) else r) for h, r in zip(in_school["id_hint"], in_school["raised_by"],
                                                                     strict=True)}
    assert (by_rule["id_hint"], by_rule["raised_by"]) in marks


def test_a_bad_record_is_left_out_with_its_rule_and_the_rest_is_scored(service, people):
    payload = payload_of(people["tables"], people["student_a"])
    payload["attendance_daily"][2]["status"] = "Present"
    payload["health"].append({**payload["health"][0], "student_id": "1234567890123"}) if payload["health"] else None
    response = call(service, "POST", "/v1/score", people["tokens"]["upstream"], json=payload)
    assert response.status_code == 200, response.text
    left = [(r["table"], r["record"], r["rule"]) for r in response.json()["left_out"]]
    assert ("attendance_daily", 2, "not_allowed") in left
    assert "1234567890123" not in response.text


def _fallbacks_counted(service: dict) -> float:
    """The service's count of payloads its fast way left to the full checks, all reasons."""
    text = call(service, "GET", "/metrics").text
    return sum(float(row.rsplit(" ", 1)[1]) for row in text.splitlines()
               if row.startswith("risk_online_fallbacks_total{"))


def test_a_payload_left_to_the_full_checks_is_counted_once(service, people):
    payload = payload_of(people["tables"], people["student_a"])
    payload["enrollments"][0]["sex"] = " " + str(payload["enrollments"][0]["sex"])  # padded text: the full checks
    before = _fallbacks_counted(service)
    response = call(service, "POST", "/v1/score", people["tokens"]["upstream"], json=payload)
    assert response.status_code == 200, response.text
    assert _fallbacks_counted(service) == before + 1


def test_nothing_scorable_is_a_422_naming_the_field_without_the_id(service, people):
    payload = payload_of(people["tables"], people["student_a"])
    for row in payload["enrollments"]:
        row["grade_level"] = "P9"
    response = call(service, "POST", "/v1/score", people["tokens"]["upstream"], json=payload)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "enrollments"] and "grade_level = P9" in error["msg"]
    assert people["student_a"] not in response.text


def test_a_malformed_body_is_a_422_that_does_not_echo_the_id(service, people):
    student = people["student_a"]
    body = {"as_of": f"not-a-date-{student}", "enrollments": [{"student_id": {"nested": student}}],
            student: [1]}
    response = call(service, "POST", "/v1/score", people["tokens"]["upstream"], json=body)
    assert response.status_code == 422
    assert student not in response.text and "detail" in response.json()
    assert {tuple(e["loc"][:2]) for e in response.json()["detail"]} >= {("body", "as_of")}


def test_a_body_that_is_not_json_is_a_422_json_invalid_that_does_not_echo_the_id(service, people):
    """Bodies are parsed by orjson, stricter than ``json``: a NaN literal and a cut-off body alike are 422 json_invalid."""
    student = people["student_a"]
    whole = json.dumps(payload_of(people["tables"], student))
    for body in (whole.replace('"present"', "NaN", 1), whole[: len(whole) // 2], "\ud800".join(["{", "}"])):
        response = call(service, "POST", "/v1/score", people["tokens"]["upstream"], content=body.encode(
            "utf-8", "surrogatepass"), headers={"Content-Type": "application/json"})
        assert response.status_code == 422, response.text
        assert [e["type"] for e in response.json()["detail"]] == ["json_invalid"]
        assert student not in response.text


def test_batch_counts_add_up_and_each_student_has_its_own_errors(service, people):
    good = payload_of(people["tables"], people["student_a"])
    bad = payload_of(people["tables"], people["student_b"])
    bad["enrollments"] = [{**bad["enrollments"][0], "school_id": "9999999999"}]
    early = {**good, "as_of": "1990-01-01"}
    response = call(service, "POST", "/v1/score/batch", people["tokens"]["upstream"],
                    json={"students": [good, bad, good, early]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["received"], body["scored"], body["rejected"]) == (4, 2, 2)
    assert [r["status"] for r in body["results"]] == ["scored", "rejected", "scored", "rejected"]
    assert body["results"][1]["errors"][0]["loc"][:3] == ["body", "students", 1]
    assert body["results"][3]["errors"][0]["loc"] == ["body", "students", 3, "as_of"]


def test_a_batch_over_the_configured_size_is_refused(service, people):
    payload = payload_of(people["tables"], people["student_a"])
    response = call(service, "POST", "/v1/score/batch", people["tokens"]["upstream"], json={"students": [payload] * 21})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "students"]


# ---------------------------------------------------------------- access
def test_no_key_is_401_and_a_wrong_role_is_403(service, people):
    payload = payload_of(people["tables"], people["student_a"])
    assert call(service, "POST", "/v1/score", json=payload).status_code == 401
    assert call(service, "POST", "/v1/score", "rk_000000000000_wrong", json=payload).status_code == 401
    assert call(service, "POST", "/v1/score", people["tokens"]["teacher_a"], json=payload).status_code == 403
    assert call(service, "GET", "/v1/summary", people["tokens"]["upstream"]).status_code == 403


def test_a_teacher_reads_only_their_own_school(service, people):
    tokens, a, b = people["tokens"], people["school_a"], people["school_b"]
    assert call(service, "GET", f"/v1/schools/{a}/alerts", tokens["teacher_a"]).status_code == 200
    assert call(service, "GET", f"/v1/schools/{b}/alerts", tokens["teacher_a"]).status_code == 403
    assert call(service, "GET", f"/v1/students/{people['student_a']}/risk", tokens["teacher_a"]).status_code == 200
    denied = call(service, "GET", f"/v1/students/{people['student_b']}/risk", tokens["teacher_a"])
    assert denied.status_code == 404 and people["student_b"] not in denied.text
    # The same answer as for a child with no score at all: asking tells a teacher nothing.
    nobody = call(service, "GET", "/v1/students/1103700123458/risk", tokens["teacher_a"])
    assert (nobody.status_code, nobody.json()) == (denied.status_code, denied.json())


def test_a_revoked_key_is_401(service, people):
    new = create_key(people["store"], "analyst", label="short-lived")
    assert call(service, "GET", "/v1/summary", new.token).status_code == 200
    revoke_key(people["store"], new.record.key_id)
    assert call(service, "GET", "/v1/summary", new.token).status_code == 401


def test_every_student_read_is_audited_by_pseudonym_and_no_raw_id_is_kept(service, people):
    student = people["student_a"]
    key = pseudonym(student, WORLD_KEY)
    # Reads are counted by their action: a score of the same student by an earlier test is written
    # by the audit thread within 0.2 s and may land between the two counts.
    def reads() -> pd.DataFrame:
        entries = audit_entries(people["store"], student_key=key)
        return entries[entries["action"] == "student_risk"]

    before = len(reads())
    response = call(service, "GET", f"/v1/students/{student}/risk", people["tokens"]["analyst"])
    assert response.status_code == 200 and student not in response.text
    assert response.json()["latest"]["student"]["id_hint"].endswith(student[-4:])
    entries = reads()
    assert len(entries) == before + 1
    last = entries.iloc[-1]
    assert last["action"] == "student_risk" and last["key_id"] in people["tokens"]["analyst"]
    alerts = call(service, "GET", f"/v1/schools/{people['school_a']}/alerts", people["tokens"]["analyst"]).json()
    read = audit_entries(people["store"], key_id=last["key_id"])
    assert {a["id"] for a in alerts["alerts"]} <= {int(d.split()[1]) for d in read["detail"] if d.startswith("alert")}
    assert student not in service["log"].read_text(errors="replace")
    with people["store"].engine.connect() as conn:
        dump = "\n".join(conn.connection.driver_connection.iterdump())
    assert student not in dump


def test_acknowledging_an_alert_records_the_action_and_closes_it(service, people):
    tokens, a = people["tokens"], people["school_a"]
    alerts = call(service, "GET", f"/v1/schools/{a}/alerts", tokens["teacher_a"]).json()["alerts"]
    target = alerts[0]["id"]
    body = {"action_taken": "เยี่ยมบ้าน home visit", "acted_on": "2026-07-27"}
    assert call(service, "POST", f"/v1/alerts/{target}/ack", tokens["teacher_b"], json=body).status_code == 404
    response = call(service, "POST", f"/v1/alerts/{target}/ack", tokens["teacher_a"], json=body)
    assert response.status_code == 200 and response.json()["status"] == "acknowledged"
    assert call(service, "POST", f"/v1/alerts/{target}/ack", tokens["teacher_a"], json=body).status_code == 409
    again = call(service, "GET", f"/v1/schools/{a}/alerts", tokens["teacher_a"]).json()["alerts"]
    assert target not in {x["id"] for x in again} and len(again) == len(alerts) - 1


def test_the_teacher_page_refuses_a_date_outside_the_alert_and_today_on_the_page(service, people):
    tokens, a = people["tokens"], people["school_a"]
    alert = call(service, "GET", f"/v1/schools/{a}/alerts", tokens["teacher_a"]).json()["alerts"][0]
    page = call(service, "GET", "/teacher?lang=en", cookies={"risk_key": tokens["teacher_a"]})
    assert f'min="{alert["as_of"]}"' in page.text
    for acted_on in ("1900-01-01", (dt.date.today() + dt.timedelta(days=1)).isoformat()):
        response = call(service, "POST", f"/teacher/alerts/{alert['id']}/ack", cookies={"risk_key": tokens["teacher_a"]},
                        data={"action_taken": "home visit", "acted_on": acted_on, "lang": "en"})
        assert response.status_code == 422 and response.headers["content-type"].startswith("text/html")
        assert "The date must lie between the alert&#39;s date and today." in response.text
    still = call(service, "GET", f"/v1/schools/{a}/alerts", tokens["teacher_a"]).json()["alerts"]
    assert alert["id"] in {x["id"] for x in still}


def test_summary_counts_every_scored_student(service, people):
    response = call(service, "GET", "/v1/summary?level=nation", people["tokens"]["analyst"])
    assert response.status_code == 200
    (nation,) = response.json()["areas"]
    assert nation["students"] == len(people["frame"])
    assert call(service, "GET", "/v1/summary?level=galaxy", people["tokens"]["analyst"]).status_code == 422


def test_summary_counts_of_rule_raised_students_match_the_scores(service, people):
    """Each school's at_risk_by_rule and problem_by_rule are its scores of that class with raised_by set."""
    frame = people["frame"]
    by_rule = frame[frame["raised_by"].notna()]
    assert len(by_rule), "the test world needs students a rule raised"
    expected = {school: (0, 0) for school in frame["school_id"].unique()}
    for (school, risk_class), n in by_rule.groupby(["school_id", "risk_class"]).size().items():
        at_risk, problem = expected[school]
        expected[school] = (at_risk + n, problem) if risk_class == "at_risk" else (at_risk, problem + n)
    areas = call(service, "GET", "/v1/summary?level=school", people["tokens"]["analyst"]).json()["areas"]
    assert {a["area_code"]: (a["at_risk_by_rule"], a["problem_by_rule"]) for a in areas} == expected
    (nation,) = call(service, "GET", "/v1/summary?level=nation", people["tokens"]["analyst"]).json()["areas"]
    assert nation["at_risk_by_rule"] + nation["problem_by_rule"] == len(by_rule) > 0
    assert nation["at_risk_by_rule"] <= nation["at_risk"] and nation["problem_by_rule"] <= nation["problem"]


# ---------------------------------------------------------------- health and model lifecycle
def test_ready_metrics_and_model_version(service, people):
    ready = call(service, "GET", "/readyz").json()
    assert ready["status"] == "ready" and ready["model_version"] in ("1", "2")
    call(service, "POST", "/v1/score", people["tokens"]["upstream"], json=payload_of(people["tables"],
                                                                                     people["student_a"]))
    text = call(service, "GET", "/metrics").text
    assert 'risk_request_seconds_bucket{le="0.025",method="POST",route="/v1/score",status="200"}' in text
    assert f'risk_model_info{{name="{MODEL_NAME}",version="{ready["model_version"]}"}} 1.0' in text


def _client_loop(service: dict, token: str, payload: dict, stop: threading.Event, seen: list) -> None:
    with httpx.Client(base_url=service["url"], headers={"X-API-Key": token}, timeout=60) as client:
        while not stop.is_set():
            try:
                response = client.post("/v1/score", json=payload)
                seen.append((response.status_code, response.json().get("model_version")))
            except httpx.HTTPError as exc:
                seen.append((type(exc).__name__, None))


def test_promoting_a_champion_swaps_it_in_without_a_failed_request(service, people, registry):
    payload = payload_of(people["tables"], people["student_a"])
    stop, per_client = threading.Event(), [[], []]  # each client's (status, model version), in its order
    clients = [threading.Thread(target=_client_loop, args=(service, people["tokens"]["upstream"], payload, stop, mine))
               for mine in per_client]
    for c in clients:
        c.start()
    try:
        deadline = time.monotonic() + 60
        while sum(map(len, per_client)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        _set_champion(registry, "2")
        while time.monotonic() < deadline and not all(mine and mine[-1][1] == "2" for mine in per_client):
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        stop.set()
        for c in clients:
            c.join(timeout=60)
    everything = [item for mine in per_client for item in mine]
    assert all(status == 200 for status, _ in everything), [s for s, _ in everything if s != 200][:5]
    assert "1" in [v for _, v in everything]
    # Each client's requests are one after another: once one has been answered by the new
    # champion, none of that client's later requests is answered by the old one (no flapping
    # back). Across clients, a request begun before the swap may still end on the old model.
    for mine in per_client:
        versions = [v for _, v in mine]
        assert versions[-1] == "2"
        assert versions.index("2") > max((i for i, v in enumerate(versions) if v == "1"), default=-1)


def test_a_corrupt_champion_is_refused_and_a_restart_without_mlflow_uses_the_cache(service, people, registry, world,
                                                                                   scored, tmp_path):
    _set_champion(registry, "2")  # the state the hot-swap test leaves (or sets it when run alone)
    deadline = time.monotonic() + 60
    while call(service, "GET", "/readyz").json().get("model_version") != "2" and time.monotonic() < deadline:
        time.sleep(0.2)
    corrupt = _register_corrupt_version(registry, service["cache"], tmp_path)
    _set_champion(registry, corrupt)
    deadline = time.monotonic() + 60
    while "risk_model_refused_total{reason=\"refused\"} 1.0" not in call(service, "GET", "/metrics").text:
        assert time.monotonic() < deadline, "the corrupt model was never refused"
        time.sleep(0.2)
    assert call(service, "GET", "/readyz").json()["model_version"] == "2"
    payload = payload_of(people["tables"], people["student_a"])
    response = call(service, "POST", "/v1/score", people["tokens"]["upstream"], json=payload)
    assert response.status_code == 200 and response.json()["model_version"] == "2"
    assert "new model refused" in service["log"].read_text(errors="replace")

    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    process, url, _ = start_service(tmp_path, data=world / "validated", store_url=scored[0], tracking_dir=registry,
                                    cache=service["cache"], tracking_uri=closed)
    try:
        ready = httpx.get(f"{url}/readyz", timeout=10).json()
        assert ready == {"status": "ready", "model_version": "2", "model_source": "cache"}
        response = httpx.post(f"{url}/v1/score", json=payload, headers={"X-API-Key": people["tokens"]["upstream"]},
                              timeout=60)
        assert response.status_code == 200 and response.json()["model_version"] == "2"
    finally:
        stop_process_group(process)


def _set_champion(home: Path, version: str) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{home.resolve() / 'mlflow.db'}",
                          registry_uri=f"sqlite:///{home.resolve() / 'mlflow.db'}")
    client.set_registered_model_alias(MODEL_NAME, "champion", version)


def _register_corrupt_version(home: Path, cache: Path, tmp_path: Path) -> str:
    """Version 2's bundle files (from the service's cache) with an unreadable booster, registered anew."""
    uri = f"sqlite:///{home.resolve() / 'mlflow.db'}"
    folder = tmp_path / "corrupt-model"
    shutil.copytree(cache / "2", folder)
    (folder / "booster.txt").write_text("this is not a LightGBM model\n", encoding="utf-8")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return str(client.create_model_version(MODEL_NAME, source=str(folder.resolve())).version)


# ---------------------------------------------------------------- the OpenAPI contract, fuzzed (keep last: it may ack)
def test_no_generated_request_makes_a_server_error(service, people):
    """schemathesis against the live /openapi.json, a few examples per operation: no 5xx, no echoed ID, data
    the schema calls valid accepted, and every answer shaped as the schema says."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.failures import FailureGroup
    from schemathesis.specs.openapi.checks import (
        positive_data_acceptance,
        response_schema_conformance,
    )

    schema = schemathesis.openapi.from_url(f"{service['url']}/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    headers = {"X-API-Key": people["tokens"]["admin"]}
    checks = [not_a_server_error, positive_data_acceptance, response_schema_conformance]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            response = case.call(headers=headers, timeout=60)
            try:
                case.validate_response(response, checks=checks, headers=headers)
            except FailureGroup as group:
                for failure in group.exceptions:
                    if not _refused_by_a_rule_beyond_the_schema(failure, response):
                        failures.append(f"{case.operation.label}: {type(failure).__name__} "
                                        f"{response.status_code} {response.text[:200]}")
            if people["student_a"] in response.text:
                failures.append(f"{case.operation.label}: echoed a student ID")

        check()
    assert failures == []


# Rules a JSON Schema cannot state, each documented on its route as a 422: an ID's check digit, a
# payload with nothing scorable left by the contract's checks, an as_of outside the school calendar, an
# acknowledgement dated outside its alert's date and today (both known only to the server), an action
# code the service is not configured with (configs/scoring.yaml, read when the service starts).
BEYOND_THE_SCHEMA = {"invalid_id", "unscorable", "out_of_range", "date_range", "unknown_action"}


def _refused_by_a_rule_beyond_the_schema(failure: Exception, response) -> bool:
    if type(failure).__name__ != "RejectedPositiveData" or response.status_code != 422:
        return False
    detail = response.json().get("detail")
    return isinstance(detail, list) and bool(detail) and {e.get("type") for e in detail} <= BEYOND_THE_SCHEMA


# ---------------------------------------------------------------- several worker processes
def test_two_workers_score_alike_and_share_one_rate_limit_and_one_metrics_page(service, people, registry, world,
                                                                              scored):
    _set_champion(registry, "1")  # a sound model, whatever the tests before left as champion
    folder = service["folder"] / "two-workers"
    folder.mkdir()
    burst = 6
    process, url, log = start_service(folder, data=world / "validated", store_url=scored[0], tracking_dir=registry,
                                      cache=folder / "cache", workers=2,
                                      rate_limit={"per_second": 0.001, "burst": burst})
    two = {"url": url}
    try:
        metrics = ""
        deadline = time.monotonic() + 120
        while metrics.count("risk_model_info{") < 2 and time.monotonic() < deadline:  # both workers up
            time.sleep(0.5)
            metrics = call(two, "GET", "/metrics").text
        pids = {line.split('pid="')[1].split('"')[0] for line in metrics.splitlines()
                if line.startswith("risk_model_info{") and line.endswith(" 1.0")}
        assert len(pids) == 2, metrics
        # The same answer as the one-process service; each call a new connection, so both workers answer.
        payload = payload_of(people["tables"], people["student_a"])
        one = call(service, "POST", "/v1/score", people["tokens"]["upstream"], json=payload).json()
        statuses = [call(two, "POST", "/v1/score", people["tokens"]["upstream"], json=payload) for _ in range(10)]
        assert [r.status_code for r in statuses] == [200] * burst + [429] * (10 - burst)
        got = statuses[0].json()
        assert (got["probability"], got["risk_class"], got["reasons"]) == (one["probability"], one["risk_class"],
                                                                          one["reasons"])
        metrics = call(two, "GET", "/metrics").text
        counted = {status: sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                               if line.startswith("risk_request_seconds_count{")
                               and 'route="/v1/score"' in line and f'status="{status}"' in line)
                   for status in ("200", "429")}
        assert counted == {"200": float(burst), "429": float(10 - burst)}
        workers = _children(process.pid)
        assert len(workers) >= 2
        # Eight keep-alive clients end up four to a worker, however their first connections fell.
        port = int(url.rsplit(":", 1)[1])
        clients = [httpx.Client(base_url=url, timeout=30) for _ in range(8)]
        try:
            for _ in range(25):
                assert all(c.get("/healthz").status_code == 200 for c in clients)
            time.sleep(0.5)  # connections shed by the last responses finish closing
            held = {pid: sum(1 for c in psutil.Process(pid).net_connections("tcp")
                             if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port) for pid in workers}
        finally:
            for client in clients:
                client.close()
        # (A client told to close by the last round has no connection now: 4/3 is even too.)
        assert max(held.values()) <= 4 and sum(held.values()) >= 6, held
        # The supervisor killed outright: its workers end too, none is left holding the port.
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    finally:
        stop_process_group(process)
    assert "Traceback" not in log.read_text(errors="replace")


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended while we looked
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out
