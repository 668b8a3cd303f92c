"""The model the service scores with: loaded from the registry, cached locally, swapped atomically.

At start the holder asks the MLflow registry for the alias it serves (``champion``)
and keeps each accepted version as a plain bundle folder under
``<cache>/<version>/`` (:meth:`ModelBundle.save`), with ``<cache>/SERVING``
naming the last one. When MLflow cannot be reached it starts from that folder.
A thread then polls the registry; a new version is loaded, checked (its feature
catalog must be the service's, its model must answer) and swapped in under a
lock. A request takes :attr:`ModelHolder.current` once and keeps that model to
the end, so a swap never changes a model under a running request. A model that
fails its checks is refused: the running one stays, a log line says why and
``risk_model_refused_total`` counts it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mlflow.exceptions import MlflowException

from risk.errors import RiskError
from risk.features.catalog import Catalog
from risk.logs import get_logger
from risk.models.bundle import ModelBundle

__all__ = ["LoadedModel", "ModelHolder", "ModelRefused"]

log = get_logger(__name__)
POINTER = "SERVING"


class ModelRefused(RiskError):
    """A model version cannot be served (unreadable, or built for other features)."""


@dataclass(frozen=True)
class LoadedModel:
    """A model in service: its registry version, its bundle, and where it came from (registry or cache)."""

    version: str
    bundle: ModelBundle
    source: str


class ModelHolder:
    """Holds the serving model; :meth:`start` once, then :meth:`refresh` on an interval (or :meth:`poll_forever`).

    Parameters
    ----------
    registry : callable
        ``alias_version()`` → the version the alias points at now (raises when MLflow is down).
    download : callable
        ``download(version, folder)`` → the folder holding that version's bundle files.
    catalog : Catalog
        The feature catalog the service builds vectors with; a model must match it.
    cache_dir : Path
        Where accepted bundles are kept.
    on_refused, on_swap : callable, optional
        Told the version (and reason) of each refusal and each swap (metrics).
    """

    def __init__(self, *, registry: Callable[[], str], download: Callable[[str, Path], Path], catalog: Catalog,
                 cache_dir: Path, on_refused: Callable[[str, str], None] | None = None,
                 on_swap: Callable[[LoadedModel], None] | None = None) -> None:
        self.registry = registry
        self.download = download
        self.catalog = catalog
        self.cache_dir = cache_dir
        self.on_refused = on_refused or (lambda version, reason: None)
        self.on_swap = on_swap or (lambda model: None)
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()
        self._refused: set[str] = set()

    @property
    def current(self) -> LoadedModel | None:
        """The model to score with now (None before any model could be loaded)."""
        return self._current

    def start(self) -> LoadedModel | None:
        """Load the registry's model, else the cached one; None when neither is there (the service is not ready)."""
        try:
            if self.refresh():
                return self._current
        except (MlflowException, OSError, RiskError) as exc:
            log.warning("model registry unreachable at start; trying the local cache", reason=_short(exc))
        cached = self._cached_version()
        if cached is not None and self._current is None:
            try:
                self._swap(LoadedModel(cached, self._accept(cached, self.cache_dir / cached), "cache"))
            except ModelRefused as exc:
                log.error("cached model refused", version=cached, reason=str(exc))
                self.on_refused(cached, "cache")
        return self._current

    def refresh(self) -> bool:
        """Ask the registry once; load, check and swap in a new version. True when a model is serving after.

        Raises the registry's error when MLflow cannot be reached (the caller logs and retries).
        """
        version = str(self.registry())
        running = self._current
        if (running is not None and running.version == version) or version in self._refused:
            return running is not None
        folder = self.cache_dir / version
        try:
            if not (folder / "meta.json").exists():
                with tempfile.TemporaryDirectory(dir=_ensure(self.cache_dir)) as tmp:
                    bundle = self._accept(version, self.download(version, Path(tmp)))
                    self._keep(version, bundle)
            else:
                bundle = self._accept(version, folder)
        except ModelRefused as exc:
            self._refused.add(version)
            self.on_refused(version, "refused")
            log.error("new model refused; the running one stays", version=version,
                      running=running.version if running else None, reason=str(exc))
            return running is not None
        self._swap(LoadedModel(version, bundle, "registry"))
        return True

    def poll_forever(self, stop: threading.Event, seconds: float) -> None:
        """Call :meth:`refresh` every ``seconds`` until ``stop`` is set; errors are logged, never raised."""
        while not stop.wait(seconds):
            try:
                self.refresh()
            except (MlflowException, OSError, RiskError) as exc:
                log.warning("model registry unreachable; keeping the running model", reason=_short(exc))
            except Exception as exc:  # noqa: BLE001  (a poll must never end the thread that keeps the service current)
                log.error("model poll failed", error=type(exc).__name__, reason=_short(exc))

    def _accept(self, version: str, folder: Path) -> ModelBundle:
        """The bundle in ``folder`` when it can serve: readable, the service's catalog, a model that scores and
        explains (a failing model raises a ModelError, a RiskError)."""
        try:
            bundle = ModelBundle.load(folder)
            bundle.check_catalog(self.catalog)
            probe = np.full((2, len(bundle.names)), np.nan)
            probability, codes, _ = bundle.classify(probe)
            bundle.contributions(probe)
        except (RiskError, ValueError, KeyError, IndexError, OSError) as exc:
            raise ModelRefused(f"model version {version}: {_short(exc)}") from exc
        if not (np.isfinite(probability).all() and ((probability >= 0) & (probability <= 1)).all()):
            raise ModelRefused(f"model version {version}: its probabilities are not between 0 and 1")
        return bundle

    def _keep(self, version: str, bundle: ModelBundle) -> None:
        """Write the bundle to ``<cache>/<version>`` (whole or not at all)."""
        target = self.cache_dir / version
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=_ensure(self.cache_dir)))
        bundle.save(staging)
        try:
            os.replace(staging, target)
        except OSError:  # already there (another worker process kept it first): theirs is the same files
            shutil.rmtree(staging, ignore_errors=True)
            if not (target / "meta.json").exists():
                raise

    def _swap(self, model: LoadedModel) -> None:
        with self._lock:
            previous = self._current
            self._current = model
            pointer = _ensure(self.cache_dir) / POINTER
            # A temporary name of this process's own: the service's workers share the cache.
            fd, tmp = tempfile.mkstemp(prefix=f".{POINTER}-", dir=self.cache_dir)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(model.version)
            os.replace(tmp, pointer)
        self.on_swap(model)
        log.info("model in service", version=model.version, source=model.source,
                 previous=previous.version if previous else None)

    def _cached_version(self) -> str | None:
        pointer = self.cache_dir / POINTER
        if not pointer.exists():
            return None
        version = pointer.read_text(encoding="utf-8").strip()
        return version if (self.cache_dir / version / "meta.json").exists() else None


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# user:password@ in a URL (an MLflow tracking URI may carry one): never into a log line.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*):[^@\s]*@")


def _short(exc: BaseException) -> str:
    """The first line of the error, at most 300 characters, with any URL password masked."""
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return _URL_PASSWORD.sub(r"\1:***@", text.strip().splitlines()[0])[:300]
