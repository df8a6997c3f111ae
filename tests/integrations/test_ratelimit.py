"""The token bucket holds across processes: three processes sharing one account's bucket never
start more than burst + rate * W calls in any window of W seconds (Redis bucket when the broker is
Redis, the locked file otherwise)."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from integrations.ratelimit import TokenBucket, account_key

RATE, BURST, PER_PROCESS, PROCESSES = 20.0, 3, 12, 3


def _take(key: str, out) -> None:
    bucket = TokenBucket(key=key, rate=RATE, burst=BURST)
    for _ in range(PER_PROCESS):
        bucket.acquire()
        out.put(time.time())


def _max_in_window(times: list[float], window: float) -> int:
    best, j = 0, 0
    for i in range(len(times)):
        while times[i] - times[j] > window:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_shared_bucket_across_processes():
    key = account_key(kind="test", api_base=f"http://x/{time.time()}", credentials={"t": 1})
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_take, args=(key, out)) for _ in range(PROCESSES)]
    started = time.monotonic()
    for p in procs:
        p.start()
    times = sorted(out.get(timeout=60) for _ in range(PER_PROCESS * PROCESSES))
    for p in procs:
        p.join(timeout=10)
    elapsed = time.monotonic() - started
    total = PER_PROCESS * PROCESSES
    assert elapsed >= (total - BURST) / RATE * 0.9  # the limit really held them back
    for window in (0.25, 0.5, 1.0):
        # +1: a timestamp is taken after the token, so two calls can look a little closer than they were
        assert _max_in_window(times, window) <= BURST + RATE * window + 1, window


def test_bucket_refuses_nonsense():
    with pytest.raises(ValueError):
        TokenBucket(key="k", rate=0, burst=1)
