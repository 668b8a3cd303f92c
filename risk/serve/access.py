"""Who may call, how often, and the record of what they read.

- :class:`KeyCache`: API keys looked up by token hash, remembered briefly so a
  request does not hit the database (a revocation takes effect within the TTL);
- :class:`RateLimiter`: a token bucket per key, shared by the service's worker processes;
- :class:`AuditTrail`: audit entries queued and written by a background thread
  in small transactions, or written at once when the caller must not go on
  before the read is on record;
- :func:`scrub`: masks anything that looks like a student ID in text going out.
"""

from __future__ import annotations

import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from risk.errors import RiskError
from risk.logs import get_logger
from risk.store import AuditRecord, KeyRecord, Store, find_key, write_audit
from risk.store.keys import token_hash

__all__ = ["AuditTrail", "KeyCache", "RateLimiter", "scrub"]

log = get_logger(__name__)
# A Thai ID has 13 digits, a G-code 12 after its letter; school ids have 10 and may be shown.
# People also write an ID in groups with dashes (1-1037-00123-45-3): a run may have them.
_ID_LIKE = re.compile(r"\d(?:-?\d){10,}")


def scrub(text: str) -> str:
    """``text`` with every run of 11+ digits (dashes between them allowed) masked to its last four."""
    return _ID_LIKE.sub(lambda m: "•" * (len(m.group()) - 4) + m.group()[-4:], text)


class KeyCache:
    """Token → active key, via the store, remembered for ``ttl_s`` seconds (misses too)."""

    def __init__(self, store: Store, ttl_s: float) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._seen: dict[str, tuple[float, KeyRecord | None]] = {}
        self._lock = threading.Lock()

    def active(self, token: str) -> KeyRecord | None:
        """The key of ``token`` when it exists and is not revoked, else None."""
        digest = token_hash(token)
        now = time.monotonic()
        hit = self._seen.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        record = find_key(self.store, token)
        record = record if record is not None and record.active else None
        if self.ttl_s > 0:
            with self._lock:
                if len(self._seen) > 10_000:  # a flood of wrong tokens must not grow memory without end
                    self._seen.clear()
                self._seen[digest] = (now + self.ttl_s, record)
        return record


# One statement per lease: refill by the time since the last one, take as many whole tokens as
# are there, up to the lease (CAST truncates: the tokens are never negative, so it is floor).
# Every right-hand side reads the row as it was, so ``taken`` and ``tokens`` agree.
_TAKE = """
INSERT INTO buckets (key_id, tokens, updated, taken) VALUES (:key, :burst - :lease, :now, :lease)
ON CONFLICT (key_id) DO UPDATE SET
    taken = min(:lease, CAST(min(:burst, tokens + max(0, :now - updated) * :rate) AS INTEGER)),
    tokens = min(:burst, tokens + max(0, :now - updated) * :rate)
             - min(:lease, CAST(min(:burst, tokens + max(0, :now - updated) * :rate) AS INTEGER)),
    updated = max(updated, :now)
RETURNING taken, tokens
"""


class RateLimiter:
    """A token bucket per key id: ``per_second`` refill, ``burst`` capacity.

    The buckets live in SQLite: in memory for one process, or in the file ``shared``
    that every worker process of one service opens, so a key's limit holds however
    its requests are spread over the workers. A process takes up to ``lease`` tokens
    at a time (default a twentieth of the burst) and spends them from memory, so the
    file is written once in ``lease`` requests instead of every time: a write in each
    of ~300 requests a second per worker cost ~0.2 ms of a ~3 ms request and made the
    workers queue for the file's lock. Tokens unspent for ``lease_s`` are dropped,
    never returned: a lease can make the limit stricter by a few tokens, never looser.
    """

    def __init__(self, per_second: float, burst: int, shared: Path | None = None, *, lease: int | None = None,
                 lease_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        # Seconds from any fixed origin; CLOCK_MONOTONIC is one clock for every process of the machine,
        # which the shared file needs. A test passes its own clock to see the refill without waiting.
        self.clock = clock
        self.burst = burst
        self.lease = max(1, burst // 20) if lease is None else max(1, min(lease, burst))
        self.lease_s = lease_s
        self._leased: dict[str, tuple[int, float]] = {}  # key id → (tokens in hand, when they were taken)
        self._db = sqlite3.connect(str(shared) if shared else ":memory:", timeout=10, isolation_level=None,
                                   check_same_thread=False)
        if shared:
            self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = OFF")  # a lost bucket after a crash only forgives a few requests
        self._db.execute("CREATE TABLE IF NOT EXISTS buckets (key_id TEXT PRIMARY KEY, tokens REAL NOT NULL, "
                         "updated REAL NOT NULL, taken INTEGER NOT NULL)")
        self._lock = threading.Lock()

    def allow(self, key_id: str) -> float:
        """0.0 when the request may go on (a token is taken), else the seconds until one is free."""
        now = self.clock()
        with self._lock:
            held, since = self._leased.get(key_id, (0, now))
            if held and now - since <= self.lease_s:
                self._leased[key_id] = (held - 1, since)
                return 0.0
            taken, tokens = self._db.execute(_TAKE, {"key": key_id, "burst": float(self.burst), "now": now,
                                                     "rate": self.per_second, "lease": self.lease}).fetchone()
            if taken:
                if len(self._leased) >= 10_000:  # an entry per key seen, bounded: dropping one only forgoes tokens
                    fresh = {k: v for k, v in self._leased.items() if now - v[1] <= self.lease_s}
                    self._leased = fresh if len(fresh) < 5_000 else {}
                self._leased[key_id] = (taken - 1, now)
                return 0.0
        return (1.0 - tokens) / self.per_second


class AuditTrail:
    """Audit entries to the store: :meth:`now` writes before returning, :meth:`later` within ``flush_s``."""

    def __init__(self, store: Store, flush_s: float = 0.2) -> None:
        self.store = store
        self.flush_s = flush_s
        self._queue: queue.Queue[AuditRecord] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)

    def start(self) -> AuditTrail:
        self._thread.start()
        return self

    def now(self, *records: AuditRecord) -> None:
        """Write the entries in one transaction (a StoreError reaches the caller: no record, no read)."""
        write_audit(self.store, list(records))

    def later(self, *records: AuditRecord) -> None:
        for record in records:
            self._queue.put(record)

    def flush(self) -> int:
        """Write whatever is queued; returns how many entries were written."""
        batch: list[AuditRecord] = []
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        try:
            return write_audit(self.store, batch)
        except RiskError as exc:
            for record in batch:  # kept for the next try: the log must not lose entries
                self._queue.put(record)
            log.error("audit entries not written yet", entries=len(batch), reason=str(exc))
            return 0

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()
