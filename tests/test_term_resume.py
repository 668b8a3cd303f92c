"""``risk term`` resumed after a real kill, with every row there once.

Its own file so that the test runners (``make test`` runs two) can take it beside
test_term.py's runs: each is a few minutes of real terms.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pandas as pd
from term_support import environment, run, step_rows, term_command, write_small_configs

from risk.store import latest_finished_run, latest_scores, open_store


def kill_when(command: list[str], marker: str, timeout: float = 600) -> None:
    """Start ``command`` and SIGKILL its process group as soon as ``marker`` appears on stderr."""
    process = subprocess.Popen(command, env=environment(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               text=True, start_new_session=True)
    deadline = time.monotonic() + timeout
    assert process.stderr is not None
    for line in process.stderr:
        if marker in line:
            os.killpg(process.pid, signal.SIGKILL)
            break
        if time.monotonic() > deadline:
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, f"the run ended before {marker!r}"


def test_killed_term_resumes_at_two_steps_and_every_row_is_there_once(world, tmp_path):
    command = term_command(world / "source", tmp_path / "data", write_small_configs(tmp_path / "configs"))
    kill_when(command, "step='features'")  # killed while training
    kill_when(command, "step='promote'")   # killed while scoring
    finished = run(command)
    assert finished.returncode == 0, finished.stderr[-2000:]
    statuses = step_rows(finished.stdout)
    assert statuses["features"] == "reused" and statuses["train"] == "reused"
    store = open_store(f"sqlite:///{tmp_path / 'data' / 'risk.db'}")
    run_id = latest_finished_run(store)
    stored = pd.concat(latest_scores(store, run_id, columns=["student_key"]))
    scores = pd.read_parquet(tmp_path / "data" / "scores.parquet")
    assert stored["student_key"].is_unique
    assert sorted(stored["student_key"]) == sorted(scores["student_key"])
    enrollments = pd.read_parquet(tmp_path / "data" / "validated" / "enrollments")
    assert not enrollments.duplicated(["student_key", "term"]).any()
