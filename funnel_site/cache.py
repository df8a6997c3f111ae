"""Django's Redis cache with one redis client per connection pool instead of one per operation.

`django.core.cache.backends.redis.RedisCacheClient.get_client` builds a new `redis.Redis` for every
get or set (its constructor is pure Python and parses its options each time); an API request's
throttle checks did three of them, ~1 ms of CPU per request in the profile of `POST /predict`
(docs/predictions-serving.md). A `redis.Redis` is thread-safe and only borrows connections from
its pool, so keeping one per pool changes nothing else (the pool itself is still per process).
"""

from __future__ import annotations

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class SharedClientRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:  # a race builds two: harmless, both use the same pool
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = SharedClientRedisCacheClient
