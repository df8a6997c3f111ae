"""Health probes and the real Celery worker process."""

from __future__ import annotations

import pytest


@pytest.mark.django_db
def test_healthz_is_public_and_ok(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_database_and_broker(client):
    resp = client.get("/readyz")
    assert resp.status_code == 200, resp.content
    assert resp.json()["checks"] == {"database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_readyz_is_503_naming_an_unreachable_broker(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.json()["checks"]["broker"] != "ok"


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
