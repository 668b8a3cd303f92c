# ruff: noqa: F811  (tests take the imported fixtures by name)
"""What the service writes down: its log lines (start, requests, model swaps and refusals, stop) and its audit
of refused reads.

A real ``risk serve`` on loopback: the fixtures of ``test_serve``, imported, so this
module has a service, store and registry of its own and may swap its champion.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pandas as pd
from conftest import FEATURES_YAML, WORLD_KEY, stop_process_group
from test_serve import (  # noqa: F401
    _register_corrupt_version,
    _set_champion,
    call,
    payload_of,
    people,
    registry,
    scored,
    service,
)

from risk.data.ids import pseudonym
from risk.store import audit_entries, list_keys


def _lines(service: dict, event: str) -> list[dict[str, str]]:
    """The service log's key=value lines of one event, as key → value (quotes taken off)."""
    out = []
    for line in service["log"].read_text(errors="replace").splitlines():
        fields = {k: v.strip("'\"") for k, v in re.findall(r"(\w+)=('[^']*'|\"[^\"]*\"|\S+)", line)}
        if fields.get("event") == event:
            out.append(fields)
    return out


def _wait_for(produce, ready=bool, seconds: float = 30.0):
    """``produce()`` once ``ready`` of it holds (within ``seconds``: the audit and the poll are threads)."""
    deadline = time.monotonic() + seconds
    value = produce()
    while not ready(value) and time.monotonic() < deadline:
        time.sleep(0.2)
        value = produce()
    return value


def _key_id(people: dict, name: str) -> str:
    return people["tokens"][name].split("_")[1]


# ---------------------------------------------------------------- log lines
def test_the_start_line_names_the_model_workers_and_store_backend_and_no_url(service, people):
    (start,) = _lines(service, "service started")
    assert (start["model_version"], start["workers"], start["store_backend"]) == ("1", "1", "sqlite")
    assert start["max_body_kib"] == "256"
    text = service["log"].read_text(errors="replace")
    assert "sqlite:///" not in text and "risk.db" not in text  # the store is named by its backend only


def test_each_request_is_one_access_line_by_route_template_without_id_query_or_body(service, people):
    student, token = people["student_a"], people["tokens"]["analyst"]
    marker = "body-marker-that-must-not-be-logged"
    before = len(_lines(service, "request"))
    read = call(service, "GET", f"/v1/students/{student}/risk?why={student}", token)
    assert read.status_code == 200
    payload = payload_of(people["tables"], student)
    payload["enrollments"][0]["classroom"] = marker
    scored = call(service, "POST", "/v1/score", people["tokens"]["upstream"], json=payload)
    assert scored.status_code == 200
    lines = _wait_for(lambda: _lines(service, "request")[before:], lambda got: len(got) >= 2)
    assert [(x["method"], x["route"], x["status"], x["key_id"]) for x in lines[-2:]] == [
        ("GET", "/v1/students/{student_id}/risk", "200", _key_id(people, "analyst")),
        ("POST", "/v1/score", "200", _key_id(people, "upstream"))]
    assert all(float(x["latency_ms"]) >= 0 for x in lines)
    text = service["log"].read_text(errors="replace")
    assert student not in text and student[-9:] not in text
    assert "why=" not in text and marker not in text


def test_a_swap_and_a_refused_model_each_leave_a_line(service, people, registry, tmp_path):
    _set_champion(registry, "2")
    swapped = _wait_for(lambda: [x for x in _lines(service, "model in service") if x["version"] == "2"])
    assert swapped and swapped[-1]["previous"] == "1" and swapped[-1]["source"] == "registry"
    corrupt = _register_corrupt_version(registry, service["cache"], tmp_path)
    _set_champion(registry, corrupt)
    refused = _wait_for(lambda: [x for x in _lines(service, "new model refused; the running one stays")
                                 if x["version"] == corrupt])
    assert refused and refused[-1]["running"] == "2"
    _set_champion(registry, "1")
    assert _wait_for(lambda: [x for x in _lines(service, "model in service") if x["version"] == "1"
                              and x["previous"] == "2"])


# ---------------------------------------------------------------- refused reads, audited
def test_a_teacher_gets_one_answer_for_another_schools_child_and_for_nobody_and_both_are_audited(service, people):
    token, student_b = people["tokens"]["teacher_a"], people["student_b"]
    other = call(service, "GET", f"/v1/students/{student_b}/risk", token)
    nobody = call(service, "GET", "/v1/students/1103700123458/risk", token)
    assert (other.status_code, other.json()) == (nobody.status_code, nobody.json()) == (
        404, {"detail": "No stored score of this student that this key may read."})
    teacher = _key_id(people, "teacher_a")

    def refusals() -> pd.DataFrame:
        entries = audit_entries(people["store"], key_id=teacher)
        return entries[entries["detail"].fillna("").str.startswith("refused")]

    found = _wait_for(lambda: (r := refusals())[r["action"] == "student_risk"], lambda got: len(got) >= 2)
    assert set(found["student_key"].dropna().astype(int)) == {pseudonym(student_b, WORLD_KEY),
                                                              pseudonym("1103700123458", WORLD_KEY)}
    assert {d.split(":")[0] for d in found["detail"]} == {"refused 404"}
    assert (found["school_id"] == people["school_a"]).all()  # the asking key's school


def test_another_schools_alerts_and_alert_ids_are_refused_alike_and_audited(service, people):
    token, school_b = people["tokens"]["teacher_a"], people["school_b"]
    assert call(service, "GET", f"/v1/schools/{school_b}/alerts", token).status_code == 403
    assert call(service, "GET", "/v1/schools/1999999999/alerts", token).status_code == 403
    theirs = call(service, "GET", f"/v1/schools/{school_b}/alerts", people["tokens"]["admin"]).json()["alerts"]
    body = {"action_taken": "home visit"}
    missing = call(service, "POST", "/v1/alerts/999999999/ack", token, json=body)
    if theirs:
        other = call(service, "POST", f"/v1/alerts/{theirs[0]['id']}/ack", token, json=body)
        assert (other.status_code, other.json()) == (missing.status_code, missing.json())
    assert missing.status_code == 404
    teacher = _key_id(people, "teacher_a")
    entries = _wait_for(lambda: (e := audit_entries(people["store"], key_id=teacher))[
        e["detail"].fillna("").str.startswith("refused") & e["action"].isin(["school_alerts", "alert_ack"])],
        lambda got: len(got) >= 3 + bool(theirs))
    assert set(entries["action"]) == {"school_alerts", "alert_ack"}
    assert {"1999999999", school_b} <= set(entries["school_id"])


def test_a_role_refusal_is_audited_by_route_template(service, people):
    student = people["student_a"]
    assert call(service, "GET", f"/v1/students/{student}/risk", people["tokens"]["upstream"]).status_code == 403
    upstream = _key_id(people, "upstream")
    entries = _wait_for(lambda: (e := audit_entries(people["store"], key_id=upstream))[e["action"] == "refused"],
                        lambda got: len(got) >= 1)
    assert entries.iloc[-1]["detail"] == "refused 403: GET /v1/students/{student_id}/risk by a upstream key"
    assert student not in "".join(entries["detail"])


# ---------------------------------------------------------------- keep last: it stops the service
def test_stopping_the_service_leaves_a_line(service, people):
    assert list_keys(people["store"])  # the store outlives the service
    stop_process_group(service["process"])
    (stopped,) = _lines(service, "service stopped")
    assert stopped["model_version"] in ("1", "2")


def test_an_unreachable_registry_is_logged_without_its_urls_password(tmp_path):
    """MLflow's own error names the tracking URI whole, password included; the log line masks it."""
    script = (
        "from pathlib import Path\n"
        "from risk.features.catalog import load_catalog\n"
        "from risk.serve.model_holder import ModelHolder\n"
        "from risk.serve.mlflow_registry import RegistryClient\n"
        f"registry = RegistryClient('dropout-risk', 'champion', Path({str(tmp_path)!r}), timeout_s=1, retries=0)\n"
        "holder = ModelHolder(registry=registry.alias_version, download=registry.download,\n"
        f"                     catalog=load_catalog(Path({str(FEATURES_YAML)!r})), cache_dir=Path({str(tmp_path)!r}))\n"
        "assert holder.start() is None\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RISK_"))}
    env["MLFLOW_TRACKING_URI"] = "http://risk:s3cret-pw@127.0.0.1:9/"  # port 9 (discard): nothing listens
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "model registry unreachable at start" in done.stderr
    assert "s3cret-pw" not in done.stderr and "risk:***@127.0.0.1:9" in done.stderr
