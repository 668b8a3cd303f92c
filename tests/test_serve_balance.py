"""Connections spread over the workers: a worker over its fair share closes connections until it is not."""

from __future__ import annotations

from pathlib import Path

from risk.serve.balance import ConnectionShare


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
