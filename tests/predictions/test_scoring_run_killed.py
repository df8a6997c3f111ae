"""A scoring run whose whole worker is SIGKILLed mid-run recovers by itself (predictions/recovery.py).

The run is split into many small shards (PREDICTION_SCORE_SHARD_SIZE in the workers' environment) so
the worker can be killed while shards are being scored; scoring runs go to a queue private to this
test (PREDICTION_SCORING_QUEUE), so no other worker of the session takes them. Oracle, from the
definition of a run: the scores current before the killed run stay current, unchanged, until a run
switches; then every eligible contact has exactly one current score, all of the retry; the killed
run is failed with the reason and keeps no rows; a late message of it changes nothing.
"""

from __future__ import annotations

import os
import time

import pytest

from predictions import services
from predictions.frames import workspace_frame
from predictions.models import ContactScore, ScoringRun
from predictions.scoring import eligibles
from predictions.services import scoring_run_queue
from predictions.tasks import score_shard, scoring_run_start
from tests.predictions import test_worker_killed
from tests.predictions.conftest import ingest_synthetic
from tests.predictions.test_worker_killed import Worker, process_gone

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SHARD = 8  # contacts per shard: about 50 shards, each a task
workers = test_worker_killed.workers  # the fixture: workers of this test's own, stopped after it


@pytest.fixture
def scoring_queue(monkeypatch):
    """Runs queued from this process go to a private queue; the workers route their own sends there."""
    name = f"scoring-killtest-{os.getpid()}"
    monkeypatch.setattr(services, "_send_scoring", lambda run_id: scoring_run_start.apply_async(args=[run_id], queue=name))
    return name


def _env(queue: str) -> dict:
    return {"PREDICTION_SCORING_QUEUE": queue, "PREDICTION_SCORE_SHARD_SIZE": str(SHARD)}


def _current(workspace) -> list[tuple[int, int]]:
    return list(ContactScore.objects.filter(workspace=workspace, is_current=True)
                .values_list("contact_id", "scoring_run_id"))


def _wait_run(run: ScoringRun, statuses: set, worker: Worker, timeout: float = 300) -> ScoringRun:
    deadline = time.monotonic() + timeout
    while True:
        run.refresh_from_db()
        if run.status in statuses:
            return run
        assert time.monotonic() < deadline, f"run {run.pk} still {run.status}:\n{worker.tail()}"
        time.sleep(0.2)


def _kill_mid_run(run: ScoringRun, worker: Worker, timeout: float = 300) -> float:
    """Wait until shards of the run are staged and it is running in the worker, then SIGKILL it whole."""
    deadline = time.monotonic() + timeout
    while True:
        run.refresh_from_db()
        staged = ContactScore.objects.filter(scoring_run=run).count()
        pid = int(run.runner.rpartition(":")[2]) if run.runner else 0
        if run.status == "running" and staged and pid in worker.children():
            break
        assert run.status in {"queued", "running"} and time.monotonic() < deadline, (run.status, worker.tail())
        time.sleep(0.05)
    worker.kill()
    killed_at = time.monotonic()
    while not process_gone(pid):
        assert time.monotonic() < killed_at + 10, "the pool process survived its worker's SIGKILL"
        time.sleep(0.1)
    run.refresh_from_db()
    assert run.status == "running" and run.shards > 1
    return killed_at


def _recovered(workspace, version, killed: ScoringRun, before: list, worker: Worker, killed_at: float) -> dict:
    """The killed run leaves its dead runner within two minutes: failed and retried as a new run, or
    (its remaining messages survived the kill) finished by a live worker. Either way the old scores
    stay current until one run switches, and then every eligible contact has one score of that run."""
    dead = killed.runner
    while True:
        killed.refresh_from_db()
        if killed.status != "running" or killed.runner != dead:
            break
        assert time.monotonic() < killed_at + 120, f"still stranded 120 s after the kill:\n{worker.tail()}"
        assert sorted(_current(workspace)) == before
        time.sleep(0.2)
    recovered = time.monotonic() - killed_at
    while True:
        killed.refresh_from_db()
        retry = ScoringRun.objects.filter(model_version=version, attempt=2).first()
        final = killed if killed.status == "succeeded" else retry if retry and retry.status == "succeeded" else None
        current = _current(workspace)
        assert sorted(current) == before or (final and {r for _, r in current} == {final.pk}), "a mix of runs"
        if final:
            break
        assert killed.status in {"running", "failed"} and time.monotonic() < killed_at + 600, (killed.status, retry)
        time.sleep(0.2)
    scored = time.monotonic() - killed_at
    how = "finished by a live worker" if final == killed else "failed and tried again"
    if final != killed:
        assert "tried again as a new run" in killed.error, killed.error
        assert not ContactScore.objects.filter(scoring_run=killed).exists(), "the killed run keeps nothing"
    frame = workspace_frame(workspace_id=workspace.pk)
    eligible = sorted(eligibles(version, frame, int(final.as_of.timestamp())).tolist())
    current = _current(workspace)
    assert sorted(c for c, _ in current) == eligible, "one current score per eligible contact"
    assert {r for _, r in current} == {final.pk}
    print(f"stranded scoring run recovered {recovered:.1f}s after the SIGKILL ({how}), "
          f"scored {scored:.1f}s after it")
    return {"recovered": recovered, "scored": scored, "final": final}


def _first_run(workspace, version, worker: Worker) -> list:
    run = _wait_run(scoring_run_queue(version=version, trigger="api"), {"succeeded", "failed"}, worker)
    assert run.status == "succeeded", run.error
    before = sorted(_current(workspace))
    assert before and {r for _, r in before} == {run.pk}
    return before


def test_killed_worker_a_fresh_worker_recovers_the_scoring_run(workspace_with_key, make_version, scoring_queue,
                                                                workers):
    workspace = workspace_with_key[0]
    ingest_synthetic(workspace)
    version = make_version(workspace)
    first = workers(scoring_queue, "first", env=_env(scoring_queue))
    before = _first_run(workspace, version, first)

    run = scoring_run_queue(version=version, trigger="api")
    killed_at = _kill_mid_run(run, first)
    fresh = workers(scoring_queue, "fresh", env=_env(scoring_queue))  # a restart: recovery on start
    times = _recovered(workspace, version, run, before, fresh, killed_at)
    assert times["recovered"] < 120

    if times["final"] == run:
        return  # finished by the fresh worker from its surviving messages: there is no dead run left
    # the dead run's messages, should they come back (Redis, after its visibility timeout): nothing changes
    current = sorted(_current(workspace))
    assert scoring_run_start.apply_async(args=[run.pk], queue=scoring_queue).get(timeout=120)["started"] is False
    lo, hi = current[0][0], current[-1][0]
    assert score_shard.apply_async(args=[run.pk, lo, hi], queue=scoring_queue).get(timeout=120) == {"skipped": "failed"}
    assert sorted(_current(workspace)) == current and not ContactScore.objects.filter(scoring_run=run).exists()


def test_killed_worker_a_live_worker_notices_it_on_its_beat(workspace_with_key, make_version, scoring_queue, workers):
    workspace = workspace_with_key[0]
    ingest_synthetic(workspace)
    version = make_version(workspace)
    # a healthy worker with the beat schedule, up before the other dies; the retry goes to its queue
    again = f"{scoring_queue}-again"
    healthy = workers(f"{again},ingest", "healthy", beat=True, env=_env(again))
    doomed = workers(scoring_queue, "doomed", env=_env(scoring_queue))
    before = _first_run(workspace, version, doomed)
    run = scoring_run_queue(version=version, trigger="api")
    killed_at = _kill_mid_run(run, doomed)
    times = _recovered(workspace, version, run, before, healthy, killed_at)
    assert times["recovered"] < 120


def test_a_run_stranded_too_often_is_failed_not_tried_again(workspace_with_key, make_version, settings, scoring_queue):
    from datetime import timedelta

    from django.utils import timezone

    from funnel_site.recovery import stranded_work_recover

    workspace = workspace_with_key[0]
    version = make_version(workspace)
    run = ScoringRun.objects.create(
        workspace=workspace, model_version=version, target=version.target, status="running", runner="gone-host:1",
        attempt=settings.PREDICTION_MAX_ATTEMPTS, heartbeat_at=timezone.now() - timedelta(seconds=30))
    live = ScoringRun.objects.create(  # another version's run, beating: left alone
        workspace=workspace, model_version=make_version(workspace, active=False), target=version.target,
        status="running", runner="another-host:1", heartbeat_at=timezone.now())
    assert stranded_work_recover()["scoring_run"] == 1
    run.refresh_from_db()
    live.refresh_from_db()
    assert run.status == "failed" and "no worker of host gone-host is alive" in run.error
    assert f"tried {settings.PREDICTION_MAX_ATTEMPTS} times, given up" in run.error
    assert list(ScoringRun.objects.filter(model_version=version).values_list("pk", flat=True)) == [run.pk]
    assert live.status == "running"
