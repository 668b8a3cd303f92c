"""A data folder's new MLflow store is a copy of an empty template: the same tables MLflow's migrations make.

MLflow runs ~100 schema migrations on a new SQLite store; ``configure_tracking`` runs them
once per MLflow version, into a template in the user's cache, and copies it to each new
data folder. The copy must be what MLflow itself would have made, and work as one.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from risk.models.tracking import configure_tracking


def schema(database: Path) -> set[tuple[str, str, tuple[str, ...]]]:
    """Every table, index and trigger of a SQLite file with the lines of its SQL, and the Alembic revision.

    The lines are sorted: MLflow's migrations write a table's constraints in an order that changes
    from one process to the next (two stores MLflow made itself differ so).
    """
    with sqlite3.connect(database) as con:
        rows = {(kind, name, tuple(sorted(line.strip(" ,") for line in sql.splitlines())))
                for kind, name, sql in con.execute("SELECT type, name, coalesce(sql, '') FROM sqlite_master")}
        rows |= {("revision", r, ()) for (r,) in con.execute("SELECT version_num FROM alembic_version")}
    return rows


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield tmp_path / "cache" / "risk"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # mlflow.set_tracking_uri exports it


def test_a_new_store_has_the_tables_mlflow_makes(cache, tmp_path, monkeypatch):
    own = tmp_path / "own" / "mlflow.db"
    own.parent.mkdir()
    mlflow.set_tracking_uri(f"sqlite:///{own}")
    MlflowClient().search_experiments()  # MLflow migrates an empty database itself
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    configure_tracking(tmp_path / "first")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    configure_tracking(tmp_path / "second")
    assert [p.name for p in cache.iterdir()] == [f"mlflow-{mlflow.__version__}-empty.db"]
    for folder in ("first", "second"):
        assert schema(tmp_path / folder / "mlflow.db") == schema(own)


def test_a_copied_store_records_and_registers(cache, tmp_path):
    configure_tracking(tmp_path / "data")
    client = MlflowClient()
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "auc", 0.8)
    client.create_registered_model("m")
    version = client.create_model_version("m", f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias("m", "champion", version.version)
    assert client.get_model_version_by_alias("m", "champion").run_id == run.info.run_id
    assert [e.name for e in client.search_experiments()] == ["e", "Default"]


def test_an_existing_store_is_left_as_it_is(cache, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "mlflow.db").write_bytes(b"")
    configure_tracking(folder)
    assert (folder / "mlflow.db").read_bytes() == b""
    assert not cache.exists()
