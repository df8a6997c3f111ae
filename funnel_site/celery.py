"""The one Celery app. Configuration comes from Django settings (CELERY_* names)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "funnel_site.settings")

app = Celery("funnel_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="funnel_site.ping", queue="ingest")
def ping() -> str:
    """A no-op task used by health checks and tests to prove a worker answers."""
    return "pong"
