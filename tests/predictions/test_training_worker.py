"""Training as a job on a real worker process: lifecycle, duplicate delivery, not enough data, cancel,
the train command's contract, and an explanation computed by the worker for the API."""

from __future__ import annotations

import io
import json
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from predictions.models import ContactScore, ModelVersion
from predictions.tasks import train_model_version
from tests.predictions.conftest import TINY, ingest_synthetic, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

METRIC_KEYS = {"roc_auc", "pr_auc", "log_loss", "brier", "calibration_error", "lift_top_decile", "precision",
               "recall", "f1"}


def test_queue_running_succeeded_with_metrics_baselines_then_duplicate_is_a_no_op(
    celery_worker_process, api, settings
):
    ingest_synthetic(api.workspace)
    resp = api.post("/api/v1/models", {"target": "purchase", "horizon": "7d", "lookback": "28d",
                                       "options": TINY}, format="json")
    assert resp.status_code == 202, resp.content
    assert resp.json()["status"] == "queued"
    version = ModelVersion.objects.get(pk=resp.json()["model_id"])
    seen: list[str] = []
    wait_for(version, {"succeeded", "failed"}, seen=seen)
    assert version.status == "succeeded", version.failure_reason
    assert seen[-2:] == ["running", "succeeded"], seen
    body = api.get(f"/api/v1/models/{version.pk}").json()
    assert set(body["metrics"]) >= METRIC_KEYS
    assert set(body["baselines"]) == {"prevalence", "recency", "logreg", "bgnbd", "gbt"}
    # the tournament's scoreboard: every candidate with its backtest figures, the served one named
    board = body["scoreboard"]
    assert [c["name"] for c in board["candidates"]][:4] == ["recency", "logreg", "bgnbd", "gbt"]
    assert board["served"] == body["trained_arch"] and len(board["folds"]) == 3
    assert all({"roc_auc", "roc_auc_se", "brier", "fit_seconds"} <= set(c) for c in board["candidates"]
               if c["status"] == "succeeded")
    assert body["importance"]["by_event_type"]
    assert body["curves"]["roc"] and body["curves"]["reliability"]
    # epochs count across the networks of the tournament: 3 networks x 3 folds x 2 epochs
    assert body["progress"]["epoch"] == 18 and body["is_active"], "the first model of a target becomes active"
    artifact = settings.MODEL_ARTIFACT_DIR / str(api.workspace.pk) / str(version.pk)
    assert (artifact / "manifest.json").exists() and version.artifact_path == str(artifact)
    finished_at = version.finished_at

    # the same task delivered again: the row is finished, nothing is trained twice
    assert train_model_version.apply_async(args=[version.pk]).get(timeout=60) == "skipped"
    version.refresh_from_db()
    assert version.finished_at == finished_at and version.attempts == 1

    # activation queued a scoring run on the worker: the predictions API fills up (all at once: a
    # run's scores become current together at its end)
    for _ in range(600):
        if ContactScore.objects.filter(model_version=version, is_current=True).exists():
            break
        time.sleep(0.2)
    listed = api.get("/api/v1/predictions?target=purchase&limit=5").json()
    assert listed["count"] > 100 and len(listed["results"]) == 5
    assert listed["results"][0]["probability"] >= listed["results"][-1]["probability"]

    # a contact's explanation: the first read queues it on the worker (the request does not wait),
    # later reads serve it once stored
    contact_id = listed["results"][0]["contact_id"]
    detail = api.get(f"/api/v1/predictions/{contact_id}?target=purchase")
    assert detail.status_code == 200, detail.content
    for _ in range(900):
        [item] = api.get(f"/api/v1/contacts/{contact_id}/predictions").json()
        if item["explained"]:
            break
        time.sleep(0.2)
    assert item["explained"] and item["factors"] and all(f["text"] for f in item["factors"])
    assert item["base_value"] is not None


def test_not_enough_data_fails_with_the_counts(celery_worker_process, api):
    ingest_synthetic(api.workspace, contacts=25)
    out = io.StringIO()
    with pytest.raises(CommandError, match="not enough data to train a purchase model"):
        call_command("train", "--workspace", "acme", "--target", "purchase", "--wait", "--json", stdout=out)
    payload = json.loads(out.getvalue().strip().splitlines()[-1])
    assert payload["status"] == "failed" and "need 100" in payload["failure_reason"]
    assert {"train_positives", "validation_negatives"} <= set(payload["counts"])
    assert "positives" in payload["failure_reason"]


def test_cancel_a_running_training(celery_worker_process, api, settings):
    ingest_synthetic(api.workspace)
    slow = {**TINY, "epochs": 500, "batch_size": 8, "patience": 1000}
    version = ModelVersion.objects.get(pk=api.post(
        "/api/v1/models", {"target": "churn", "lookback": "14d", "options": slow}, format="json").json()["model_id"])
    for _ in range(600):  # wait until epochs are being reported
        version.refresh_from_db()
        if version.progress.get("epoch"):
            break
        time.sleep(0.2)
    assert version.status == "running"
    resp = api.post(f"/api/v1/models/{version.pk}/cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    assert api.post(f"/api/v1/models/{version.pk}/cancel").status_code == 409
    # the worker notices within a heartbeat and stops; nothing is published
    wait_for(version, {"cancelled"})
    for _ in range(150):
        if version.progress.get("phase") == "cancelled":
            break
        time.sleep(0.2)
        version.refresh_from_db()
    assert version.status == "cancelled"
    assert not (settings.MODEL_ARTIFACT_DIR / str(api.workspace.pk) / str(version.pk) / "manifest.json").exists()


def test_train_command_wait_json_contract(celery_worker_process, workspace_with_key):
    ingest_synthetic(workspace_with_key[0])
    out = io.StringIO()
    call_command("train", "--workspace", "acme", "--target", "churn", "--horizon", "7d", "--lookback", "14d",
                 "--arch", "gru", "--epochs", "2", "--units", "4", "--min-positives", "20", "--min-negatives", "20",
                 "--wait", "--json", stdout=out)
    payload = json.loads(out.getvalue().strip().splitlines()[-1])
    assert {"model_id", "status", "metrics", "baselines"} <= set(payload)
    # the GRU is served unless the best baseline beats it by more than one standard error
    board = payload["scoreboard"]
    assert payload["status"] == "succeeded" and payload["arch"] == board["served"]
    assert payload["arch"] == "gru" or (board["fallback"] and "fell back to the baseline" in board["why"])
    assert set(payload["metrics"]) >= METRIC_KEYS and "gbt" in payload["baselines"]
