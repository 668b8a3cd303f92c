"""Privacy over everything written: the session's ``risk term`` on the small world (conftest.term_run,
run once for this file and test_term.py), then the service on the term's folder, then the shared PII
scanner (conftest.pii_leaks) over all of it, and proof that the scan can fail.

The whole folder is scanned: the validated store and its derived caches, the SQLite store, MLflow's
database and artifacts (input example, evaluation tables, model card, plots), the report, the scores,
the term's logs and printed tables (both runs), the service's log, model cache and the answers it gave,
and the copy of the ``risk`` package logged beside each model (``.../artifacts/code/``: the layers the
model loads with, not the service, whose OpenAPI examples name a student of the demo's export). Only the source export holds raw
IDs, by design, and it lies outside the folder. A scanner that is missing or crashes fails
the test (conftest.pii_leaks), and the planted-ID tests show that a raw ID in any of those kinds
of file would be found.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from conftest import pii_leaks, stop_process_group
from test_serve import call, payload_of, source_tables, start_service

from risk.store import create_key, open_store

pytestmark = pytest.mark.privacy
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def term_folder(term_run) -> Path:
    """The folder of the session's ``risk term`` (conftest.term_run), its DEBUG log as ``term.log``."""
    assert term_run.first.returncode == 0, term_run.first.stderr[-3000:]
    return term_run.folder


@pytest.fixture(scope="module")
def source(term_run) -> Path:
    """The export the term ran on: the only place raw IDs belong."""
    return term_run.source


def outputs(folder: Path) -> list[Path]:
    """Every file under ``folder``, the copies of our source that MLflow logs with a model included."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


def written(folder: Path, pattern: str) -> list[Path]:
    """The files of ``outputs(folder)`` whose name matches ``pattern``."""
    return [p for p in outputs(folder) if p.match(pattern)]


def raw_id(source: Path) -> str:
    """One raw ID of the source export (a Thai national ID)."""
    ids = source_tables(source)["enrollments"]["student_id"].dropna()
    return str(ids[ids.str.fullmatch(r"\d{13}")].iloc[0])


def test_the_term_folder_holds_every_kind_of_output(term_folder):
    # What the scan below must cover; if one is missing the scan would pass without looking at it.
    for pattern in ("mlflow.db", "risk.db", "scores.parquet", "scores.parquet.parts/*/*.parquet", "report.html",
                    "term.log", "MLmodel", "input_example.json", "booster.txt", "evaluation/*.csv",
                    "model_card.html", "evaluation/*.png", "validated/_derived/*/*", "validated/quarantine/*/*",
                    "validated/enrollments/*/*.parquet"):
        assert written(term_folder, pattern), f"risk term wrote no {pattern} under {term_folder}"


def test_the_model_code_logged_with_the_model_holds_the_model_layers_only(term_folder):
    logged = {p.relative_to(p.parents[1]).as_posix() for p in written(term_folder, "artifacts/code/risk/*/*.py")}
    assert "models/pyfunc_model.py" in logged and "features/catalog.py" in logged
    assert not [name for name in logged if name.startswith(("serve/", "cli/"))]


def test_nothing_the_term_wrote_holds_a_raw_id(source, term_folder):
    assert pii_leaks(source, *outputs(term_folder)) == []


PLANTS = {
    "model card": "model_card.html",
    "evaluation table": "evaluation.csv",
    "input example": "input_example.json",
    "term log": "term.log",
}


@pytest.mark.parametrize("kind", PLANTS)
def test_a_raw_id_planted_in_a_copy_of_an_mlflow_artifact_is_found(source, term_folder, tmp_path, kind):
    (original,) = written(term_folder, PLANTS[kind])
    copy = tmp_path / "planted" / original.name
    copy.parent.mkdir()
    shutil.copyfile(original, copy)
    with copy.open("a", encoding="utf-8") as out:
        out.write(f"\n{raw_id(source)}\n")
    assert pii_leaks(source, copy.parent) == [f"LEAK {copy}: 1 raw ids in the bytes"]


def test_a_raw_id_planted_in_a_copy_of_the_mlflow_database_is_found(source, term_folder, tmp_path):
    copy = tmp_path / "planted" / "mlflow.db"
    copy.parent.mkdir()
    shutil.copyfile(term_folder / "mlflow.db", copy)
    with sqlite3.connect(copy) as con:
        run_uuid = con.execute("SELECT run_uuid FROM runs LIMIT 1").fetchone()[0]
        con.execute("INSERT INTO tags (key, value, run_uuid) VALUES ('note', ?, ?)", (f"see {raw_id(source)}", run_uuid))
    assert pii_leaks(source, copy.parent) == [f"LEAK {copy}: table tags holds raw id"]


def test_a_raw_id_planted_in_a_copy_of_the_scores_is_found(source, term_folder, tmp_path):
    scores = pd.read_parquet(term_folder / "scores.parquet")
    scores.loc[scores.index[0], "id_hint"] = raw_id(source)
    (tmp_path / "planted").mkdir()
    scores.to_parquet(tmp_path / "planted" / "scores.parquet")
    assert pii_leaks(source, tmp_path / "planted") == [
        f"LEAK {tmp_path / 'planted' / 'scores.parquet'}: column id_hint holds 1 raw ids"]


# ---------------------------------------------------------------- the service on the term's folder
@pytest.fixture(scope="module")
def served(source, term_folder) -> Path:
    """The service run on the term's folder, asked with raw IDs in bodies and paths; its folder afterwards.

    Its config, log, model cache and every answer (``answers/*.txt``) are kept under ``service/``.
    """
    folder = term_folder / "service"
    (folder / "answers").mkdir(parents=True)
    store_url = f"sqlite:///{term_folder / 'risk.db'}"
    store = open_store(store_url)
    tokens = {role: create_key(store, role, label=f"privacy {role}").token for role in ("upstream", "analyst")}
    tables = source_tables(source)
    student = raw_id(source)
    process, url, _ = start_service(folder, data=term_folder / "validated", store_url=store_url,
                                    tracking_dir=term_folder, cache=folder / "cache")
    service = {"url": url}
    try:
        good = payload_of(tables, student)
        bad = payload_of(tables, student)
        bad["enrollments"][0]["grade_level"] = "P9"  # nothing scorable: a 422 naming the field
        answers = [
            call(service, "POST", "/v1/score", tokens["upstream"], json=good),
            call(service, "POST", "/v1/score", tokens["upstream"], json=bad),
            call(service, "POST", "/v1/score", tokens["upstream"], json={"as_of": f"x{student}", student: [1]}),
            call(service, "GET", f"/v1/students/{student}/risk", tokens["analyst"]),
            call(service, "GET", f"/v1/students/{student}/risk", tokens["upstream"]),  # a role refused
            call(service, "GET", f"/v1/students/{student}/risk", "not-a-key"),
            call(service, "GET", f"/v1/students/{student}0/risk", tokens["analyst"]),  # not an ID: 422
        ]
        for number, answer in enumerate(answers):
            assert answer.status_code < 500, answer.text
            (folder / "answers" / f"{number}.txt").write_text(  # the answer, not the request (it holds the ID)
                f"{answer.status_code}\n{answer.headers}\n{answer.text}", encoding="utf-8")
        assert answers[0].status_code == 200 and answers[3].status_code == 200, (answers[0].text, answers[3].text)
    finally:
        stop_process_group(process)  # its log and audit trail flushed
    return folder


def test_the_service_wrote_its_log_and_answers_where_they_are_scanned(served):
    logs = written(served, "*.log")
    assert logs and any("/v1/students/" in log.read_text(errors="replace") for log in logs), "no access log"
    assert len(written(served / "answers", "*.txt")) == 7


def test_nothing_the_service_wrote_or_answered_holds_a_raw_id(source, term_folder, served):
    assert pii_leaks(source, *outputs(term_folder)) == []  # the store and its audit trail too
