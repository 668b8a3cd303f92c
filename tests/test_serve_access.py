"""The rate limiter: a token bucket per key, one bucket however many processes share the file."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from risk.serve.access import RateLimiter


class Clock:
    """A clock the test moves by hand (seconds; binary fractions, so the sums are exact)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_key_gets_its_burst_then_waits_for_the_refill():
    clock = Clock()
    limiter = RateLimiter(per_second=4, burst=3, clock=clock)
    assert [limiter.allow("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.allow("a") == 0.25  # a whole token takes 0.25 s at 4 a second
    clock.now = 0.125
    assert limiter.allow("a") == 0.125  # half a token refilled: half the wait left
    clock.now = 0.25
    assert limiter.allow("a") == 0.0  # the refilled token
    assert limiter.allow("a") == 0.25
    assert limiter.allow("b") == 0.0  # another key has its own bucket


def _take(path: str, burst: int, n: int, out: multiprocessing.Queue) -> None:
    limiter = RateLimiter(per_second=0.001, burst=burst, shared=Path(path))
    out.put(sum(limiter.allow("upstream-1") == 0.0 for _ in range(n)))


def _two_workers_take(bucket: Path, burst: int, each: int) -> list[int]:
    """Two spawned processes ask ``each`` tokens of one key's shared bucket; how many each got."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    workers = [context.Process(target=_take, args=(str(bucket), burst, each, out)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return [out.get(timeout=10), out.get(timeout=10)]


def test_worker_processes_sharing_the_file_share_each_keys_bucket(tmp_path):
    # Two processes take 4 tokens each from one bucket of 5: together they get 5, not 8.
    assert sorted(_two_workers_take(tmp_path / "buckets.sqlite", 5, 4)) in ([1, 4], [2, 3])


def test_leased_tokens_never_let_the_workers_past_the_shared_burst(tmp_path):
    # Two processes ask 80 each of a bucket of 100, 5 tokens a lease: together they get the 100,
    # less what one may still hold unspent at its end (under a lease), never more.
    got = _two_workers_take(tmp_path / "buckets.sqlite", 100, 80)
    assert 100 - 5 < sum(got) <= 100 and min(got) > 100 - 80 - 5


def test_a_lease_is_taken_from_the_bucket_at_once_and_dropped_when_stale(tmp_path):
    shared = tmp_path / "buckets.sqlite"
    first = RateLimiter(per_second=0.001, burst=10, shared=shared, lease=5)
    assert first.allow("k") == 0.0  # one spent, four in hand: the file holds 5
    other = RateLimiter(per_second=0.001, burst=10, shared=shared, lease=5)
    assert [other.allow("k") for _ in range(5)] == [0.0] * 5 and other.allow("k") > 0  # the file's 5, no more
    assert [first.allow("k") for _ in range(4)] == [0.0] * 4 and first.allow("k") > 0  # its own four
    clock = Clock()
    stale = RateLimiter(per_second=0.001, burst=10, lease=5, lease_s=1.0, clock=clock)
    assert stale.allow("k") == 0.0
    clock.now = 2.0  # the four in hand are a second stale
    assert stale.allow("k") == 0.0  # a new lease: the four dropped
    clock.now = 4.0  # and these four too
    assert stale.allow("k") > 0  # stricter, never looser: 2 of 10 used and the bucket is empty


def test_the_leases_in_hand_stay_bounded_however_many_keys_call():
    limiter = RateLimiter(per_second=1000, burst=100)
    assert all(limiter.allow(f"key-{i}") == 0.0 for i in range(25_000))
    assert len(limiter._leased) < 10_000


def test_scrub_masks_an_id_written_whole_or_in_groups_and_leaves_school_ids_and_dates():
    from risk.serve.access import scrub

    assert scrub("id 1103700123458 here") == "id •••••••••3458 here"
    assert scrub("id 1-1037-00123-45-8 here") == "id •••••••••••••45-8 here"  # the way Thai IDs are printed
    assert scrub("G123456789012") == "G••••••••9012"
    assert scrub("school 1040100001 on 2026-07-24") == "school 1040100001 on 2026-07-24"
