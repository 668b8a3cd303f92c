"""The validated store across runs: what it holds, how one run's files join it, and who may write.

A store is the folder ``risk validate`` writes into::

    <table>/part-<batch>.parquet                  reference tables (schools, calendar); a school's
                                                  versions beside each other (valid_from)
    <table>/bucket=N/part-<batch>-0.parquet       student tables (attendance also /term=T/)
    quarantine/<table>/<batch>-*.parquet          rejected rows of every run
    validation_runs/<batch>.json                  one report per run: what it read, used, quarantined
    validation_report.json                        the cumulative state of the tables (every run that added rows)
    store.json                                    manifest: buckets, key check, exports taken (content hash → batch)
    _derived/                                     caches computed from the tables; cleared when the tables change
    failed_runs/<batch>/                          a run a data error stopped: report.json, quarantine/<table>/

Each run (a *batch*) writes only new files, first under ``_incoming/<batch>/``. When
every table is done it writes ``_incoming/<batch>/commit.json``, then moves its files
into place. A run killed before that record leaves nothing (the next run removes its
folder); killed after it, the next run finishes the moves. So no table ever holds
part of a run, and earlier files are never rewritten. A run stopped by a data error
(:mod:`risk.data.loss`) publishes nothing either; what it rejected and why stay in
``failed_runs/<batch>/``, which no later run or ``--replace`` removes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from risk.data.contract import TABLE_ORDER
from risk.errors import RiskError
from risk.locks import folder_lock

__all__ = [
    "COMMIT_FILE", "DERIVED", "INCOMING", "MANIFEST", "QUARANTINE", "REPORT_FILE", "RUNS",
    "StoreBusyError", "StoreManifest", "StoreMismatchError", "clear_store", "export_hash", "key_check",
    "locked", "new_batch_id", "publish", "read_manifest", "recover",
]

DERIVED = "_derived"
QUARANTINE = "quarantine"
REPORT_FILE = "validation_report.json"
RUNS = "validation_runs"
MANIFEST = "store.json"
INCOMING = "_incoming"
COMMIT_FILE = "commit.json"
LOCK_FILE = ".validate.lock"
# Folders of a store that validation owns (and --replace removes); anything else in OUT is left alone.
_OWNED = (*TABLE_ORDER, QUARANTINE, RUNS, DERIVED, INCOMING, "_staging", "_duckdb_tmp")
_OWNED_FILES = (REPORT_FILE, MANIFEST)


class StoreBusyError(RiskError):
    """Another process is validating into the same store."""


class StoreMismatchError(RiskError):
    """The store cannot take this run (another pseudonym key, an older layout)."""


class StoreManifest(BaseModel):
    """``store.json``: what every later run must agree with."""

    model_config = ConfigDict(extra="forbid")

    format: int = 1
    buckets: int
    # A pseudonym of a fixed text: equal only under the same key, and it reveals nothing about it.
    key_check: str
    # Content hash of each export taken → the batch that took it.
    exports: dict[str, str] = {}


def key_check(key: bytes) -> str:
    return hmac.digest(key, b"risk validated store", hashlib.sha256)[:8].hex()


def read_manifest(out_dir: Path, *, key: bytes) -> StoreManifest | None:
    """The store's manifest, or None when ``out_dir`` holds no store yet.

    Raises
    ------
    StoreMismatchError
        When ``out_dir`` was validated with another pseudonym key, or by a risk without a manifest.
    """
    path = out_dir / MANIFEST
    if not path.exists():
        if (out_dir / REPORT_FILE).exists():
            raise StoreMismatchError(
                f"{out_dir} holds tables validated by an older risk (no {MANIFEST}); "
                "validate again with --replace to start a store there")
        return None
    manifest = StoreManifest.model_validate_json(path.read_text())
    if manifest.key_check != key_check(key):
        raise StoreMismatchError(
            f"{out_dir} was validated with another pseudonym key, so its pseudonyms would not match this run's; "
            "use the same RISK_ID_KEY, or --replace to start again")
    return manifest


def export_hash(files: list[Path], root: Path, reading: str = "") -> str:
    """A content hash of an export: every table file's path (relative to ``root``), size and bytes.

    ``reading`` (the source profile, as text) is part of it: the same files read through
    another profile are another export.
    """
    digest = hashlib.blake2b(digest_size=16)
    if reading:
        digest.update(f"profile\0{reading}\0".encode())
    for path in sorted(files):
        digest.update(f"{path.relative_to(root)}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "blake2b").digest())
    return digest.hexdigest()


def new_batch_id(content: str, now: dt.datetime | None = None) -> str:
    """``20250611T093012-1a2b3c4d``: sorts in run order, names the export it took."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%S}-{content[:8]}"


def locked(out_dir: Path) -> contextlib.AbstractContextManager[None]:
    """Hold the store's lock for the duration; a second writer gets a clear error, not a broken store."""
    return folder_lock(out_dir, LOCK_FILE, lambda holder: StoreBusyError(
        f"{out_dir} is being validated by {holder}; wait for it to finish"))


def clear_store(out_dir: Path) -> None:
    """Remove everything validation wrote in ``out_dir`` (for --replace); other files stay."""
    for name in _OWNED:
        shutil.rmtree(out_dir / name, ignore_errors=True)
    for name in _OWNED_FILES:
        (out_dir / name).unlink(missing_ok=True)


def recover(out_dir: Path) -> list[str]:
    """Finish the runs that committed but were stopped while publishing; drop those that did not commit.

    Returns the batches that were finished.
    """
    incoming = out_dir / INCOMING
    finished = []
    for folder in sorted(incoming.iterdir()) if incoming.is_dir() else []:
        if (folder / COMMIT_FILE).exists():
            publish(out_dir, folder.name)
            finished.append(folder.name)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return finished


def publish(out_dir: Path, batch: str) -> None:
    """Move a committed run's files into the store, then its reports and manifest. Safe to repeat."""
    folder = out_dir / INCOMING / batch
    commit = json.loads((folder / COMMIT_FILE).read_text())
    for path in sorted(folder.rglob("*.parquet")):
        target = out_dir / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    if commit["changed"]:
        # Caches keyed by term alone (past dropout rates) no longer hold. Feature points are
        # keyed by the files that can touch their date (risk.features.cache), so they stay: a new
        # school version's file is dated by its valid_from, so only points after it move.
        for cache in (out_dir / DERIVED).glob("*"):
            if cache.name != "features":
                shutil.rmtree(cache, ignore_errors=True)
        _write_atomic(out_dir / REPORT_FILE, commit["cumulative"])
    (out_dir / RUNS).mkdir(exist_ok=True)
    _write_atomic(out_dir / RUNS / f"{batch}.json", commit["run"])
    _write_atomic(out_dir / MANIFEST, commit["manifest"])
    shutil.rmtree(folder)


def write_commit(out_dir: Path, batch: str, *, run: dict, cumulative: dict, manifest: StoreManifest,
                 changed: bool) -> None:
    """The record after which a run counts as done: from here on it is published, even after a crash."""
    record = {"run": run, "cumulative": cumulative, "manifest": manifest.model_dump(), "changed": changed}
    _write_atomic(out_dir / INCOMING / batch / COMMIT_FILE, record)


def _write_atomic(path: Path, payload: dict) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    os.replace(temporary, path)
