"""Registry services without a worker: validation before queuing, one training at a time, claiming,
cancel, activation, the stale-heartbeat reaper."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.utils import timezone

from predictions.models import ModelVersion
from predictions.services import (
    PredictionError,
    TrainingInProgress,
    model_version_activate,
    model_version_cancel,
    model_version_queue,
    model_versions_fail_stale,
)
from predictions.training import RunnerAlive, _claim

pytestmark = pytest.mark.django_db
DAY = 86400


@pytest.fixture
def sent():
    """Training tasks that would have been sent (none reach a broker here)."""
    with mock.patch("predictions.services._send_training") as send:
        yield send


@pytest.mark.parametrize("kwargs, message", [
    ({"target": "revenue"}, "unknown target"),
    ({"target": "purchase", "horizon_seconds": 0}, "horizon must be longer than zero"),
    ({"target": "purchase", "horizon_seconds": -5}, "horizon must be longer than zero"),
    ({"target": "churn", "horizon_seconds": 14 * DAY, "lookback_seconds": 7 * DAY}, "must not be shorter"),
    ({"target": "purchase", "arch": "transformer"}, "unknown arch"),
    ({"target": "purchase", "overrides": {"layers": 9}}, "unknown training option"),
    ({"target": "purchase", "overrides": {"units": 0}}, "units must be at least 1"),
])
def test_bad_input_is_refused_before_anything_is_queued(workspace_with_key, sent, kwargs, message):
    with pytest.raises(PredictionError, match=message):
        model_version_queue(workspace=workspace_with_key[0], **kwargs)
    assert not ModelVersion.objects.exists()
    sent.assert_not_called()


def test_one_training_per_workspace_and_target(workspace_with_key, other_workspace_with_key, sent,
                                               django_capture_on_commit_callbacks):
    acme, globex = workspace_with_key[0], other_workspace_with_key[0]
    with django_capture_on_commit_callbacks(execute=True):
        first = model_version_queue(workspace=acme, target="purchase")
    assert first.status == "queued" and first.celery_task_id
    sent.assert_called_once()
    with pytest.raises(TrainingInProgress, match=f"model {first.pk} .purchase. is already queued"):
        model_version_queue(workspace=acme, target="purchase")
    model_version_queue(workspace=acme, target="churn")  # another target: fine
    model_version_queue(workspace=globex, target="purchase")  # another tenant: fine
    model_version_cancel(version=first)
    assert model_version_queue(workspace=acme, target="purchase").pk != first.pk


def test_claim_moves_status_once_and_tells_duplicates_apart(workspace_with_key, sent):
    version = model_version_queue(workspace=workspace_with_key[0], target="purchase")
    claimed = _claim(version.pk)
    assert claimed.status == "running" and claimed.attempts == 1 and claimed.runner
    with pytest.raises(RunnerAlive):  # a second delivery while the first runs: look again later
        _claim(version.pk)
    # the runner died (no heartbeat for several intervals): the redelivery takes over
    ModelVersion.objects.filter(pk=version.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5),
                                                      runner="elsewhere:1")
    assert _claim(version.pk).attempts == 2
    ModelVersion.objects.filter(pk=version.pk).update(status="succeeded")
    assert _claim(version.pk) is None  # finished: a duplicate delivery is a no-op
    assert _claim(987654) is None


def test_cancel_and_activate_rules(workspace_with_key, sent):
    version = model_version_queue(workspace=workspace_with_key[0], target="purchase")
    with pytest.raises(PredictionError, match="model .* is still waiting for a worker: only a model whose training succeeded can be activated"):
        model_version_activate(version=version)
    assert model_version_cancel(version=version).status == "cancelled"
    with pytest.raises(PredictionError, match="was cancelled: only a queued or running"):
        model_version_cancel(version=version)


def test_reaper_fails_running_versions_without_heartbeat(workspace_with_key, sent):
    version = model_version_queue(workspace=workspace_with_key[0], target="purchase")
    _claim(version.pk)
    assert model_versions_fail_stale(older_than_seconds=600) == 0
    ModelVersion.objects.filter(pk=version.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert model_versions_fail_stale(older_than_seconds=600) == 1
    version.refresh_from_db()
    assert version.status == "failed" and "no heartbeat" in version.failure_reason


def test_activation_checks_the_artifact_and_keeps_the_active_model(synthetic_workspace, make_version):
    active = make_version(synthetic_workspace, active=True)
    candidate = make_version(synthetic_workspace, active=False)
    Path(candidate.artifact_path, "calibration.json").write_bytes(b"not a calibration")
    with pytest.raises(PredictionError, match="calibration.json is corrupt"):
        model_version_activate(version=candidate)
    active.refresh_from_db()
    assert active.is_active
    healthy = make_version(synthetic_workspace, active=False)
    with mock.patch("predictions.services.scoring_queue"):
        model_version_activate(version=healthy)
    active.refresh_from_db()
    assert not active.is_active and ModelVersion.objects.get(is_active=True).pk == healthy.pk
