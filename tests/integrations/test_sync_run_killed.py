"""A sync run whose whole worker (main and pool process) is SIGKILLed mid-run recovers by itself
(integrations/recovery.py): the run is released and resumed from its outbox by another worker.

The doomed worker consumes a queue private to this test; the others consume `sync` too, where
recovery sends the run again. Oracle, from the definition of a run: every member is delivered once
(one accepted webhook-id per batch, each contact in exactly one), the only repeat on the wire is the
batch in flight at the kill, re-sent under the same webhook-id, and nothing pending is lost.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest

from integrations.models import DeliveredRecord, SyncRun
from integrations.services import sync_create, sync_run_request
from integrations.tasks import sync_run_execute
from tests.integrations.test_worker import _wait_run, _webhook_sync, receiver  # noqa: F401  (fixture)
from tests.predictions import test_worker_killed
from tests.predictions.test_worker_killed import Worker, process_gone

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
workers = test_worker_killed.workers  # the fixture: workers of this test's own, stopped after it
MEMBERS = 40


def _started_and_killed(ws, server, doomed: Worker, queue: str):
    seg, dest = _webhook_sync(ws, server, MEMBERS, batch_size=4)
    sync = sync_create(workspace=ws, segment=seg.pk, destination=dest.pk)
    server.delay = 0.5  # each batch takes a while: the kill lands mid-run
    run, _ = sync_run_request(sync=sync, enqueue=False)
    sync_run_execute.apply_async(args=[run.pk], queue=queue)
    deadline = time.monotonic() + 120
    while len(server.requests) < 3:
        assert time.monotonic() < deadline, f"the run did not start:\n{doomed.tail()}"
        time.sleep(0.02)
    run.refresh_from_db()
    pid = int(run.runner.rpartition(":")[2])
    assert pid in doomed.children()
    doomed.kill()
    killed_at = time.monotonic()
    while not process_gone(pid):
        assert time.monotonic() < killed_at + 10, "the pool process survived its worker's SIGKILL"
        time.sleep(0.1)
    run.refresh_from_db()
    assert run.status == "running", "nothing else has touched the row yet"
    return sync, run, killed_at


def _resumed(sync, run: SyncRun, server, worker: Worker, killed_at: float) -> dict:
    dead = run.runner
    while True:  # recovery: the row leaves the dead runner
        run.refresh_from_db()
        if run.runner != dead or run.status != "running":
            break
        assert time.monotonic() < killed_at + 120, f"still stranded 120 s after the kill:\n{worker.tail()}"
        time.sleep(0.1)
    recovered = time.monotonic() - killed_at
    run = _wait_run(run.pk, timeout=180)
    finished = time.monotonic() - killed_at
    assert run.status == "succeeded" and run.attempts == 2, (run.status, run.error, worker.tail())
    per_contact = Counter(e["contact_id"] for e in server.events())
    assert set(per_contact) == {f"w{i:03d}" for i in range(MEMBERS)} and set(per_contact.values()) == {1}
    ids = Counter(r["headers"]["webhook-id"] for r in server.requests)
    assert sum(n - 1 for n in ids.values()) <= 1
    assert (run.added, DeliveredRecord.objects.filter(sync=sync).count()) == (MEMBERS, MEMBERS)
    print(f"stranded sync run recovered {recovered:.1f}s after the SIGKILL, finished {finished:.1f}s after it")
    return {"recovered": recovered, "finished": finished}


def test_killed_worker_a_fresh_worker_resumes_the_sync_run(workspace_with_key, receiver, workers):  # noqa: F811
    queue = f"sync-killtest-{os.getpid()}"
    doomed = workers(queue, "doomed")
    sync, run, killed_at = _started_and_killed(workspace_with_key[0], receiver, doomed, queue)
    fresh = workers(f"{queue},sync", "fresh")  # a restart: recovery runs when it starts
    times = _resumed(sync, run, receiver, fresh, killed_at)
    assert times["recovered"] < 120


def test_killed_worker_a_live_worker_notices_it_on_its_beat(workspace_with_key, receiver, workers):  # noqa: F811
    queue = f"sync-killtest-{os.getpid()}"
    healthy = workers("ingest,sync", "healthy", beat=True)
    deadline = time.monotonic() + 90
    while " ready." not in healthy.log.read_text(errors="replace"):
        assert time.monotonic() < deadline and healthy.proc.poll() is None, healthy.tail()
        time.sleep(0.2)
    doomed = workers(queue, "doomed")
    sync, run, killed_at = _started_and_killed(workspace_with_key[0], receiver, doomed, queue)
    times = _resumed(sync, run, receiver, healthy, killed_at)
    assert times["recovered"] < 120
