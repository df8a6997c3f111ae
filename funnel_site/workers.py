"""Celery workers say they are alive: every few seconds each worker's main process writes, in the
shared cache, one key per queue it consumes and one for its host, each expiring soon after.

`/readyz` reads the queue keys (no broker round trip: it answers in milliseconds, and within the
cache's 1 s timeout when Redis is down); stranded-work recovery (funnel_site/recovery.py) reads the
host keys to tell a dead host's runners from live ones.
"""

from __future__ import annotations

import socket
import threading
import time

import structlog
from django.conf import settings
from django.core.cache import caches

log = structlog.get_logger(__name__)
HEARTBEAT_SECONDS = 10
HEARTBEAT_TTL_SECONDS = 30  # a worker silent this long is not counted


def _cache():
    return caches["shared"]


def queue_key(queue: str) -> str:
    """Cache key of a queue's newest worker heartbeat."""
    return f"worker:queue:{queue}"


def host_key(host: str) -> str:
    """Cache key of a host's newest worker heartbeat."""
    return f"worker:host:{host}"


def worker_heartbeat_write(*, worker: str, queues: list[str]) -> None:
    """Record that `worker` (its node name) is alive and consumes `queues`."""
    now = time.time()
    values = {queue_key(q): {"worker": worker, "at": now} for q in queues}
    values[host_key(socket.gethostname())] = {"worker": worker, "at": now}
    _cache().set_many(values, HEARTBEAT_TTL_SECONDS)


def queues_without_worker(queues: list[str]) -> list[str]:
    """The queues among `queues` that no worker consumed within the heartbeat TTL."""
    found = _cache().get_many([queue_key(q) for q in queues])
    horizon = time.time() - HEARTBEAT_TTL_SECONDS
    return [q for q in queues if (found.get(queue_key(q)) or {}).get("at", 0) < horizon]


def host_has_live_worker(host: str) -> bool | None:
    """True/False when the cache knows; None when the cache cannot be read."""
    try:
        beat = _cache().get(host_key(host))
    except Exception:  # noqa: BLE001 - an unreachable cache proves nothing either way
        return None
    return bool(beat) and beat.get("at", 0) >= time.time() - HEARTBEAT_TTL_SECONDS


class WorkerHeartbeat(threading.Thread):
    """The thread a worker's main process runs (started on Celery's `worker_ready`)."""

    def __init__(self, *, worker: str, queues: list[str]) -> None:
        super().__init__(name="funnel-worker-heartbeat", daemon=True)
        self.worker, self.queues = worker, queues
        self._halt = threading.Event()

    def run(self) -> None:
        while True:
            try:
                worker_heartbeat_write(worker=self.worker, queues=self.queues)
            except Exception:  # noqa: BLE001 - a missed beat is not a dead worker; try again
                log.warning("worker_heartbeat_failed", worker=self.worker, exc_info=True)
            if self._halt.wait(HEARTBEAT_SECONDS):
                return

    def stop(self) -> None:
        self._halt.set()


def required_queues() -> list[str]:
    """Queues the deployment needs a worker on (`FUNNEL_REQUIRED_QUEUES`; empty: none checked)."""
    return list(settings.FUNNEL_REQUIRED_QUEUES)
