"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from django.db import connection
from django.http import JsonResponse


def healthz(request):
    """The process is alive and serving requests."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means not ready
        return f"{type(exc).__name__}: {exc}"
    return None


def _check_broker() -> str | None:
    from django.conf import settings

    from funnel_site.celery import app

    try:
        # a fresh connection (not the pool) so the probe sees the broker as it is now
        with app.connection_for_write(url=settings.CELERY_BROKER_URL, connect_timeout=1) as conn:
            conn.ensure_connection(max_retries=0, timeout=1)  # one try: a probe answers fast
    except Exception as exc:  # kombu raises many types; all mean not ready
        return f"{type(exc).__name__}: {exc}"
    return None


def _check_workers() -> str | None:
    """A live worker consumes every queue the deployment needs (heartbeats: funnel_site/workers.py)."""
    from funnel_site.workers import HEARTBEAT_TTL_SECONDS, queues_without_worker, required_queues

    try:
        missing = queues_without_worker(required_queues())
    except Exception as exc:  # the shared cache is down: say so rather than guess
        return f"worker heartbeats cannot be read ({type(exc).__name__}: {exc})"
    if missing:
        return f"no worker alive in the last {HEARTBEAT_TTL_SECONDS}s on queue(s): {', '.join(missing)}"
    return None


def readyz(request):
    """The database and the Celery broker are reachable and a worker serves every needed queue
    (503 naming what is not). Each check is bounded to about a second."""
    checks = {"database": _check_database(), "broker": _check_broker(), "workers": _check_workers()}
    ready = all(v is None for v in checks.values())
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {k: ("ok" if v is None else v) for k, v in checks.items()},
    }
    return JsonResponse(body, status=200 if ready else 503)
