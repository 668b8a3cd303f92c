"""Expensive states built once and copied to each module that changes them.

The synthetic world and the model trained on it are the same files in every xdist worker, so they are built
once per session (:func:`built_by_one_worker`) and each worker takes a copy.

The service modules each need a store scored by the batch scorer and an MLflow registry of their own
(they create keys, acknowledge alerts, swap the champion). Scoring the world and logging the model twice
gave the same files in every module, so they are made once per process (one per xdist worker) and each
module gets a copy: its own files to change, none of the work repeated.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

_BUILT: dict[tuple[str, str], Path] = {}


def shared_root(factory: pytest.TempPathFactory) -> Path:
    """The folder every xdist worker of this session sees (the session's own temporary folder without xdist)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_by_one_worker(name: str, factory: pytest.TempPathFactory, build: Callable[[Path], None]) -> Path:
    """The folder ``build`` filled for ``name`` in this session: the first xdist worker to ask builds it under a
    file lock in the folder the workers share, the others wait for it and get the same folder.

    Read it, never change it: every worker sees the same files. A worker that needs its own copy takes one.
    A build that raises leaves no folder behind, and the next worker to ask builds again.
    """
    root = shared_root(factory)
    folder = root / f"shared-{name}"
    with (root / f"shared-{name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other workers wait here while the first one builds
        if not (root / f"shared-{name}.done").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (root / f"shared-{name}.done").touch()
    return folder


def _once(kind: str, source: Path, factory: pytest.TempPathFactory, build: Callable[[Path], None]) -> Path:
    """The folder ``build`` filled for ``(kind, source)`` in this process, built on the first call."""
    key = (kind, str(source))
    if key not in _BUILT:
        folder = factory.mktemp(f"once-{kind}")
        build(folder)
        _BUILT[key] = folder
    return _BUILT[key]


def _copy(template: Path, factory: pytest.TempPathFactory, name: str) -> Path:
    folder = factory.mktemp(name)
    shutil.copytree(template, folder, dirs_exist_ok=True)
    return folder


def scored_copy(world: Path, champion: tuple, as_of: dt.date, factory: pytest.TempPathFactory,
                name: str) -> Path:
    """A folder of this module's own holding ``risk.db`` (the champion's scoring run of ``world`` at ``as_of``,
    with its alerts), ``scores.parquet`` (the scores the run wrote) and ``report.json`` (its ScoreReport)."""
    from conftest import MODEL_NAME

    from risk.config import load_settings
    from risk.scoring.batch import score_students
    from risk.scoring.settings import load_scoring_settings
    from risk.store import open_store

    _, version, bundle = champion

    def build(folder: Path) -> None:
        store = open_store(f"sqlite:///{folder / 'risk.db'}")
        try:
            report = score_students(world / "validated", as_of, bundle=bundle, model_name=MODEL_NAME, model_version=version,
                           store=store, out=folder / "scores.parquet", settings=load_settings(),
                           scoring=load_scoring_settings(), progress=False)
            (folder / "report.json").write_text(report.model_dump_json(), encoding="utf-8")
        finally:
            store.close()

    return _copy(_once(f"scored-{as_of}", world, factory, build), factory, name)


def scored_report(folder: Path):
    """The ScoreReport of the run in a :func:`scored_copy` folder."""
    from risk.scoring.batch import ScoreReport

    return ScoreReport.model_validate_json((folder / "report.json").read_text(encoding="utf-8"))


def registry_copy(champion_store: tuple, factory: pytest.TempPathFactory, name: str) -> Path:
    """An MLflow home of this module's own (``mlflow.db``): the session's model logged as versions 1 and 2,
    champion → 1. The copies share the template's artifacts, which no test changes."""
    import mlflow
    from conftest import MODEL_NAME, small_train_settings
    from mlflow.tracking import MlflowClient

    from risk.models.tracking import log_training

    shared_uri, result = champion_store[1], champion_store[2]

    def build(home: Path) -> None:
        ours = f"sqlite:///{home.resolve() / 'mlflow.db'}"
        # MLflow keeps its URI in MLFLOW_TRACKING_URI too; point both at our store, then back.
        saved = os.environ.get("MLFLOW_TRACKING_URI")
        os.environ["MLFLOW_TRACKING_URI"] = ours
        mlflow.set_tracking_uri(ours)
        mlflow.set_registry_uri(ours)
        try:
            dump = small_train_settings().model_dump(mode="json")
            for _ in range(2):
                log_training(result, data_dir=home, experiment="serve-test", model_name=MODEL_NAME,
                             settings_dump=dump)
            MlflowClient().set_registered_model_alias(MODEL_NAME, "champion", "1")
        finally:
            if saved is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = saved
            mlflow.set_tracking_uri(shared_uri)
            mlflow.set_registry_uri(shared_uri)

    return _copy(_once("registry", Path(shared_uri), factory, build), factory, name)
