"""The registered model outside the training process: `mlflow models serve` over HTTP, and a
tracking server backed by PostgreSQL (DESIGN.md "The model package").

Both start real MLflow processes; each is bounded by a deadline and always stopped.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import stop_process_group
from mlflow.tracking import MlflowClient

from risk.models.promotion import promote
from risk.models.tracking import champion_bundle, configure_tracking, log_training
from tests.conftest import MODEL_NAME, small_train_settings

MLFLOW = Path(sys.executable).with_name("mlflow")
CLASSES = {"normal", "at_risk", "problem"}
PG_HOST, PG_PORT = "127.0.0.1", 5432


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A server in its own process group (so its workers stop with it), output to ``log``.

    The venv's bin folder leads PATH, as in an activated venv: MLflow execs ``uvicorn`` by name.
    """
    env = {**env, "PATH": os.pathsep.join([str(MLFLOW.parent), env.get("PATH", "")])}
    with log.open("wb") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_until_up(url: str, process: subprocess.Popen, log: Path, seconds: float) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log when it dies or the deadline passes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {seconds:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


def kill_process_group(process: subprocess.Popen) -> None:
    """Stop a server at once (SIGKILL to its group): a tracking server's graceful stop took ~15 s and proves
    nothing here, the schema it wrote is dropped afterwards."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def split_payload(frame: pd.DataFrame) -> bytes:
    """``{"dataframe_split": ...}`` with NaN written as JSON null (NaN is not JSON)."""
    split = json.loads(frame.to_json(orient="split"))  # pandas writes NaN as null
    return json.dumps({"dataframe_split": split}).encode()


# ---------------------------------------------------------------- mlflow models serve


@pytest.fixture(scope="module")
def served(champion_store, tmp_path_factory) -> Iterator[str]:
    """Base URL of `mlflow models serve` on the champion of ``champion_store``."""
    _, uri, _, _ = champion_store
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    process = start([str(MLFLOW), "models", "serve", "-m", f"models:/{MODEL_NAME}@champion",
                     "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port), "-w", "1"], env, log)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/ping", process, log, 120)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(process)


def test_served_champion_gives_the_training_probabilities_and_classes(served, champion_store):
    _, _, result, _ = champion_store
    frame = result.example
    assert frame.isna().to_numpy().any(), "the example should carry missing values, sent as null"
    request = urllib.request.Request(f"{served}/invocations", data=split_payload(frame), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        predictions = pd.DataFrame(json.loads(answer.read())["predictions"])
    assert len(predictions) == len(frame)
    np.testing.assert_allclose(predictions["probability"].to_numpy(np.float64),
                               result.bundle.probability(frame.to_numpy()), rtol=0, atol=1e-9)
    assert set(predictions["risk_class"]) <= CLASSES


def test_served_model_refuses_rows_without_its_features(served, champion_store):
    _, _, result, _ = champion_store
    request = urllib.request.Request(f"{served}/invocations", data=split_payload(result.example.iloc[:, :-1]),
                                     method="POST", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 400
    assert result.example.columns[-1] in refused.value.read().decode()


# ---------------------------------------------------------------- PostgreSQL-backed tracking server


@pytest.fixture
def postgres_schema(postgres) -> Iterator[str]:
    """A fresh schema in database ``test`` (conftest's ``postgres`` checks it is there), dropped afterwards."""
    import psycopg

    schema = f"mlflow_{uuid.uuid4().hex[:12]}"
    dsn = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(dsn, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def tracking_server(postgres_schema, tmp_path) -> Iterator[str]:
    """``MLFLOW_TRACKING_URI`` of an `mlflow server` on the schema; the variable is restored afterwards."""
    port = free_port()
    store = (f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/test"
             f"?options=-csearch_path%3D{postgres_schema}")
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    process = start([str(MLFLOW), "server", "--backend-store-uri", store,
                     "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1",
                     "--port", str(port), "--workers", "1"], env, log)
    before = os.environ.get("MLFLOW_TRACKING_URI")
    before_uris = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/health", process, log, 180)
        os.environ["MLFLOW_TRACKING_URI"] = url
        yield url
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before
        # configure_tracking pointed this process's MLflow at the server: point it back.
        mlflow.set_tracking_uri(before_uris[0])
        mlflow.set_registry_uri(before_uris[1])
        kill_process_group(process)


@pytest.mark.postgres
def test_postgres_tracking_server_registers_promotes_and_serves_the_champion(champion_store, tracking_server,
                                                                          tmp_path):
    """The session's small model (trained once, conftest's champion_store) logged to the server, promoted and
    loaded back from it: what is tested is the server's part, so the model is not trained again."""
    uri = configure_tracking(tmp_path / "unused")  # as a user would: the variable wins
    assert uri == tracking_server
    assert not (tmp_path / "unused").exists(), "nothing is written locally when a server is set"
    assert champion_bundle(MODEL_NAME) is None

    result = champion_store[2]
    settings = small_train_settings()
    registered = log_training(result, data_dir=tmp_path, experiment="dropout-risk", model_name=MODEL_NAME,
                              settings_dump=settings.model_dump(mode="json"))
    decision = promote(MODEL_NAME, settings.promotion)

    assert decision.promoted and decision.champion_before is None
    champion = MlflowClient().get_model_version_by_alias(MODEL_NAME, "champion")
    assert str(champion.version) == registered["version"] == "1"
    run = MlflowClient().get_run(registered["run_id"])
    assert run.data.tags["inputs_hash"] == result.inputs_hash
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    frame = result.example
    served = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion").predict(frame)
    np.testing.assert_array_equal(served["probability"].to_numpy(), result.bundle.probability(frame.to_numpy()))
    assert set(served["risk_class"]) <= CLASSES
    assert list((tmp_path / "artifacts").rglob("booster.txt")), "artifacts go to the server's destination"
