"""The two questions the service asks the MLflow registry: which version an alias names, and its files.

The files are fetched as plain artifacts (no pyfunc is loaded, no logged code
runs): the bundle's parts are the model's artifacts (:data:`risk.models.bundle.ARTIFACTS`).
"""

from __future__ import annotations

import os
from pathlib import Path

from mlflow.tracking import MlflowClient

from risk.models.tracking import bundle_files, configure_tracking

__all__ = ["RegistryClient"]


class RegistryClient:
    """Alias lookups and downloads against the tracking URI chosen by :func:`configure_tracking`."""

    def __init__(self, model_name: str, alias: str, tracking_dir: Path, *, timeout_s: float, retries: int) -> None:
        # MLflow's HTTP client reads these once per request; a dead server must fail fast.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(max(1, timeout_s))))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(retries))
        self.uri = configure_tracking(tracking_dir)
        self.model_name = model_name
        self.alias = alias

    def alias_version(self) -> str:
        """The version the alias points at now."""
        return str(MlflowClient().get_model_version_by_alias(self.model_name, self.alias).version)

    def download(self, version: str, folder: Path) -> Path:
        """Fetch the version's artifacts into ``folder``; returns the folder holding the bundle's files."""
        return bundle_files(f"models:/{self.model_name}/{version}", folder)
