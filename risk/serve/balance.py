"""Keep-alive connections spread evenly over the worker processes of one ``risk serve``.

The workers share one listening socket, and a connection stays with the worker that
accepted it. Upstream systems keep a few connections open and reuse them, so a split
decided in the first milliseconds (7 to 1 on two workers has been seen) holds for as
long as they stay open: one worker saturated, the other idle (p99 at 8 clients 23 ms
split 4/4, 56 ms split 7/1).

Each worker publishes how many connections it holds in a file the workers share, one
slot each. A worker holding more than its fair share (the total over the workers,
rounded up) answers its next request on a connection with ``Connection: close``; the
client opens a new one, which any worker may accept, and the shedding stops once the
split is even. A balanced service never closes a connection.

Each app has one share (``Services.connections``): its middleware reads it, and its lifespan hands
it to the server under ``CONNECTIONS_STATE``, where each connection's protocol counts itself in and
out (:class:`risk.serve.workers.NoDelayH11Protocol`).
"""

from __future__ import annotations

import fcntl
import math
import mmap
import os
import struct
from pathlib import Path
from typing import IO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from risk.logs import get_logger

__all__ = ["CONNECTIONS_STATE", "BalanceConnections", "ConnectionShare"]

log = get_logger(__name__)
# The key of the app's share in the lifespan state the server gives each connection.
CONNECTIONS_STATE = "risk_connection_share"
_SLOT = struct.Struct("q")
Client = tuple[str, int]


class ConnectionShare:
    """This worker's open connections, its slot in the shared count, and whom to shed.

    Disabled (counts kept, nothing shared, never sheds) until :meth:`join` gives it the
    shared folder and the number of workers.
    """

    def __init__(self) -> None:
        self.held = 0
        self._shedding: set[Client] = set()
        self._workers = 0
        self._slot: int | None = None
        self._map: mmap.mmap | None = None
        self._lock: IO[bytes] | None = None

    def join(self, folder: Path, workers: int) -> ConnectionShare:
        """Take a free slot in ``folder`` (one lock file per slot, held while the process lives)."""
        path = folder / "connections"
        with path.open("a+b") as counts:  # every worker makes sure the file is long enough, none shrinks it
            if os.fstat(counts.fileno()).st_size < workers * _SLOT.size:
                counts.truncate(workers * _SLOT.size)
        for slot in range(workers):
            lock = (folder / f"connections-slot-{slot}").open("a+b")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another live worker's slot
                lock.close()
                continue
            with path.open("r+b") as counts:
                self._map = mmap.mmap(counts.fileno(), workers * _SLOT.size)
            self._lock, self._slot, self._workers = lock, slot, workers
            self._publish()
            return self
        log.warning("no free connection slot: this worker does not take part in balancing", workers=workers)
        return self

    def opened(self) -> None:
        self.held += 1
        self._publish()

    def closed(self, client: Client | None) -> None:
        self.held -= 1
        self._shedding.discard(client)  # type: ignore[arg-type]
        self._publish()

    def shed(self, client: Client) -> bool:
        """True when this connection should be closed after its response (and it is counted as going)."""
        if self._map is None or client in self._shedding:
            return False
        total = sum(_SLOT.unpack_from(self._map, i * _SLOT.size)[0] for i in range(self._workers))
        if self.held - len(self._shedding) <= math.ceil(total / self._workers):
            return False
        self._shedding.add(client)
        return True

    def _publish(self) -> None:
        if self._map is not None:  # set with the slot by join
            _SLOT.pack_into(self._map, self._slot * _SLOT.size, self.held)  # type: ignore[operator]


class BalanceConnections:
    """ASGI middleware: ``Connection: close`` on a response when ``share`` says this worker holds too many."""

    def __init__(self, app: ASGIApp, share: ConnectionShare) -> None:
        self.app = app
        self.share = share

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] != "http" or not client or not self.share.shed(tuple(client)):
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)
