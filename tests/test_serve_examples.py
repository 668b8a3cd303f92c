# ruff: noqa: F811  (tests take the imported fixtures by name)
"""The documented examples run: README's Service lines with real ``curl``, and every example of the OpenAPI page.

README's lines are read out of README.md here, so the two cannot drift. They run
against a real ``risk serve`` of this module's own (the fixtures of ``test_serve``,
imported) on the test world, with the test world's school and student in
``$SCHOOL`` and ``$STUDENT`` and keys that README's own ``risk keys create`` lines
made. That README's school and student (and the OpenAPI page's, the same) are in the
demo's world is checked apart, by generating that world as ``make demo`` does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from test_serve import call, payload_of, people, registry, scored, service  # noqa: F401

from risk.serve.schemas import EXAMPLE_ID, EXAMPLE_SCHOOL, SCORE_EXAMPLE

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LOOPBACK = "http://127.0.0.1:8000"
RISK = f"{sys.executable} -m risk"
KEY_VARIABLES = {"upstream": "KEY", "teacher": "TEACHER_KEY", "analyst": "ANALYST_KEY"}


@dataclass(frozen=True)
class Documented:
    """One command of README and the answer written beside it (``# → 200 {keys}``)."""

    command: str
    status: int
    keys: tuple[str, ...]  # top-level JSON keys; empty for a text answer


def service_blocks() -> list[str]:
    """The ```sh blocks of README's Service section."""
    section = README.read_text(encoding="utf-8").split("\n## Service\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def readme_lines(prefix: str) -> list[str]:
    """README's Service lines starting with ``prefix``, a here-document kept with its line."""
    out = []
    for block in service_blocks():
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            if lines[i].startswith(prefix):
                command = [lines[i]]
                if "<<EOF" in lines[i]:
                    while lines[i] != "EOF":
                        i += 1
                        command.append(lines[i])
                if i + 1 < len(lines) and lines[i + 1].startswith("# →"):
                    i += 1
                    command.append(lines[i])
                out.append("\n".join(command))
            i += 1
    return out


def documented_calls() -> list[Documented]:
    calls = []
    for command in readme_lines("curl "):
        answer = re.search(r"# → (\d{3}) (?:\{([^}]*)\}|Prometheus text)", command)
        assert answer, f"README's line says no answer (# → status {{keys}}): {command.splitlines()[0]}"
        keys = tuple(k.strip() for k in answer.group(2).split(",")) if answer.group(2) else ()
        calls.append(Documented(command, int(answer.group(1)), keys))
    return calls


def readme_variables() -> dict[str, str]:
    """The NAME=value assignments of README's Service blocks."""
    found: dict[str, str] = {}
    for block in service_blocks():
        for line in block.splitlines():
            if re.match(r"^[A-Z_]+=", line):
                found.update(re.findall(r"([A-Z_]+)=(\S+)", line.split("#", 1)[0]))
    return found


def run_shell(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RISK_", "MLFLOW_"))}
    return subprocess.run(["bash", "-c", command], env={**clean, **env}, cwd=cwd, capture_output=True, text=True,
                          timeout=120)


# ---------------------------------------------------------------- the demo's world holds README's examples
def test_readme_and_openapi_examples_name_one_school_and_student():
    variables = readme_variables()
    assert (variables["SCHOOL"], variables["STUDENT"]) == (EXAMPLE_SCHOOL, EXAMPLE_ID)
    assert set(KEY_VARIABLES.values()) <= set(variables)


def _makefile_value(name: str) -> str:
    return re.search(rf"^{name}\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), flags=re.M).group(1)


def test_the_example_school_and_student_are_in_the_demo_world(tmp_path):
    """Generated as `make demo` does (its sizes read from the Makefile): the student studies at the school."""
    from risk.data.synth import SynthConfig, generate

    seed = int(re.search(r"synth .*--seed (\d+)", (ROOT / "Makefile").read_text()).group(1))
    last_term = _makefile_value("DEMO_LAST_TERM")
    generate(tmp_path, students=int(_makefile_value("DEMO_STUDENTS")), terms=int(_makefile_value("DEMO_TERMS")),
             seed=seed, last_term=last_term, config=SynthConfig.from_yaml(ROOT / "configs" / "synth.yaml"),
             progress=False)
    schools = pd.concat(pd.read_csv(p, dtype=str) for p in sorted((tmp_path / "schools").iterdir()))
    assert EXAMPLE_SCHOOL in set(schools["school_id"])
    enrollments = pd.concat(pd.read_parquet(p).assign(_file=f"enrollments/{p.name}", _row=lambda f: range(len(f)))
                            for p in sorted((tmp_path / "enrollments").iterdir()))
    mine = enrollments[(enrollments["student_id"] == EXAMPLE_ID) & (enrollments["term"] == last_term)]
    assert len(mine) == 1
    record = mine.iloc[0]
    assert (record["school_id"], record["status"]) == (EXAMPLE_SCHOOL, "studying")
    injected = pd.read_parquet(tmp_path / "_injected.parquet")
    touched = injected.merge(enrollments[enrollments["student_id"] == EXAMPLE_ID], left_on=["file", "row"],
                             right_on=["_file", "_row"])
    assert touched.empty, "an error was injected into the example student's enrollments"
    # The examples' enrollment is the student's own, as the demo holds it.
    example = SCORE_EXAMPLE["enrollments"][0]
    for column in ("term", "grade_level", "classroom", "sex", "nationality", "disability"):
        assert example[column] == record[column], column
    assert example["birth_date"] == str(record["birth_date"])[:10]
    assert SCORE_EXAMPLE["as_of"] == _makefile_value("DEMO_AS_OF")


# ---------------------------------------------------------------- README's lines, run
@pytest.fixture(scope="module")
def readme_keys(service, people, scored, world, tmp_path_factory) -> dict[str, str]:
    """The tokens README's `risk keys create` lines print, run against this module's store and world."""
    folder = tmp_path_factory.mktemp("readme-keys")
    env = {"SCHOOL": people["school_a"], "STUDENT": people["student_a"]}
    tokens = {}
    for line in readme_lines("risk keys create"):
        command = line.split("#", 1)[0].replace("risk ", f"{RISK} ", 1)
        done = run_shell(f"{command} --data {world / 'validated'} --store {scored[0]}", env, folder)
        assert done.returncode == 0, done.stderr
        role = re.search(r"--role (\w+)", line).group(1)
        tokens[KEY_VARIABLES[role]] = done.stdout.strip().splitlines()[-1]
    return tokens


@pytest.mark.parametrize("documented", documented_calls(), ids=lambda d: d.command.splitlines()[0][:60])
def test_each_readme_call_gets_its_documented_answer(service, people, readme_keys, documented, tmp_path):
    env = {**readme_keys, "SCHOOL": people["school_a"], "STUDENT": people["student_a"]}
    command = documented.command.replace(LOOPBACK, service["url"])
    # Each curl prints its status after the body: the one thing the test adds to README's line.
    done = run_shell("curl() { command curl -w '\\n%{http_code}' \"$@\"; }\n" + command, env, tmp_path)
    assert done.returncode == 0, done.stderr
    body, status = done.stdout.rsplit("\n", 1)
    assert int(status) == documented.status, body[:500]
    if documented.keys:
        assert set(documented.keys) <= set(json.loads(body)), body[:500]
    else:
        assert "risk_request_seconds" in body
    assert people["student_a"] not in body


def test_readme_teacher_key_lines_refuse_an_unknown_school(people, scored, world, tmp_path):
    line = next(x for x in readme_lines("risk keys create") if "--role teacher" in x)
    command = line.split("#", 1)[0].replace("risk ", f"{RISK} ", 1)
    done = run_shell(f"{command} --data {world / 'validated'} --store {scored[0]}", {"SCHOOL": "1999999999"},
                     tmp_path)
    assert done.returncode == 2
    assert "There is no school '1999999999'" in done.stderr and "Traceback" not in done.stderr
    assert len([x for x in done.stderr.splitlines() if x.strip()]) <= 2  # one sentence (wrapped at most once)


# ---------------------------------------------------------------- the OpenAPI page's examples, run
def _resolve(schema: dict, spec: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _example(schema: dict, spec: dict):
    """The schema's own example, else one built from its parts' examples; None when it has none."""
    schema = _resolve(schema, spec)
    if schema.get("examples"):
        return schema["examples"][0]
    if schema.get("type") == "array":
        item = _example(schema.get("items", {}), spec)
        return None if item is None else [item]
    if schema.get("type") == "object":
        parts = {name: _example(part, spec) for name, part in schema.get("properties", {}).items()}
        parts = {k: v for k, v in parts.items() if v is not None}
        return parts if parts and set(schema.get("required", [])) <= set(parts) else None
    return None


def openapi_examples(spec: dict) -> list[tuple[str, str, dict, object]]:
    """(method, path template, path parameters, body) of every operation that has an example."""
    out = []
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            params = {p["name"]: (p.get("schema", {}).get("examples") or [None])[0]
                      for p in operation.get("parameters", []) if p["in"] == "path"}
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            body = _example(content["schema"], spec) if content else None
            if body is not None or any(v is not None for v in params.values()):
                out.append((method.upper(), path, params, body))
    return out


def test_every_openapi_example_runs_against_the_world(service, people):
    spec = call(service, "GET", "/openapi.json").json()
    examples = openapi_examples(spec)
    assert {(m, p) for m, p, _, _ in examples} >= {
        ("POST", "/v1/score"), ("POST", "/v1/score/batch"), ("GET", "/v1/students/{student_id}/risk"),
        ("GET", "/v1/schools/{school_id}/alerts"), ("POST", "/v1/alerts/{alert_id}/ack")}
    alerts = call(service, "GET", f"/v1/schools/{people['school_a']}/alerts", people["tokens"]["admin"])
    fill = {"alert_id": alerts.json()["alerts"][-1]["id"]}  # the one path parameter without an example
    swap = {EXAMPLE_ID: people["student_a"], EXAMPLE_SCHOOL: people["school_a"]}
    for method, path, params, body in examples:
        text = json.dumps({"path": path.format(**{k: v if v is not None else fill[k] for k, v in params.items()}),
                           "body": body})
        for demo, ours in swap.items():  # the demo's student and school → the test world's
            text = text.replace(demo, ours)
        request = json.loads(text)
        response = call(service, method, request["path"], people["tokens"]["admin"],
                        **({"json": request["body"]} if body is not None else {}))
        assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text[:300]}"
        assert people["student_a"] not in response.text
