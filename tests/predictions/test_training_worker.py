"""Training as a job on a real worker process: lifecycle, duplicate delivery, not enough data, cancel,
the train command's contract, and an explanation computed by the worker for the API."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

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


def _version_folder(settings, version) -> Path:
    return settings.MODEL_ARTIFACT_DIR / str(version.workspace_id) / str(version.pk)


def _nothing_published(settings, version) -> list[str]:
    """What lies at the version's artifact path or beside it for its id (staged or temporary folders)."""
    folder = _version_folder(settings, version)
    found = [folder.name] if folder.exists() else []
    if folder.parent.is_dir():
        found += [p.name for p in folder.parent.iterdir() if p.name.lstrip(".").split(".")[0] == folder.name]
    return found


def _wait_until_stopped(version, timeout: float = 90.0) -> None:
    """The worker running a cancelled version says its run has stopped (progress.phase = cancelled)."""
    deadline = time.monotonic() + timeout
    while version.progress.get("phase") != "cancelled":
        assert time.monotonic() < deadline, f"the worker did not stop within {timeout}s: {version.progress}"
        time.sleep(0.2)
        version.refresh_from_db()


def test_cancel_a_running_training(celery_worker_process, api, settings):
    """Cancel (docs/predictions.md): a running training stops within seconds, stays `cancelled`, and
    nothing is published at its artifact path."""
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
    # what made this test flaky: a folder of an earlier test database's version with the same id
    # (ids restart in a new database, var/models outlives it) was found at the path
    leftover = _version_folder(settings, version)
    leftover.mkdir(parents=True, exist_ok=True)
    (leftover / "manifest.json").write_text("{}")
    resp = api.post(f"/api/v1/models/{version.pk}/cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    assert api.post(f"/api/v1/models/{version.pk}/cancel").status_code == 409
    version.refresh_from_db()
    cancelled_at = version.finished_at
    _wait_until_stopped(version)
    assert version.status == "cancelled" and version.failure_reason == "cancelled on request"
    assert version.finished_at == cancelled_at and not version.artifact_path
    assert _nothing_published(settings, version) == []


def test_a_cancel_committed_while_the_worker_waits_to_publish_wins(celery_worker_process, api, settings):
    """The race of a cancel with the end of a training: the worker has trained and staged its artifact
    and waits for the row lock to record success; a cancel committed first wins, nothing is published."""
    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("watches PostgreSQL's lock waits")
    ingest_synthetic(api.workspace)
    # the baselines alone (no network): a training that reaches its publish within seconds
    version = ModelVersion.objects.get(pk=api.post(
        "/api/v1/models", {"target": "churn", "lookback": "14d", "arch": "logreg", "options": TINY},
        format="json").json()["model_id"])
    wait_for(version, {"running"})
    with transaction.atomic():
        ModelVersion.objects.select_for_update().get(pk=version.pk)  # a client holding the row, as a cancel does
        deadline = time.monotonic() + 240
        while not _publish_waits_on_us(connection):
            assert time.monotonic() < deadline, f"the worker never reached the decision: {_lock_waits(connection)}"
            time.sleep(0.2)
        # trained and staged, not yet decided: nothing is visible at the version's path
        assert not (_version_folder(settings, version) / "manifest.json").exists()
        resp = api.post(f"/api/v1/models/{version.pk}/cancel")
        assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    _wait_until_stopped(version)
    assert version.status == "cancelled" and not version.artifact_path
    assert _nothing_published(settings, version) == []


def _publish_waits_on_us(connection) -> bool:
    """Whether a backend waits with a SELECT ... FOR UPDATE of a version row: the worker's decision (its
    heartbeat waits with an UPDATE). A plain SELECT never waits for a row lock, and the view cuts the
    text at 1 kB, before the FOR UPDATE."""
    return any(query.startswith("SELECT") and '"predictions_modelversion"' in query for query in _lock_waits(connection))


def _lock_waits(connection) -> list[str]:
    """The queries of this database's backends waiting for a lock (behind us, or behind the heartbeat's
    UPDATE that waits for us)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else the view is read once per transaction
        cursor.execute("SELECT query FROM pg_stat_activity WHERE datname = current_database()"
                       " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
        return [row[0] for row in cursor.fetchall()]
