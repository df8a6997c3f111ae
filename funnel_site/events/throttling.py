"""API throttling on the shared cache (Redis when configured): failed key attempts per client
address, and requests per API key. Both answer 429 with `Retry-After`.

Rates come from `settings.FUNNEL_THROTTLE_RATES` at every request (so tests and deployments can
change them) and, per key, from `ApiKey.rate_limit`.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import caches
from rest_framework import exceptions, throttling


def _parse(rate: str) -> tuple[int, int]:
    """`N/s`, `N/min`, `N/hour`, `N/day` -> (requests, seconds)."""
    count, _, period = rate.partition("/")
    return int(count), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[0]]


class _SharedCacheThrottle(throttling.SimpleRateThrottle):
    rate = "1/s"  # replaced per request; set so that the base class does not look up a scope

    @property
    def cache(self):
        return caches["shared"]

    def _use(self, rate: str) -> None:
        self.rate = rate
        self.num_requests, self.duration = _parse(rate)


class ApiKeyRateThrottle(_SharedCacheThrottle):
    """Requests per API key: the key's own `rate_limit`, else the default `api_key` rate."""

    scope = "api_key"

    def get_cache_key(self, request, view) -> str | None:
        api_key = getattr(request.user, "api_key", None)
        if api_key is None:
            return None
        self._use(api_key.rate_limit or settings.FUNNEL_THROTTLE_RATES["api_key"])
        return f"throttle:key:{api_key.prefix}"  # the prefix is unique and never reused


class FailedKeyThrottle(_SharedCacheThrottle):
    """Failed authentications per client address: over the rate, every attempt from that address is
    refused (429) until the oldest failure leaves the window, so keys cannot be guessed quickly."""

    scope = "failed_key"

    def __init__(self) -> None:
        self._use(settings.FUNNEL_THROTTLE_RATES["failed_key"])

    def _key(self, request) -> str:
        return f"throttle:failed:{self.get_ident(request)}"

    def _history(self, request) -> list[float]:
        now = time.time()
        return [t for t in self.cache.get(self._key(request), []) if t > now - self.duration]

    def check(self, request) -> None:
        """Raise Throttled (429, Retry-After) when the address is over its failed attempts."""
        history = self._history(request)
        if len(history) >= self.num_requests:
            raise exceptions.Throttled(
                wait=max(1.0, self.duration - (time.time() - history[-1])),
                detail=f"too many failed API key attempts from this address ({self.rate})",
            )

    def record_failure(self, request) -> None:
        """Count one failed authentication of the request's address."""
        history = [time.time(), *self._history(request)]
        self.cache.set(self._key(request), history[: self.num_requests + 1], self.duration)
