"""Runs never stay stuck: unreadable credentials fail the run with the reason, stale runs are
found for re-enqueueing, a duplicate delivery of a finished run is a no-op."""

from __future__ import annotations

import pytest
from django.utils import timezone

from integrations.engine import stale_runs_resume, sync_run_execute
from integrations.models import Destination, SyncRun
from integrations.services import destination_create, sync_create, sync_run_request
from tests.integrations.helpers import members, segment

pytestmark = pytest.mark.django_db


def _sync(ws, tmp_path, settings):
    settings.INTEGRATIONS_FILE_ROOT = tmp_path
    seg = segment(ws)
    members(ws, seg, ["a"])
    dest = destination_create(workspace=ws, kind="file", name="f", settings={"path": "x.csv"}, credentials={})
    return sync_create(workspace=ws, segment=seg.pk, destination=dest.pk)


def test_unreadable_credentials_fail_the_run_with_the_reason(workspace_with_key, tmp_path, settings):
    sync = _sync(workspace_with_key[0], tmp_path, settings)
    Destination.objects.filter(pk=sync.destination_id).update(credentials_encrypted="gAAAAA-not-a-token")
    run, _ = sync_run_request(sync=sync, enqueue=False)
    run = sync_run_execute(run_id=run.pk)
    assert run.status == "failed" and "INTEGRATIONS_FERNET_KEY" in run.error
    again, created = sync_run_request(sync=sync, enqueue=False)
    assert created, "a failed run does not block the next one"


def test_finished_run_delivered_again_is_a_no_op(workspace_with_key, tmp_path, settings):
    sync = _sync(workspace_with_key[0], tmp_path, settings)
    run, _ = sync_run_request(sync=sync, enqueue=False)
    first = sync_run_execute(run_id=run.pk)
    again = sync_run_execute(run_id=run.pk)
    assert first.status == again.status == "succeeded" and again.attempts == first.attempts == 1


def test_stale_runs_are_found(workspace_with_key, tmp_path, settings):
    sync = _sync(workspace_with_key[0], tmp_path, settings)
    run, _ = sync_run_request(sync=sync, enqueue=False)
    assert stale_runs_resume() == []
    SyncRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timezone.timedelta(hours=1))
    assert stale_runs_resume() == [run.pk]
    SyncRun.objects.filter(pk=run.pk).update(status="running", runner="elsewhere:1",
                                             heartbeat_at=timezone.now() - timezone.timedelta(hours=1))
    assert stale_runs_resume() == [run.pk]
    assert sync_run_execute(run_id=run.pk).status == "succeeded"  # taken over: the other machine is silent
