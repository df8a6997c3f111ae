"""Syncs on a real Celery worker process (PostgreSQL + Redis in CI): a scheduled sync end to end, a
segment change running its syncs, and a run whose worker is killed mid-run resumed without sending
anything twice or losing anything."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from collections import Counter

import pytest

from integrations.models import DeliveredRecord, SyncRun
from integrations.services import destination_create, sync_create, sync_run_request
from tests.integrations.fakes import FakeWebhookReceiver
from tests.integrations.helpers import members, segment

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
SECRET = "whsec_" + base64.b64encode(b"z" * 24).decode()


@pytest.fixture
def receiver():
    server = FakeWebhookReceiver(SECRET)
    yield server
    server.stop()


def _wait_run(run_id: int, timeout: float = 60) -> SyncRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = SyncRun.objects.get(pk=run_id)
        if run.status in ("succeeded", "partial", "failed"):
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} still {SyncRun.objects.get(pk=run_id).status}")


def _webhook_sync(ws, server, n, **settings):
    seg = segment(ws)
    members(ws, seg, [f"w{i:03d}" for i in range(n)])
    dest = destination_create(workspace=ws, kind="webhook", name="hook",
                              settings={"api_base": server.url + "/in", "rate_limit": 1000, "burst": 1000, **settings},
                              credentials={"secret": SECRET})
    return seg, dest


def test_scheduled_sync_runs_on_the_worker_as_beat_sends_it(celery_worker_process, workspace_with_key, receiver):
    from django_celery_beat.models import PeriodicTask

    from funnel_site.celery import app

    ws = workspace_with_key[0]
    seg, dest = _webhook_sync(ws, receiver, 12)
    sync = sync_create(workspace=ws, segment=seg.pk, destination=dest.pk, schedule="*/5 * * * *")
    task = PeriodicTask.objects.get(pk=sync.periodic_task_id)
    # what beat's DatabaseScheduler does when the crontab is due: send the entry's task, args, queue
    result = app.send_task(task.task, args=json.loads(task.args), queue=task.queue)
    run_id = result.get(timeout=60)
    run = _wait_run(run_id)
    assert (run.status, run.added, run.trigger) == ("succeeded", 12, "schedule")
    assert len(receiver.events()) == 12 and DeliveredRecord.objects.filter(sync=sync).count() == 12


def test_a_scheduled_sync_fires_from_a_real_beat_process(celery_worker_process, workspace_with_key, receiver,
                                                       tmp_path):
    """The whole chain with nothing simulated: the sync's cron row in django-celery-beat's table, a
    `celery beat` process with the product's DatabaseScheduler reading it, the worker running the run
    it sends. Every minute is the finest cron, so this waits for the next minute boundary."""
    import subprocess
    import sys

    from tests.conftest import ROOT, subprocess_env

    ws = workspace_with_key[0]
    seg, dest = _webhook_sync(ws, receiver, 5)
    sync = sync_create(workspace=ws, segment=seg.pk, destination=dest.pk, schedule="* * * * *")
    log = tmp_path / "beat.log"
    with open(log, "w") as out:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "funnel_site", "beat", "--loglevel", "INFO",
             "--schedule", str(tmp_path / "beat-schedule"), "--pidfile", str(tmp_path / "beat.pid")],
            cwd=ROOT, env=subprocess_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 150  # start-up + up to a minute to the boundary + the run
        while not SyncRun.objects.filter(sync=sync, trigger="schedule").exists():
            assert beat.poll() is None, f"beat exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"beat sent no run in 150 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
    finally:
        beat.terminate()
        beat.wait(timeout=30)
    run = _wait_run(SyncRun.objects.filter(sync=sync, trigger="schedule").earliest("pk").pk)
    assert (run.status, run.added) == ("succeeded", 5)
    assert sorted(e["contact_id"] for e in receiver.events()) == [f"w{i:03d}" for i in range(5)]
    assert "Scheduler: Sending due task" in log.read_text()


def test_a_segment_change_runs_its_syncs_on_the_worker(celery_worker_process, workspace_with_key, receiver):
    from predictions.signals import segment_membership_changed

    ws = workspace_with_key[0]
    seg, dest = _webhook_sync(ws, receiver, 3)
    sync = sync_create(workspace=ws, segment=seg.pk, destination=dest.pk)
    segment_membership_changed.send(sender=None, segment_id=seg.pk, workspace_id=ws.pk, entered=3, exited=0)
    run = SyncRun.objects.get(sync=sync)
    assert _wait_run(run.pk).added == 3 and run.trigger == "segment"


def test_a_run_whose_worker_is_killed_resumes_sending_nothing_twice(celery_worker_process, workspace_with_key, receiver):
    ws = workspace_with_key[0]
    seg, dest = _webhook_sync(ws, receiver, 40, batch_size=4)
    sync = sync_create(workspace=ws, segment=seg.pk, destination=dest.pk)
    receiver.delay = 0.25  # each batch takes a while: the kill lands mid-run
    run, _ = sync_run_request(sync=sync)
    deadline = time.monotonic() + 30
    while len(receiver.requests) < 3:
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.02)
    run.refresh_from_db()
    pid = int(run.runner.rpartition(":")[2])
    assert pid != celery_worker_process.pid
    os.kill(pid, signal.SIGKILL)  # the pool child running the task dies without a word
    run = _wait_run(run.pk, timeout=90)
    assert run.status == "succeeded" and run.attempts >= 2, run.error
    # every member delivered once: one accepted webhook-id per batch, each contact in exactly one
    per_contact = Counter(e["contact_id"] for e in receiver.events())
    assert set(per_contact) == {f"w{i:03d}" for i in range(40)} and set(per_contact.values()) == {1}
    # the only repeat on the wire is the batch in flight at the kill, re-sent under the same webhook-id
    ids = Counter(r["headers"]["webhook-id"] for r in receiver.requests)
    assert sum(n - 1 for n in ids.values()) <= 1
    assert (run.added, DeliveredRecord.objects.filter(sync=sync).count()) == (40, 40)


def test_inbound_webhooks_processed_on_the_worker(celery_worker_process, live_server, workspace_with_key):
    from datetime import UTC, datetime

    import requests
    from standardwebhooks.webhooks import Webhook

    from funnel_site.events.models import Event
    from integrations.models import WebhookDelivery
    from integrations.services import webhook_source_create

    ws = workspace_with_key[0]
    webhook_source_create(workspace=ws, source="standard", secret=SECRET)
    for k in range(5):
        body = json.dumps({"type": "event", "data": {"contact_id": f"in{k}", "event": "Email Opened",
                                                     "timestamp": "2026-01-01T00:00:00Z"}})
        now = datetime.now(UTC)
        resp = requests.post(f"{live_server.url}/webhooks/standard/{ws.slug}/", data=body, timeout=10, headers={
            "webhook-id": f"w{k}", "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(SECRET).sign(f"w{k}", now, body)})
        assert resp.status_code == 200
    deadline = time.monotonic() + 60
    while WebhookDelivery.objects.filter(status="processed").count() < 5:
        assert time.monotonic() < deadline, list(WebhookDelivery.objects.values_list("status", "error"))
        time.sleep(0.2)
    assert Event.objects.filter(workspace=ws, name="Email Opened").count() == 5
