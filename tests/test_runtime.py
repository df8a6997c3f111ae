"""Health probes and the real Celery worker process."""

from __future__ import annotations

import time

import pytest


@pytest.mark.django_db
def test_healthz_is_public_and_ok(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_database_and_broker(client, settings):
    settings.FUNNEL_REQUIRED_QUEUES = []  # no worker needed by this deployment
    resp = client.get("/readyz")
    assert resp.status_code == 200, resp.content
    assert resp.json()["checks"] == {"database": "ok", "broker": "ok", "workers": "ok"}


@pytest.mark.django_db
def test_readyz_is_503_naming_an_unreachable_broker_and_answers_fast(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    started = time.monotonic()
    resp = client.get("/readyz")
    assert time.monotonic() - started < 3, "a probe must not hang on a dead broker"
    assert resp.status_code == 503
    assert resp.json()["checks"]["broker"] != "ok"


@pytest.mark.django_db
def test_readyz_is_503_naming_a_queue_without_a_worker(client, settings):
    settings.FUNNEL_REQUIRED_QUEUES = ["ingest", "nobody-consumes-this"]
    from funnel_site.workers import worker_heartbeat_write

    worker_heartbeat_write(worker="test@here", queues=["ingest"])
    resp = client.get("/readyz")
    assert resp.status_code == 503, resp.content
    assert resp.json()["checks"]["workers"].endswith("on queue(s): nobody-consumes-this")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_readyz_sees_a_real_worker_on_every_queue(client, celery_worker_process, settings):
    settings.FUNNEL_REQUIRED_QUEUES = ["ingest", "training", "scoring", "sync"]
    resp = client.get("/readyz")
    assert resp.status_code == 200, resp.content
    assert resp.json()["checks"]["workers"] == "ok"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_process_answers_on_every_queue(celery_worker_process):
    from funnel_site.celery import app
    from funnel_site.queues import CeleryQueue

    for queue in CeleryQueue:
        assert app.send_task("funnel_site.ping", queue=queue.value).get(timeout=30) == "pong"


@pytest.mark.django_db
def test_api_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/events" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
