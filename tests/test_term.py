"""``risk term``: the whole job in one command, reused when run again, locked (resumed after a kill: test_term_resume.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import WORLD_KEY, small_train_settings

from risk.term import _locked

AS_OF = "2026-07-24"
STEPS = ["validate", "freshness", "features", "train", "promote", "score", "alerts", "summaries", "report"]


@pytest.fixture(scope="module")
def small_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "train.yaml"
    path.write_text(yaml.safe_dump(small_train_settings().model_dump(mode="json")), encoding="utf-8")
    return path


def term_command(world: Path, data: Path, config: Path) -> list[str]:
    return [sys.executable, "-m", "risk", "--log-level", "INFO", "term", "--source", str(world / "source"),
            "--as-of", AS_OF, "--store", str(data), "--train-config", str(config), "--quiet"]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["RISK_ID_KEY"] = WORLD_KEY.decode()
    env["COLUMNS"] = "200"  # the step table on one line per step
    return env


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=900)


def step_rows(stdout: str) -> dict[str, str]:
    """step -> status, read from the printed table."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("│") if c.strip()]
        if len(cells) >= 2 and cells[0] in STEPS:
            rows[cells[0]] = cells[1]
    return rows


@pytest.fixture(scope="module")
def twice(world, small_config, tmp_path_factory):
    data = tmp_path_factory.mktemp("term")
    first = run(term_command(world, data, small_config))
    second = run(term_command(world, data, small_config))
    return data, first, second


def test_term_runs_every_step_and_prints_the_table(twice):
    data, first, _ = twice
    assert first.returncode == 0, first.stderr[-2000:]
    assert list(step_rows(first.stdout)) == STEPS
    assert (data / "report.html").exists() and (data / "scores.parquet").exists()
    kept = json.loads((data / f"term-{AS_OF}.json").read_text(encoding="utf-8"))
    assert [s["step"] for s in kept] == STEPS and all(s["seconds"] >= 0 for s in kept)


def test_term_run_again_reuses_every_step_after_validation(twice):
    _, _, second = twice
    assert second.returncode == 0, second.stderr[-2000:]
    statuses = step_rows(second.stdout)
    assert all(statuses[s] == "reused" for s in STEPS if s not in ("validate", "freshness", "report")), statuses


def test_a_second_term_on_the_same_folder_is_refused(world, small_config, tmp_path):
    with _locked(tmp_path):
        busy = run(term_command(world, tmp_path, small_config))
    assert busy.returncode == 2
    assert "in use by another `risk term`" in busy.stderr


def test_term_checks_freshness_at_as_of_and_the_report_shows_it(twice):
    data, first, _ = twice
    assert step_rows(first.stdout)["freshness"] in ("ok", "warning")
    html = (data / "report.html").read_text(encoding="utf-8")
    assert '<section id="freshness">' in html and "Data freshness was not checked" not in html
