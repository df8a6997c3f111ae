"""The one Celery app. Configuration comes from Django settings (CELERY_* names)."""

import os
import threading

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "funnel_site.settings")

app = Celery("funnel_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="funnel_site.ping", queue="ingest")
def ping() -> str:
    """A no-op task used by health checks and tests to prove a worker answers."""
    return "pong"


@app.task(name="funnel_site.recover_stranded_work", queue="ingest")
def recover_stranded_work() -> dict:
    """Hand back jobs whose worker died (periodic, and when a worker starts): funnel_site/recovery.py."""
    from funnel_site.recovery import stranded_work_recover

    return stranded_work_recover()


_heartbeat = None


@worker_ready.connect
def _worker_started(sender=None, **_) -> None:
    """Start the worker's heartbeat, then look for work a dead worker left behind."""
    global _heartbeat
    from funnel_site.workers import WorkerHeartbeat

    queues = sorted(sender.app.amqp.queues.consume_from) if sender is not None else []
    _heartbeat = WorkerHeartbeat(worker=getattr(sender, "hostname", "worker"), queues=queues)
    _heartbeat.start()

    def recover() -> None:
        import structlog
        from django.db import connection

        try:
            recover_stranded_work()
        except Exception:  # noqa: BLE001 - beat tries again in 30 s
            structlog.get_logger(__name__).warning("recover_on_start_failed", exc_info=True)
        finally:
            connection.close()

    threading.Timer(1.0, recover).start()


@worker_shutdown.connect
def _worker_stopping(**_) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
