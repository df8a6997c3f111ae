"""The worker side of a training job: claim the row, train with heartbeats, record the outcome.

Called by the task `predictions.tasks.train_model_version` with a row id. The row lock and the status
make a second delivery harmless: a finished version is left alone; a running one whose worker still
sends heartbeats makes the task retry later (RunnerAlive); a running one whose worker died (no
heartbeat for a few intervals, or its process gone) is taken over and trained again.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import uuid
from pathlib import Path

import structlog
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from predictions.frames import unix_to_datetime, workspace_frame
from predictions.ml.artifacts import move_into_place
from predictions.ml.errors import ArtifactError, NotEnoughData, TrainingCancelled
from predictions.models import ModelVersion
from predictions.services import scoring_queue

log = structlog.get_logger(__name__)
Status = ModelVersion.Status


class RunnerAlive(Exception):
    """The version is running in a live worker: this delivery is a duplicate; look again later."""

    def __init__(self, retry_in: int) -> None:
        super().__init__(f"already running; look again in {retry_in}s")
        self.retry_in = retry_in


def runner_id() -> str:
    """host:pid of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def artifact_dir_for(version: ModelVersion) -> Path:
    """Where a version's artifact lives: MODEL_ARTIFACT_DIR/<workspace id>/<version id>."""
    return Path(settings.MODEL_ARTIFACT_DIR) / str(version.workspace_id) / str(version.pk)


def _staging_dir_for(version: ModelVersion) -> Path:
    """Where one run writes its artifact before the outcome is decided: a hidden folder beside the final one
    (same file system, so moving it into place is one rename)."""
    final = artifact_dir_for(version)
    return final.parent / f".{final.name}.staged-{uuid.uuid4().hex[:8]}"


def _artifact_clear(version: ModelVersion, *, leftovers: bool) -> None:
    """Remove what lies at the version's artifact path; call it with the row locked and not succeeded.

    Only a succeeded row owns an artifact, so anything there is garbage: a folder of an earlier
    database whose version had the same id (ids restart in a new database, the folder outlives it), or
    the publish of a worker killed between its rename and its commit. With ``leftovers`` (at a claim:
    no run of this version is writing any more) the hidden staged and temporary folders of earlier
    runs go too.
    """
    final = artifact_dir_for(version)
    shutil.rmtree(final, ignore_errors=True)
    if leftovers and final.parent.is_dir():
        # ".<id>.staged-x", ".<id>.tmp-x", ".<id>.old-x" and publish's "..<id>.staged-x.tmp-y" inside them
        for pattern in (f".{final.name}.*", f"..{final.name}.*"):
            for path in final.parent.glob(pattern):
                shutil.rmtree(path, ignore_errors=True)


def _runner_is_dead(version: ModelVersion) -> bool:
    """True when the version's runner is a process of this host that no longer exists."""
    host, _, pid = version.runner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _claim(version_id: int) -> ModelVersion | None:
    """Move the row to running for this process; None when there is nothing to do."""
    takeover_after = 3 * settings.PREDICTION_HEARTBEAT_SECONDS
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().filter(pk=version_id).first()
        if version is None or version.status in ModelVersion.FINISHED:
            return None
        now = timezone.now()
        if version.status == Status.RUNNING:
            silent = (now - (version.heartbeat_at or version.started_at or now)).total_seconds()
            if silent < takeover_after and not _runner_is_dead(version):
                raise RunnerAlive(int(takeover_after - silent) + 1)
            log.warning("model_version_taken_over", model=version_id, previous_runner=version.runner)
        version.status = Status.RUNNING
        version.started_at = now
        version.heartbeat_at = now
        version.runner = runner_id()
        version.attempts += 1
        version.progress = {"phase": "loading events"}
        version.save(update_fields=["status", "started_at", "heartbeat_at", "runner", "attempts", "progress"])
        _artifact_clear(version, leftovers=True)
    return version


class Heartbeat(threading.Thread):
    """Writes heartbeat and progress every few seconds; notices cancellation (the row left `running`)."""

    def __init__(self, version: ModelVersion) -> None:
        super().__init__(name=f"heartbeat-{version.pk}", daemon=True)
        self.version_id, self.runner = version.pk, version.runner
        self.cancelled = threading.Event()
        self._halt = threading.Event()
        self._progress: dict = dict(version.progress)

    def progress(self, epoch: int, metrics: dict) -> None:
        """The trainer's per-epoch callback."""
        report = {"phase": "training", "epoch": epoch}
        for key in ("arch", "arch_epoch", "loss", "auc", "val_loss", "val_auc", "best_val_auc"):
            if key in metrics:
                report[key] = metrics[key]
        self._progress = report

    def set_phase(self, phase: str) -> None:
        self._progress = {**self._progress, "phase": phase}

    def should_cancel(self) -> bool:
        """The trainer's cancellation check (no database access: the thread keeps the flag)."""
        return self.cancelled.is_set()

    def beat(self) -> None:
        alive = ModelVersion.objects.filter(pk=self.version_id, status=Status.RUNNING, runner=self.runner).update(
            heartbeat_at=timezone.now(), progress=self._progress
        )
        if not alive:  # cancelled, failed by the reaper, or taken over: stop training
            self.cancelled.set()

    def run(self) -> None:
        try:
            while not self._halt.wait(settings.PREDICTION_HEARTBEAT_SECONDS):
                try:
                    self.beat()
                except Exception:  # noqa: BLE001 - a missed beat is not a failed training
                    log.exception("heartbeat_failed", model=self.version_id)
        finally:
            connection.close()  # this thread's own connection

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)


def model_version_run(*, version_id: int) -> str:
    """Train one version in this process; returns the outcome (succeeded, failed, cancelled, skipped)."""
    close_old_connections()
    version = _claim(version_id)
    if version is None:
        return "skipped"
    heartbeat = Heartbeat(version)
    heartbeat.start()
    try:
        return _train(version, heartbeat)
    finally:
        heartbeat.stop()


def _train(version: ModelVersion, heartbeat: Heartbeat) -> str:
    from celery.exceptions import SoftTimeLimitExceeded

    from predictions.ml.config import TrainConfig

    # the trainer publishes into a staged folder; only _finish_success, holding the row lock and the
    # decision, moves it to the version's path (a cancel committed first wins: nothing is published)
    staging = _staging_dir_for(version)
    try:
        cutoff_unix = version.config.get("cutoff_unix")
        frame = workspace_frame(
            workspace_id=version.workspace_id, before=unix_to_datetime(cutoff_unix) if cutoff_unix else None
        )
        heartbeat.set_phase("building features and training the baselines")
        from predictions.ml.trainer import train_model

        config = TrainConfig.from_dict(version.config["train"])
        result = train_model(frame, config, artifact_dir=staging, progress=heartbeat.progress,
                             should_cancel=heartbeat.should_cancel)
        heartbeat.set_phase("checking the artifact")
        _load_check(staging)
        activate = _should_activate(version, result, frame)
        return _finish_success(version, result, frame, staging, activate, heartbeat)
    except NotEnoughData as exc:
        return _finish(version, Status.FAILED, str(exc), counts=exc.counts)
    except TrainingCancelled:
        return _finish(version, Status.CANCELLED, "cancelled on request")
    except SoftTimeLimitExceeded:
        return _finish(version, Status.FAILED,
                       f"the training time limit of {settings.PREDICTION_TRAIN_TIME_LIMIT}s was exceeded")
    except ArtifactError as exc:
        return _finish(version, Status.FAILED, f"the new model's artifact cannot be loaded: {exc}")
    except Exception as exc:  # noqa: BLE001 - the reason is stored for the user; the task must not retry
        log.exception("model_version_training_failed", model=version.pk)
        return _finish(version, Status.FAILED, f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # moved into place on success; else never published


def _load_check(directory: Path) -> None:
    """Load the staged artifact once, so a model that cannot be served never becomes active (not through
    the per-process cache of scorers: the staged path is gone once the outcome is decided)."""
    from predictions.ml.scorer import Scorer

    Scorer(directory)


def _should_activate(version: ModelVersion, result, frame) -> bool:
    """Activate when no model of the target is active, or, if configured, when this one is better."""
    active = ModelVersion.objects.filter(workspace_id=version.workspace_id, target=version.target,
                                         is_active=True).first()
    if active is None:
        return True
    if not version.config.get("auto_activate"):
        return False
    from predictions.scoring import validation_auc_of

    try:
        # on the contacts the new model's own figure was measured on: the same samples for both
        theirs = validation_auc_of(active, frame, result.validation_cutoff, version.config["train"],
                                   contacts=result.report_contacts)
    except Exception as exc:  # noqa: BLE001 - an active model that cannot score loses the comparison
        log.warning("active_model_unusable", model=active.pk, error=str(exc))
        return True
    ours = result.metrics.get("roc_auc")
    return ours is not None and (theirs is None or ours > theirs)


def _finish_success(version, result, frame, staging: Path, activate: bool, heartbeat: Heartbeat) -> str:
    """Publish and record success, or lose to a cancel: the check, the rename and the commit happen while
    holding the row lock, so a cancel committed before it wins and one arriving after finds `succeeded`.
    If the commit fails after the rename, `_finish` (the caller's handler) removes the published folder."""
    directory = artifact_dir_for(version)
    with transaction.atomic():
        row = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if row.status != Status.RUNNING or row.runner != version.runner:
            # cancelled, failed by the reaper or taken over first: nothing is published
            _acknowledge(row, version)
            return row.status
        move_into_place(staging, directory)
        row.status = Status.SUCCEEDED
        row.trained_arch = result.arch
        row.metrics, row.baselines, row.candidates = result.metrics, result.baselines, result.candidates
        row.curves, row.counts, row.timings = result.curves, result.counts, result.timings
        row.scoreboard, row.importance = _json(result.scoreboard), _json(result.importance)
        row.threshold, row.calibration = result.threshold, result.calibration
        row.validation_cutoff = unix_to_datetime(result.validation_cutoff)
        row.data_end = unix_to_datetime(frame.end_ts)
        row.artifact_path = str(directory)
        row.progress = {**heartbeat._progress, "phase": "done", "epochs_trained": result.epochs_trained,
                        "stopped_reason": result.stopped_reason}
        row.finished_at = row.heartbeat_at = timezone.now()
        row.save()
        if activate:
            ModelVersion.objects.filter(workspace_id=row.workspace_id, target=row.target, is_active=True).update(
                is_active=False
            )
            ModelVersion.objects.filter(pk=row.pk).update(is_active=True, activated_at=timezone.now())
            transaction.on_commit(lambda: scoring_queue(version_id=row.pk))
    log.info("model_version_succeeded", model=version.pk, roc_auc=result.metrics.get("roc_auc"), activated=activate)
    return Status.SUCCEEDED


def _json(value: dict) -> dict:
    """Plain JSON types only (numpy floats from the ML package become floats)."""
    import json

    return json.loads(json.dumps(value, default=float))


def _acknowledge(row: ModelVersion, version: ModelVersion) -> None:
    """The row was decided by someone else (a cancel, the reaper) while this process ran it: its path
    holds no artifact, and `progress.phase` = the row's status says that this run has stopped."""
    if row.status != Status.SUCCEEDED:
        _artifact_clear(version, leftovers=False)
    if row.runner == version.runner and row.status != Status.RUNNING:
        row.progress = {**row.progress, "phase": row.status}
        row.save(update_fields=["progress"])


def _finish(version: ModelVersion, status: str, reason: str, counts: dict | None = None) -> str:
    """Record a failure or cancellation (unless the row was already moved on by someone else)."""
    with transaction.atomic():
        row = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if row.status == Status.RUNNING and row.runner == version.runner:
            _artifact_clear(version, leftovers=False)  # a commit that failed after its rename left one
            row.status, row.failure_reason = status, reason
            row.finished_at = timezone.now()
            if counts:
                row.counts = counts
            row.progress = {**row.progress, "phase": status}
            row.save(update_fields=["status", "failure_reason", "finished_at", "counts", "progress"])
        else:
            _acknowledge(row, version)
    log.info("model_version_finished", model=version.pk, status=status, reason=reason)
    return status
