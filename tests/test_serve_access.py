"""The rate limiter: a token bucket per key, one bucket however many processes share the file."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from risk.serve.access import RateLimiter


def test_a_key_gets_its_burst_then_waits_for_the_refill():
    limiter = RateLimiter(per_second=10, burst=3)
    assert [limiter.allow("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.allow("a")
    assert 0.05 < wait <= 0.1  # a whole token takes 0.1 s at 10 a second
    assert limiter.allow("b") == 0.0  # another key has its own bucket


def _take(path: str, n: int, out: multiprocessing.Queue) -> None:
    limiter = RateLimiter(per_second=0.001, burst=5, shared=Path(path))
    out.put(sum(limiter.allow("upstream-1") == 0.0 for _ in range(n)))


def test_worker_processes_sharing_the_file_share_each_keys_bucket(tmp_path):
    # Two processes take 4 tokens each from one bucket of 5: together they get 5, not 8.
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    workers = [context.Process(target=_take, args=(str(tmp_path / "buckets.sqlite"), 4, out)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert sorted([out.get(timeout=10), out.get(timeout=10)]) in ([1, 4], [2, 3])
