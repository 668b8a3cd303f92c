"""One ``risk term`` on the session's small world, run once and read by every file that needs a finished term.

test_term.py reads its step tables (first run and the run again), test_privacy_term.py scans everything it
wrote. A term is minutes of real work, so it runs once per ``make test``, not once per file: under
pytest-xdist each worker is a process of its own, so the first worker to ask runs it under a file lock in
the folder the workers share, and the others wait for it and read the same folder. Files that must own
their folder (test_term_resume.py kills its runs) use :func:`term_command` and :func:`run` for their own.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from built_once import shared_root
from conftest import WORLD_KEY, small_train_settings

AS_OF = "2026-07-24"  # ten weeks into the world's last term (2569-1)
# The world's own bucket count (conftest.world). configs/risk.yaml's 32 make each of the 12 feature points
# the features step builds about five times slower (1.4 s against 6.5 s measured on the world), and no test
# of a whole term is about buckets (test_scoring.py kills a scoring run between buckets of its own).
TERM_BUCKETS = 4
STEPS = ["validate", "freshness", "features", "train", "promote", "score", "alerts", "summaries", "report"]


def write_small_configs(folder: Path) -> Path:
    """``folder`` with ``train.yaml`` (conftest.small_train_settings) and ``risk.yaml`` (configs/risk.yaml in
    TERM_BUCKETS student buckets): the settings of a term small enough for a unit test."""
    from risk.config import load_settings

    folder.mkdir(parents=True, exist_ok=True)
    settings = load_settings()
    settings.data.student_buckets = TERM_BUCKETS
    (folder / "risk.yaml").write_text(yaml.safe_dump(settings.model_dump(mode="json")), encoding="utf-8")
    (folder / "train.yaml").write_text(yaml.safe_dump(small_train_settings().model_dump(mode="json")),
                                       encoding="utf-8")
    return folder


def term_command(source: Path, data: Path, configs: Path, log_level: str = "INFO") -> list[str]:
    """``risk term`` on export ``source`` at AS_OF into data folder ``data``, with the settings in ``configs``
    (:func:`write_small_configs`)."""
    return [sys.executable, "-m", "risk", "--log-level", log_level, "term", "--source", str(source),
            "--as-of", AS_OF, "--store", str(data), "--settings", str(configs / "risk.yaml"),
            "--train-config", str(configs / "train.yaml"), "--quiet"]


def environment() -> dict[str, str]:
    """This process's environment without MLflow's and risk's own variables, with the world's ID key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RISK_"))}
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


@dataclass(frozen=True)
class Ran:
    """One ``risk term`` process: its exit code, what it printed and its DEBUG log."""

    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class TermRun:
    """The shared term: the export it ran on, its data folder, the first run and the same run again."""

    source: Path
    folder: Path
    first: Ran
    again: Ran


def shared_term(world: Path, tmp_path_factory) -> TermRun:
    """The session's one term on ``world`` at AS_OF (run here, or read when another worker ran it)."""
    root = shared_root(tmp_path_factory)
    done = root / "shared-term.json"
    with (root / "shared-term.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other workers wait here while the first one runs the term
        if not done.exists():
            done.write_text(json.dumps(_run_twice(world / "source", root)), encoding="utf-8")
    kept = json.loads(done.read_text(encoding="utf-8"))
    folder = Path(kept["folder"])
    ran = [Ran(code, (folder / f"{name}.out").read_text(encoding="utf-8"),
               (folder / f"{name}.log").read_text(encoding="utf-8")) for name, code in kept["runs"].items()]
    return TermRun(Path(kept["source"]), folder, *ran)


def _run_twice(source: Path, root: Path) -> dict[str, object]:
    """``risk term`` run, then run again, in a fresh folder under ``root``; each run's stdout is kept as
    ``<name>.out`` and its DEBUG log (stderr) as ``<name>.log`` in the data folder, so they are scanned too."""
    data = Path(tempfile.mkdtemp(prefix="term-", dir=root))
    configs = write_small_configs(Path(tempfile.mkdtemp(prefix="configs-", dir=root)))
    command = term_command(source, data, configs, log_level="DEBUG")
    codes = {}
    for name in ("term", "term-again"):
        with (data / f"{name}.out").open("wb") as out, (data / f"{name}.log").open("wb") as log:
            codes[name] = subprocess.run(command, env=environment(), stdout=out, stderr=log, timeout=900).returncode
    return {"source": str(source), "folder": str(data), "runs": codes}
