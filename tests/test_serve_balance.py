"""Connections spread over the workers: a worker over its fair share closes connections until it is not."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from risk.serve.balance import CONNECTIONS_STATE, ConnectionShare
from risk.serve.workers import NoDelayH11Protocol


def open_connections(share: ConnectionShare, port: int, count: int) -> list[tuple[str, int]]:
    clients = [("127.0.0.1", port + i) for i in range(count)]
    for _ in clients:
        share.opened()
    return clients


def test_a_worker_over_its_share_sheds_until_the_split_is_even(tmp_path: Path):
    first, second = ConnectionShare().join(tmp_path, 2), ConnectionShare().join(tmp_path, 2)
    on_first = open_connections(first, 40_000, 7)
    on_second = open_connections(second, 50_000, 1)
    # 8 connections, 4 each is fair: the first closes three (one response each), no more.
    assert [first.shed(c) for c in on_first] == [True, True, True, False, False, False, False]
    assert not any(second.shed(c) for c in on_second)
    assert first.shed(on_first[0]) is False  # already going: not counted twice
    for client in on_first[:3]:  # the three clients reconnect, and the other worker takes them
        first.closed(client)
    on_second += open_connections(second, 50_100, 3)
    assert not any(first.shed(c) for c in on_first[3:]) and not any(second.shed(c) for c in on_second)
    assert (first.held, second.held) == (4, 4)


def test_an_odd_total_leaves_one_worker_a_connection_more(tmp_path: Path):
    first, second = ConnectionShare().join(tmp_path, 2), ConnectionShare().join(tmp_path, 2)
    on_first = open_connections(first, 40_000, 5)
    open_connections(second, 50_000, 4)
    assert not any(first.shed(c) for c in on_first)  # 5 of 9: the fair share rounded up


def test_one_slot_per_live_worker(tmp_path: Path):
    taken = [ConnectionShare().join(tmp_path, 2) for _ in range(3)]
    extra = taken[2]
    clients = open_connections(extra, 40_000, 10)
    assert not any(extra.shed(c) for c in clients)  # no slot left: it counts, but never sheds


def test_a_single_process_service_never_sheds():
    alone = ConnectionShare()
    assert not any(alone.shed(c) for c in open_connections(alone, 40_000, 10))


def test_each_connection_counts_itself_in_the_share_its_app_gives_the_server():
    share = ConnectionShare()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict]:
        yield {CONNECTIONS_STATE: share}  # as risk.serve.app's lifespan does with Services.connections

    app = FastAPI(lifespan=lifespan)
    app.get("/")(lambda: {})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, http=NoDelayH11Protocol,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}") for _ in range(3)]
        assert all(c.get("/").status_code == 200 for c in clients)
        assert share.held == 3
        for client in clients:
            client.close()
        deadline = time.monotonic() + 5
        while share.held and time.monotonic() < deadline:
            time.sleep(0.02)
        assert share.held == 0
    finally:
        server.should_exit = True
        thread.join(timeout=10)
