"""README's "Running on a Spark cluster" runs: its local-mode lines as written, in a folder laid out as ``make demo``
leaves it, and Spark's scores there equal ``risk score``'s for every student.

The folder is a copy of the session's one ``risk term`` (tests/term_support.py), the step ``make demo`` runs on its
world: ``data/validated``, the registry in ``data/mlflow.db``, ``risk score``'s ``data/scores.parquet`` and the
store ``data/risk.db``, at 2026-07-24 as in README. The lines run with this venv's ``risk`` and ``python`` first
on PATH, so nothing in them is changed. The section's blocks that submit to a cluster (YARN, Kubernetes) cannot
run here: each must name its cluster, and its ``risk`` command lines are parsed by the real command line, as
tests/test_docs.py parses README's command table.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest
from test_docs import README, cli, section

from risk.store import latest_finished_run, open_store, run_record, summaries
from risk.store.models import SUMMARY_LEVELS

pytestmark = [pytest.mark.slow, pytest.mark.spark]

TITLE = "Running on a Spark cluster"
CLUSTER = re.compile(r"spark-submit\b.*--master (yarn|k8s://)")
# What risk score and the Spark run must agree on, beside the probability (within 1e-12).
COMPARED = ("risk_class", "raised_by", "reason_codes", "reasons_en", "reasons_th", "school_id", "grade_level",
            "district_code", "id_hint", "model_version", "term", "as_of")


def blocks() -> list[str]:
    """The ```sh blocks of README's Spark section, in order."""
    return re.findall(r"```sh\n(.*?)```", section(README.read_text(encoding="utf-8"), TITLE), flags=re.S)


def commands(block: str) -> list[str]:
    """The block's command lines (comment lines, which show what a command prints, left out)."""
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def local_blocks() -> list[str]:
    return [b for b in blocks() if not CLUSTER.search(b)]


def cluster_blocks() -> list[str]:
    return [b for b in blocks() if CLUSTER.search(b)]


def risk_arguments(line: str) -> list[list[str]]:
    """The arguments of each ``risk`` command in ``line``: after ``risk``, or after spark-submit's ``risk/__main__.py``."""
    found = []
    for part in line.split("&&"):
        words = shlex.split(part)
        if words and words[0] == "risk":
            found.append(words[1:])
        elif words and words[0] == "spark-submit":
            main = next(i for i, w in enumerate(words) if w.endswith("risk/__main__.py"))
            found.append(words[main + 1:])
    return found


def run_line(line: str, cwd: Path) -> subprocess.CompletedProcess:
    """One README line as written, by bash in ``cwd``, with this venv's ``risk`` and ``python`` first on PATH
    and no RISK_ or MLFLOW_ variables (as test_serve_examples.run_shell runs README's Service lines; its two
    minutes are too few for a Spark command on a busy host, where one took more)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RISK_", "MLFLOW_"))}
    env |= {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", "COLUMNS": "200"}
    return subprocess.run(["bash", "-c", line], env=env, cwd=cwd, capture_output=True, text=True, timeout=900)


@dataclass(frozen=True)
class Ran:
    """The local lines, run in order in ``data``'s parent: what each printed, and the store's run before them."""

    data: Path
    outputs: list[str]
    batch_run: str


@pytest.fixture(scope="module")
def ran(term_run, tmp_path_factory) -> Ran:
    root = tmp_path_factory.mktemp("spark-readme")
    shutil.copytree(term_run.folder, root / "data", ignore=shutil.ignore_patterns("*.out", "*.log"))
    batch_run = latest_finished_run(open_store(f"sqlite:///{root / 'data' / 'risk.db'}"))
    outputs = []
    for line in [line for block in local_blocks() for line in commands(block)]:
        done = run_line(line, root)
        assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        outputs.append(done.stdout)
    return Ran(root / "data", outputs, batch_run)


def test_the_section_shows_local_mode_first_then_a_cluster():
    local, cluster = local_blocks(), cluster_blocks()
    assert local and cluster and blocks().index(local[0]) < blocks().index(cluster[0])
    lines = [line for block in local for line in commands(block)]
    assert any("risk score --engine spark" in line for line in lines)
    assert any(line.startswith("risk store load") for line in lines)
    assert {m.group(1) for b in cluster for m in CLUSTER.finditer(b)} == {"yarn", "k8s://"}


def test_the_cluster_lines_run_commands_risk_accepts():
    parsed = 0
    for block in cluster_blocks():
        for line in commands(block):
            for args in risk_arguments(line):
                command, rest = cli().commands[args[0]], args[1:]
                while isinstance(command, click.Group):  # risk store load: down to the subcommand
                    command, rest = command.commands[rest[0]], rest[1:]
                command.make_context(f"risk {args[0]}", rest)  # a usage error (unknown option, bad value) raises
                parsed += 1
    assert parsed >= 3  # two spark-submit lines and risk store load


@pytest.mark.spark_readme
def test_spark_scores_equal_risk_scores_for_every_student(ran):
    data = ran.data
    expected = pd.read_parquet(data / "scores.parquet").set_index("student_key").sort_index()
    found = pd.read_parquet(data / "scores-spark").set_index("student_key").sort_index()
    assert len(expected) >= 1000 and list(found.index) == list(expected.index)
    np.testing.assert_allclose(found["probability"], expected["probability"], rtol=1e-12, atol=1e-12)
    for column in COMPARED:
        a, b = expected[column].astype(str).astype(object), found[column].astype(str).astype(object)
        same = (a == b) | (a.isna() & b.isna())
        assert same.all(), (column, a[~same].head(3).tolist(), b[~same].head(3).tolist())
    assert (expected["risk_class"] != "normal").sum() > 0 and (expected["reason_codes"] != "[]").sum() > 0


@pytest.mark.spark_readme
def test_the_comparison_line_prints_what_the_parquet_files_hold(ran):
    data = ran.data
    line = next(out for out in ran.outputs if re.fullmatch(r"\d+ \d+ \S+ \d+ \d+\n", out))
    students, spark_students, largest, classes, reasons = line.split()
    assert students == spark_students == str(len(pd.read_parquet(data / "scores.parquet")))
    assert float(largest) <= 1e-12 and classes == reasons == "0"


@pytest.mark.spark_readme
def test_the_spark_features_are_written_by_bucket_for_every_student(ran):
    data = ran.data
    features = pd.read_parquet(data / "features-spark")
    assert sorted(features["student_key"]) == sorted(pd.read_parquet(data / "scores.parquet")["student_key"])
    assert sorted(p.name for p in (data / "features-spark").glob("bucket=*")) == [f"bucket={b}" for b in range(4)]


@pytest.mark.spark_readme
def test_store_load_stores_what_risk_score_stored(ran):
    store = open_store(f"sqlite:///{ran.data / 'risk.db'}")
    loaded = latest_finished_run(store)
    assert loaded != ran.batch_run and run_record(store, loaded)["settings"]["engine"] == "spark"
    assert run_record(store, loaded)["students"] == run_record(store, ran.batch_run)["students"]
    for level in SUMMARY_LEVELS:
        pd.testing.assert_frame_equal(summaries(store, loaded, level), summaries(store, ran.batch_run, level))
