"""One writer per folder: an advisory lock file that names its holder."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["folder_lock"]


@contextmanager
def folder_lock(folder: Path, name: str, busy: Callable[[str], Exception]) -> Iterator[None]:
    """Hold ``folder/name`` while the block runs; when another process holds it, raise ``busy(holder)``.

    ``holder`` reads like "pid 4242 since 2026-11-26T13:05:00". The lock goes with the
    process, so a killed run never leaves the folder locked.
    """
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / name).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise busy(holder) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} since {dt.datetime.now().isoformat(timespec='seconds')}")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
