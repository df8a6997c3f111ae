"""The shared Redis cache keeps one redis client per connection pool (funnel_site/cache.py)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.cache import caches

pytestmark = pytest.mark.skipif(not settings.CACHE_URL, reason="the shared cache is Redis only with CACHE_URL or a redis broker")


def test_one_client_per_pool_and_it_works():
    from funnel_site.cache import RedisCache

    cache = caches["shared"]
    assert isinstance(cache, RedisCache)
    assert cache._cache.get_client() is cache._cache.get_client(write=True)  # one server: one pool
    cache.set("shared-cache-test", {"n": 1}, 30)
    assert cache.get("shared-cache-test") == {"n": 1}
    cache.delete("shared-cache-test-n")
    assert cache.add("shared-cache-test-n", 0, 30) and cache.incr("shared-cache-test-n") == 1
    cache.delete_many(["shared-cache-test", "shared-cache-test-n"])
    assert cache.get("shared-cache-test") is None
