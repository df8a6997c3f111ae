"""A token bucket per destination account, shared by every worker process.

Redis (one Lua script, atomic, clocked by the Redis server) when INTEGRATIONS_RATE_LIMIT_REDIS_URL
or a redis:// broker is configured; otherwise a file under VAR_DIR locked with fcntl, which holds
across the processes of one machine (the embedded default runs on one machine). The bucket holds at
most `burst` tokens and refills at `rate` per second, so in any interval of T seconds at most
burst + rate * T calls start: the figure the benchmark checks.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from pathlib import Path

from django.conf import settings

_LUA = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate)
local wait = 0
if tokens >= want then
  tokens = tokens - want
else
  wait = (want - tokens) / rate
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', key, math.ceil(burst / rate) + 60)
return tostring(wait)
"""


def account_key(*, kind: str, api_base: str, credentials: dict) -> str:
    """Destinations on the same account (same kind, endpoint and credentials) share one bucket."""
    digest = hashlib.sha256(json.dumps([kind, api_base, credentials], sort_keys=True).encode()).hexdigest()
    return f"{kind}:{digest[:24]}"


def _redis_url() -> str | None:
    url = getattr(settings, "INTEGRATIONS_RATE_LIMIT_REDIS_URL", "") or ""
    if not url and str(settings.CELERY_BROKER_URL).startswith(("redis://", "rediss://")):
        url = settings.CELERY_BROKER_URL
    return url or None


class TokenBucket:
    """`acquire(n)` blocks until n tokens are taken from the shared bucket `key`."""

    def __init__(self, *, key: str, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.key, self.rate, self.burst = key, float(rate), int(burst)
        self.waited = 0.0
        url = _redis_url()
        if url:
            import redis

            self._redis = redis.Redis.from_url(url)
            self._script = self._redis.register_script(_LUA)
        else:
            self._redis = None
            folder = Path(settings.VAR_DIR) / "ratelimit"
            folder.mkdir(parents=True, exist_ok=True)
            self._path = folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")

    def _try(self, want: int) -> float:
        """Take `want` tokens if there are; else take nothing and return the seconds to wait."""
        if self._redis is not None:
            return float(self._script(keys=[f"integrations:bucket:{self.key}"], args=[self.rate, self.burst, want]))
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.pread(fd, 4096, 0)
            now = time.time()
            try:
                state = json.loads(raw) if raw else {}
            except ValueError:
                state = {}
            tokens = min(self.burst, float(state.get("tokens", self.burst)) + (now - float(state.get("at", now))) * self.rate)
            wait = 0.0
            if tokens >= want:
                tokens -= want
            else:
                wait = (want - tokens) / self.rate
            data = json.dumps({"tokens": tokens, "at": now}).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            return wait
        finally:
            os.close(fd)  # closing releases the lock

    def acquire(self, tokens: int = 1) -> float:
        """Wait for and take `tokens`; returns the seconds waited."""
        waited = 0.0
        while True:
            wait = self._try(tokens)
            if wait <= 0:
                self.waited += waited
                return waited
            time.sleep(wait)
            waited += wait
