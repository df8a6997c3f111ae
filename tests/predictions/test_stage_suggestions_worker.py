"""The CRF stage suggestions on a real worker: refreshed after a training succeeds, and nightly as
beat sends it (the schedule module's entry, routed to the `training` queue)."""

from __future__ import annotations

import time

import pytest

from predictions.models import ModelVersion, StageSuggestion
from tests.predictions.conftest import TINY, ingest_synthetic, wait_for
from tests.predictions.test_tournament_django import _journeys

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _wait_suggestion(workspace, timeout: float = 120.0) -> StageSuggestion:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = StageSuggestion.objects.filter(workspace=workspace, event_name="basket_add").first()
        if found is not None:
            return found
        time.sleep(0.3)
    raise AssertionError("no stage suggestion for basket_add appeared")


def test_a_finished_training_then_beat_refresh_the_suggestions(celery_worker_process, api):
    from funnel_site.celery import app
    from funnel_site.schedules import CELERY_BEAT_SCHEDULE

    workspace = api.workspace
    ingest_synthetic(workspace)  # every name of the generator is in the default stage map
    _journeys(workspace)  # ... and basket_add is not
    assert not StageSuggestion.objects.exists()
    resp = api.post("/api/v1/models", {"target": "purchase", "horizon": "7d", "lookback": "28d", "arch": "gbt",
                                       "options": TINY}, format="json")
    assert resp.status_code == 202, resp.content
    version = wait_for(ModelVersion.objects.get(pk=resp.json()["model_id"]), {"succeeded", "failed"})
    assert version.status == "succeeded", version.failure_reason
    suggestion = _wait_suggestion(workspace)
    assert suggestion.stage == "consideration" and suggestion.status == "pending"

    # nightly: what beat sends when the crontab is due, on the queue the routes give it
    StageSuggestion.objects.all().delete()
    entry = CELERY_BEAT_SCHEDULE["predictions-refresh-stage-suggestions"]
    route = app.amqp.router.route({}, entry["task"])
    assert route["queue"].name == "training"
    assert app.amqp.router.route({}, "predictions.tasks.stage_suggestions_refresh")["queue"].name == "training"
    assert app.send_task(entry["task"], queue=route["queue"].name).get(timeout=60) == [workspace.pk]
    assert _wait_suggestion(workspace).stage == "consideration"
