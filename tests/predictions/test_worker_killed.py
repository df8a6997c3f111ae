"""A training whose worker is SIGKILLed, on real worker processes of the test's own.

Two ways a worker dies, and how the product recovers by itself:

- the prefork pool process running the training is killed: the worker's main process sees it lost,
  the message (`acks_late`, `reject_on_worker_lost`) goes back to the queue, and a fresh pool process
  takes the dead run over (`_claim`: the runner's process is gone) and trains it to the end;
- the whole worker (main and pool process) is killed: nothing gives the message back in time (the
  filesystem broker has already removed it; Redis restores unacknowledged messages only after its
  visibility timeout, an hour), so stranded-work recovery (funnel_site/recovery.py) queues the row
  again: at once when a worker starts on that host, or at the next 30 s beat of a live worker. A late
  delivery of the old message is then a duplicate and changes nothing.

The workers consume a queue private to this test (trainings, including the ones recovery sends
again, are routed to it by PREDICTION_TRAINING_QUEUE): the session worker of other tests consumes
`training` and must not take these jobs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.utils import timezone

from funnel_site.recovery import stranded_work_recover
from predictions import services
from predictions.frames import workspace_frame
from predictions.models import ContactScore, ModelVersion
from predictions.scoring import eligibles
from predictions.services import model_version_queue
from predictions.tasks import train_model_version
from tests.conftest import ROOT, subprocess_env
from tests.predictions.conftest import TINY, ingest_synthetic, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Runs for 12 s whatever the machine (epochs without end, stopped by the time limit), so there is a
# run to kill, and a takeover that still ends soon.
SLOW = {**TINY, "epochs": 1000, "patience": 1000, "batch_size": 16, "time_limit_seconds": 12}
# the whole-worker kills start another worker beside the training: more time to catch it running
LONGER = {**SLOW, "time_limit_seconds": 30}
FINISHED = set(ModelVersion.FINISHED)


class Worker:
    """`celery worker` with one prefork pool process, in a process group of its own (so it can be
    killed whole without killing pytest)."""

    def __init__(self, queues: str, log: Path, *, training_queue: str = "", beat: bool = False,
                 env: dict | None = None) -> None:
        env = {**subprocess_env(), **(env or {})}
        env.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS="1")
        if training_queue:
            env["PREDICTION_TRAINING_QUEUE"] = training_queue
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "funnel_site", "worker", "-Q", queues, "--pool", "prefork",
                 "--concurrency", "1", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
                 "--without-heartbeat", "-n", f"{log.stem}-{os.getpid()}@%h",
                 *(["-B", "-s", str(log.with_suffix(".beat"))] if beat else [])],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def children(self) -> set[int]:
        """Pids of the worker's pool processes."""
        found = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    found.add(int(entry.name))
        return found

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL to the whole process group: the main process and its pool process."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
        self.kill()


def process_gone(pid: int) -> bool:
    """True when the process no longer runs (gone, or a zombie nobody has reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in {"Z", "X"}


def running_with_heartbeat(version: ModelVersion, worker: Worker, timeout: float = 150) -> ModelVersion:
    """Wait until the version runs, trains (an epoch reported) and its heartbeat has moved."""
    deadline = time.monotonic() + timeout
    while True:
        version.refresh_from_db()
        if (version.status == "running" and version.progress.get("epoch")
                and version.heartbeat_at > version.started_at):
            return version
        assert version.status in {"queued", "running"}, (version.status, version.failure_reason)
        assert time.monotonic() < deadline and worker.proc.poll() is None, (
            f"model {version.pk} is {version.status} {version.progress}:\n{worker.tail()}"
        )
        time.sleep(0.2)


@pytest.fixture
def private_queue(monkeypatch):
    """Route trainings queued by `model_version_queue` to a queue only this test's workers consume."""
    name = f"training-killtest-{os.getpid()}"

    def send(version):
        train_model_version.apply_async(args=[version.pk], task_id=version.celery_task_id, queue=name)

    monkeypatch.setattr(services, "_send_training", send)
    return name


@pytest.fixture
def no_send():
    with mock.patch("predictions.services._send_training") as send:
        yield send


@pytest.fixture
def workers(tmp_path):
    started: list[Worker] = []

    def start(queues: str, name: str, **options) -> Worker:
        started.append(Worker(queues, tmp_path / f"{name}.log", **options))
        return started[-1]

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def clean_artifacts(workspace_with_key, settings) -> Path:
    """The workspace's artifact folder, emptied (ids restart in a new test database)."""
    folder = settings.MODEL_ARTIFACT_DIR / str(workspace_with_key[0].pk)
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def assert_scored_once(version: ModelVersion, worker: Worker, timeout: float = 120) -> None:
    """The activation's scoring run: one score per eligible contact, of this version only."""
    frame = workspace_frame(workspace_id=version.workspace_id)
    eligible = set(eligibles(version, frame, frame.end_ts).tolist())
    deadline = time.monotonic() + timeout
    # a run's rows become current together at its end (staged rows are not current)
    while not ContactScore.objects.filter(model_version=version, is_current=True).exists():
        assert time.monotonic() < deadline, f"no scores of model {version.pk}:\n{worker.tail()}"
        time.sleep(0.5)
    contacts = list(ContactScore.objects.filter(workspace_id=version.workspace_id, is_current=True)
                    .values_list("contact_id", flat=True))
    assert len(contacts) == len(eligible) and set(contacts) == eligible
    assert not ContactScore.objects.exclude(model_version=version).exists()


def test_killed_pool_process_the_message_comes_back_and_the_run_is_taken_over(
    workspace_with_key, private_queue, workers, clean_artifacts
):
    workspace = workspace_with_key[0]
    ingest_synthetic(workspace)
    worker = workers(f"{private_queue},scoring", "worker")
    version = model_version_queue(workspace=workspace, target="purchase", arch="lstm", overrides=LONGER)
    running_with_heartbeat(version, worker)
    first_runner, first_started = version.runner, version.started_at
    pid = int(first_runner.rpartition(":")[2])
    assert pid in worker.children(), "the training runs in the worker's pool process"

    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    seen: list[str] = []
    wait_for(version, FINISHED, timeout=150, seen=seen)
    assert version.status == "succeeded", (version.failure_reason, worker.tail())
    assert seen == ["running", "succeeded"], seen  # never failed, never queued again
    assert version.attempts == 2, "the second delivery took the run over"
    assert version.runner != first_runner and int(version.runner.rpartition(":")[2]) in worker.children()
    assert version.started_at > first_started and version.progress["phase"] == "done"
    assert worker.proc.poll() is None, "the worker's main process lived on"
    assert "model_version_taken_over" in worker.log.read_text(errors="replace")
    print(f"taken over and trained {time.monotonic() - killed_at:.1f}s after the kill")

    # one version, one artifact (no half-written temp folder of the killed run), one active model
    assert list(ModelVersion.objects.filter(workspace=workspace).values_list("pk", flat=True)) == [version.pk]
    assert version.is_active
    assert sorted(p.name for p in clean_artifacts.iterdir()) == [str(version.pk)]
    assert (clean_artifacts / str(version.pk) / "manifest.json").exists()
    assert version.artifact_path == str(clean_artifacts / str(version.pk))
    assert_scored_once(version, worker)


def _kill_whole_worker(worker: Worker, version: ModelVersion) -> float:
    """SIGKILL the worker running `version` (main and pool process); the moment of the kill."""
    pid = int(version.runner.rpartition(":")[2])
    assert pid in worker.children()
    worker.kill()
    killed_at = time.monotonic()
    deadline = killed_at + 10
    while not process_gone(pid):
        assert time.monotonic() < deadline, "the pool process survived its worker's SIGKILL"
        time.sleep(0.1)
    version.refresh_from_db()
    assert version.status == "running", "nothing else has touched the row yet"
    return killed_at


def _recovered_and_trained(version: ModelVersion, worker: Worker, killed_at: float, clean_artifacts: Path) -> dict:
    """Wait for the stranded run to be queued again and trained to the end; the times it took."""
    first_runner = version.runner
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while True:  # recovery: the row leaves the dead runner (queued again, or already taken)
        version.refresh_from_db()
        if version.runner != first_runner or version.status != "running":
            break
        assert time.monotonic() < deadline, f"still stranded 120 s after the kill:\n{worker.tail()}"
        time.sleep(0.2)
    recovered = time.monotonic() - killed_at
    wait_for(version, FINISHED, timeout=150, seen=seen)
    trained = time.monotonic() - killed_at
    assert version.status == "succeeded", (version.failure_reason, worker.tail())
    assert version.attempts == 2 and version.runner != first_runner
    assert version.progress["phase"] == "done"
    assert version.is_active and sorted(p.name for p in clean_artifacts.iterdir()) == [str(version.pk)]
    print(f"stranded training recovered {recovered:.1f}s after the SIGKILL, trained {trained:.1f}s after it")
    return {"recovered": recovered, "trained": trained}


def test_killed_worker_a_fresh_worker_recovers_the_run_when_it_starts(
    workspace_with_key, private_queue, workers, clean_artifacts
):
    workspace = workspace_with_key[0]
    ingest_synthetic(workspace)
    first_worker = workers(private_queue, "first", training_queue=private_queue)
    version = model_version_queue(workspace=workspace, target="purchase", arch="lstm", overrides=LONGER)
    running_with_heartbeat(version, first_worker)
    assert stranded_work_recover()["training"] == 0, "a live run is left alone"
    killed_at = _kill_whole_worker(first_worker, version)

    # the worker comes back (a restart): on start it sees the dead runner and queues the run again
    fresh = workers(f"{private_queue},scoring", "fresh", training_queue=private_queue)
    times = _recovered_and_trained(version, fresh, killed_at, clean_artifacts)
    assert times["recovered"] < 120
    assert list(ModelVersion.objects.filter(workspace=workspace).values_list("pk", flat=True)) == [version.pk]
    assert_scored_once(version, fresh)

    # the dead run's message, should it come back (Redis, after its visibility timeout), changes nothing
    assert train_model_version.apply_async(args=[version.pk], queue=private_queue).get(timeout=120) == "skipped"


def test_killed_worker_a_live_worker_notices_it_on_its_beat(
    workspace_with_key, private_queue, workers, clean_artifacts
):
    workspace = workspace_with_key[0]
    ingest_synthetic(workspace)
    # a healthy worker with the beat schedule, up before the other dies and never restarted; what
    # recovery sends again goes to its own queue (the doomed worker's queue has nobody left)
    again_queue = f"{private_queue}-again"
    healthy = workers(f"{again_queue},ingest,scoring", "healthy", training_queue=again_queue, beat=True)
    deadline = time.monotonic() + 90
    while " ready." not in healthy.log.read_text(errors="replace"):
        assert time.monotonic() < deadline and healthy.proc.poll() is None, healthy.tail()
        time.sleep(0.2)
    doomed = workers(private_queue, "doomed", training_queue=private_queue)
    version = model_version_queue(workspace=workspace, target="purchase", arch="lstm", overrides=LONGER)
    running_with_heartbeat(version, doomed)
    killed_at = _kill_whole_worker(doomed, version)
    times = _recovered_and_trained(version, healthy, killed_at, clean_artifacts)
    assert times["recovered"] < 120


def test_a_run_tried_too_often_is_failed_not_queued_for_ever(workspace_with_key, settings, no_send):
    workspace = workspace_with_key[0]
    version = ModelVersion.objects.create(
        workspace=workspace, target="purchase", status="running", runner="gone-host:1", attempts=3,
        heartbeat_at=timezone.now() - timedelta(seconds=settings.FUNNEL_RUNNER_STALE_SECONDS + 5),
    )
    assert stranded_work_recover()["training"] == 1
    version.refresh_from_db()
    assert version.status == "failed" and "tried 3 times" in version.failure_reason
    assert "no worker of host gone-host is alive" in version.failure_reason
    assert not no_send.called
