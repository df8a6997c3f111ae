"""Writes of the model registry that web processes and commands make: queue, activate, cancel, reap.

Nothing here imports TensorFlow: the training itself runs in a worker (`predictions.training`), and
scoring and explanations in a worker or a command (`predictions.scoring`).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from funnel_site.events.models import Workspace
from predictions.ml.config import TrainConfig
from predictions.ml.errors import ArtifactError, ConfigError
from predictions.models import Arch, ModelVersion, Target

_STATUS_PHRASES = {
    ModelVersion.Status.QUEUED: "is still waiting for a worker",
    ModelVersion.Status.RUNNING: "is still training",
    ModelVersion.Status.SUCCEEDED: "has finished training",
    ModelVersion.Status.FAILED: "failed to train",
    ModelVersion.Status.CANCELLED: "was cancelled",
}


def status_phrase(status: str) -> str:
    """A model's status as words that follow "model 3 ..." ("is still training", "failed to train")."""
    return _STATUS_PHRASES.get(status, f"has status {status!r}")

log = structlog.get_logger(__name__)

DAY = 86400


class PredictionError(ValueError):
    """A request about models or scores that cannot be done; the message is one sentence for the user."""


class TrainingInProgress(PredictionError):
    """A training of this workspace and target is already queued or running."""


# TrainConfig fields a caller may set besides the named arguments (sizes, thresholds, seeds).
TUNABLE = frozenset(
    {"max_events", "n_cutoffs", "min_positives", "min_negatives", "min_validation_per_class", "units",
     "embedding_dim", "dense_units", "dropout", "learning_rate", "epochs", "batch_size", "patience",
     "calibration", "threshold", "time_limit_seconds", "sequence_budget", "min_report_class_count",
     "backtest_folds", "unit_choices", "hmm_states", "hmm_iterations", "hmm_max_sequences", "isotonic_min_bin",
     "min_candidate_class_count"}
)


def train_config_build(
    *,
    target: str,
    horizon_seconds: int,
    lookback_seconds: int,
    arch: str = Arch.AUTO,
    ensemble: bool = False,
    seed: int = 0,
    overrides: dict | None = None,
) -> TrainConfig:
    """A validated TrainConfig: settings defaults, then the caller's choices; PredictionError otherwise."""
    if target not in Target.values:
        raise PredictionError(f"unknown target {target!r}: use purchase or churn")
    if arch not in Arch.values:
        raise PredictionError(f"unknown arch {arch!r}: use {', '.join(Arch.values)}")
    if horizon_seconds <= 0:
        raise PredictionError(f"the horizon must be longer than zero, got {horizon_seconds} seconds")
    if lookback_seconds < horizon_seconds:
        raise PredictionError(
            f"the lookback ({_human(lookback_seconds)}) must not be shorter than the horizon ({_human(horizon_seconds)})"
        )
    if ensemble and arch in (Arch.AUTO, Arch.STACK):
        arch = Arch.STACK  # the seed's "ensemble" is now the stacked fusion of the tournament
    unknown = set(overrides or {}) - TUNABLE
    if unknown:
        raise PredictionError(f"unknown training option(s): {', '.join(sorted(unknown))}")
    values = {"time_limit_seconds": float(settings.PREDICTION_TRAIN_TIME_LIMIT)}
    values.update(settings.PREDICTION_TRAIN_DEFAULTS)
    values.update(overrides or {})
    try:
        return TrainConfig(target=target, horizon_seconds=int(horizon_seconds), lookback_seconds=int(lookback_seconds),
                           arch=arch, ensemble=bool(ensemble), seed=int(seed), **values)
    except (ConfigError, TypeError, ValueError) as exc:
        raise PredictionError(str(exc)) from None


def model_version_queue(
    *,
    workspace: Workspace,
    target: str,
    horizon_seconds: int = 7 * DAY,
    lookback_seconds: int = 28 * DAY,
    arch: str = Arch.AUTO,
    ensemble: bool = False,
    cutoff: datetime | None = None,
    seed: int = 0,
    auto_activate: bool | None = None,
    overrides: dict | None = None,
) -> ModelVersion:
    """Validate, create a queued ModelVersion and send its training task once the row is committed.

    `cutoff`: train as of that moment (only events before it are used). One training per workspace
    and target at a time: TrainingInProgress names the one in flight.
    """
    config = train_config_build(target=target, horizon_seconds=horizon_seconds, lookback_seconds=lookback_seconds,
                                arch=arch, ensemble=ensemble, seed=seed, overrides=overrides)
    if cutoff is not None and cutoff > timezone.now():
        raise PredictionError(f"the cut-off {cutoff.isoformat()} is in the future")
    stored = {
        "train": config.to_dict(),
        "cutoff_unix": int(cutoff.timestamp()) if cutoff else None,
        "auto_activate": settings.PREDICTION_AUTO_ACTIVATE if auto_activate is None else bool(auto_activate),
    }
    try:
        with transaction.atomic():
            # one queueing at a time per workspace, so the in-flight check below cannot race
            Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
            busy = ModelVersion.objects.filter(
                workspace=workspace, target=target, status__in=ModelVersion.IN_FLIGHT
            ).first()
            if busy is not None:
                raise TrainingInProgress(
                    f"model {busy.pk} ({target}) is already {busy.status}: wait for it or cancel it first"
                )
            version = ModelVersion.objects.create(
                workspace=workspace, target=target, arch=arch, ensemble=bool(ensemble), config=stored,
                celery_task_id=uuid.uuid4().hex,
            )
            transaction.on_commit(lambda: _send_training(version))
    except IntegrityError:
        raise TrainingInProgress(f"a {target} model of workspace {workspace.slug!r} is already being trained") from None
    log.info("model_version_queued", workspace=workspace.slug, model=version.pk, target=target, arch=arch)
    return version


def _send_training(version: ModelVersion) -> None:
    from predictions.tasks import train_model_version

    queue = {"queue": settings.PREDICTION_TRAINING_QUEUE} if settings.PREDICTION_TRAINING_QUEUE else {}
    train_model_version.apply_async(args=[version.pk], task_id=version.celery_task_id, **queue)


def model_version_recover(*, pk: int, runner: str, reason: str) -> bool:
    """A running training whose worker died (funnel_site/recovery.py): queue it again, or fail it
    once it has been tried PREDICTION_MAX_ATTEMPTS times. False when the row moved on meanwhile."""
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().filter(
            pk=pk, status=ModelVersion.Status.RUNNING, runner=runner
        ).first()
        if version is None:
            return False
        if version.attempts >= settings.PREDICTION_MAX_ATTEMPTS:
            version.status = ModelVersion.Status.FAILED
            version.failure_reason = f"{reason}; tried {version.attempts} times, given up"
            version.finished_at = timezone.now()
            version.save(update_fields=["status", "failure_reason", "finished_at"])
            return True
        version.status = ModelVersion.Status.QUEUED
        version.runner = ""
        version.progress = {"phase": f"queued again: {reason}"}
        version.save(update_fields=["status", "runner", "progress"])
        transaction.on_commit(lambda: _send_training(version))
    log.warning("model_version_requeued", model=pk, reason=reason, attempts=version.attempts)
    return True


def model_version_cancel(*, version: ModelVersion) -> ModelVersion:
    """Cancel a queued or running training; a running one stops at its next heartbeat (seconds)."""
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if locked.status not in ModelVersion.IN_FLIGHT:
            raise PredictionError(f"model {locked.pk} {status_phrase(locked.status)}: only a queued or running training can be cancelled")
        locked.status = ModelVersion.Status.CANCELLED
        locked.failure_reason = "cancelled on request"
        locked.finished_at = timezone.now()
        locked.save(update_fields=["status", "failure_reason", "finished_at"])
    log.info("model_version_cancelled", model=locked.pk)
    return locked


def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    """Make a succeeded version the active one of its workspace and target.

    Its artifact is checked first (every file present with its checksum): a missing or corrupt one
    raises PredictionError with the reason, and the active model stays as it was.
    """
    from predictions.ml.artifacts import read_manifest

    if version.status != ModelVersion.Status.SUCCEEDED:
        raise PredictionError(f"model {version.pk} {status_phrase(version.status)}: only a model whose training succeeded can be activated")
    try:
        read_manifest(version.artifact_path, verify=True)
    except ArtifactError as exc:
        raise PredictionError(f"model {version.pk} cannot be activated: {exc}") from None
    with transaction.atomic():
        list(
            ModelVersion.objects.select_for_update().filter(workspace_id=version.workspace_id, target=version.target)
        )
        ModelVersion.objects.filter(
            workspace_id=version.workspace_id, target=version.target, is_active=True
        ).exclude(pk=version.pk).update(is_active=False)
        ModelVersion.objects.filter(pk=version.pk).update(is_active=True, activated_at=timezone.now())
        transaction.on_commit(lambda: scoring_queue(version_id=version.pk))
    version.refresh_from_db()
    log.info("model_version_activated", model=version.pk, target=version.target)
    return version


def scoring_queue(*, version_id: int, trigger: str = "activation"):
    """Queue a scoring run of a version on the `scoring` queue (after activation, nightly); the run
    in flight when there is one already."""
    version = ModelVersion.objects.get(pk=version_id)
    try:
        return scoring_run_queue(version=version, trigger=trigger)
    except ScoringInProgress as exc:
        return exc.run


class ScoringInProgress(PredictionError):
    """A scoring run of this model is already queued or running (`run`)."""

    def __init__(self, message: str, run) -> None:
        super().__init__(message)
        self.run = run


def scoring_run_queue(*, version: ModelVersion, trigger: str = "api", send: bool = True):
    """Create a queued ScoringRun of a succeeded version and start it on a worker once committed
    (`send=False`: the caller runs it, e.g. `manage.py score` in its own process).

    PredictionError when the version has no artifact; ScoringInProgress naming the run in flight.
    """
    from predictions.models import ScoringRun

    if version.status != ModelVersion.Status.SUCCEEDED or not version.artifact_path:
        raise PredictionError(
            f"model {version.pk} is {version.status}: train one first (manage.py train --workspace "
            f"{version.workspace.slug} --target {version.target})"
        )
    try:
        with transaction.atomic():
            run = ScoringRun.objects.create(workspace_id=version.workspace_id, model_version=version,
                                            target=version.target, trigger=trigger)
            if send:
                transaction.on_commit(lambda: _send_scoring(run.pk))
    except IntegrityError:
        busy = ScoringRun.objects.filter(model_version=version, status__in=ScoringRun.IN_FLIGHT).first()
        raise ScoringInProgress(
            f"scoring run {busy.pk if busy else '?'} of model {version.pk} is already "
            f"{busy.status if busy else 'in flight'}", busy,
        ) from None
    log.info("scoring_run_queued", model=version.pk, run=run.pk, trigger=trigger)
    return run


def _send_scoring(run_id: int) -> None:
    from predictions.tasks import scoring_run_start

    scoring_run_start.delay(run_id)


def model_versions_fail_stale(*, older_than_seconds: int | None = None) -> int:
    """Fail running versions whose worker sent no heartbeat for long (killed); returns how many."""
    seconds = older_than_seconds or settings.PREDICTION_STALE_SECONDS
    limit = timezone.now() - timedelta(seconds=seconds)
    stale = ModelVersion.objects.filter(status=ModelVersion.Status.RUNNING, heartbeat_at__lt=limit)
    count = stale.update(
        status=ModelVersion.Status.FAILED,
        failure_reason=f"no heartbeat from the worker for over {_human(seconds)}: it was stopped or killed",
        finished_at=timezone.now(),
    )
    if count:
        log.warning("model_versions_failed_stale", count=count)
    return count


def _human(seconds: int) -> str:
    for unit, size in (("w", 7 * DAY), ("d", DAY), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def score_explanation_request(*, score) -> bool:
    """Ask a worker to explain a stored score once (never waited for); True when this call queued it."""
    from predictions.models import ContactScore

    if score.explained_at is not None:
        return False
    with transaction.atomic():
        # asked before and still not explained after 10 minutes (a lost task): asked again
        stale = timezone.now() - timedelta(minutes=10)
        queued = ContactScore.objects.filter(
            Q(explain_requested_at__isnull=True) | Q(explain_requested_at__lt=stale), pk=score.pk,
            explained_at__isnull=True,
        ).update(explain_requested_at=timezone.now())
        if queued:
            transaction.on_commit(lambda: _send_explain(score.pk))
    return bool(queued)


def _send_explain(score_id: int) -> None:
    from predictions.tasks import explain_score

    explain_score.delay(score_id)


# --- stage suggestions (CRF tagging of unmapped event names; a person accepts them) -------------


def stage_suggestions_refresh(*, workspace: Workspace, max_sequences: int = 3000) -> int:
    """Run the CRF tagger on the workspace's events and store a suggestion per unmapped name.

    Unmapped: neither the default map nor the workspace's StageMapping knows the name (a mapping to
    "no stage" counts as known) and it is not an outbound event. Pending suggestions are replaced;
    accepted or dismissed ones are kept as decided. Returns the number of suggestions stored.
    """
    import numpy as np

    from funnel_site.events.columns import workspace_columns
    from funnel_site.events.models import StageMapping
    from funnel_site.events.stages import DEFAULT_STAGE_MAP, StageResolver, is_outbound, normalise_event_name
    from predictions.ml.stage_tagger import suggest_stages
    from predictions.models import StageSuggestion

    cols = workspace_columns(workspace.pk)
    resolver = StageResolver.for_workspace(workspace.pk)
    overridden = {normalise_event_name(n) for n in
                  StageMapping.objects.filter(workspace=workspace).values_list("event_name", flat=True)}
    known, unknown = {}, set()
    for name in cols.names:
        if is_outbound(name):
            continue
        key = normalise_event_name(name)
        if resolver.stage_of(name):
            known[name] = resolver.stage_of(name)
        elif key not in overridden and key not in DEFAULT_STAGE_MAP:
            unknown.add(name)
    names = np.array(cols.names or [""], dtype=object)
    suggestions = suggest_stages(cols.contact, cols.ts // 1_000_000, names[cols.name] if cols.size else names[:0],
                                 cols.value, known, unknown, max_sequences=max_sequences) if unknown else []
    decided = set(StageSuggestion.objects.filter(workspace=workspace).exclude(
        status=StageSuggestion.Status.PENDING).values_list("event_name", flat=True))
    with transaction.atomic():
        StageSuggestion.objects.filter(workspace=workspace, status=StageSuggestion.Status.PENDING).delete()
        StageSuggestion.objects.bulk_create([
            StageSuggestion(workspace=workspace, event_name=s.event_name, stage=s.stage, confidence=s.confidence,
                            occurrences=s.occurrences, alternatives=s.alternatives)
            for s in suggestions if s.event_name not in decided
        ])
    log.info("stage_suggestions_refreshed", workspace=workspace.slug, unmapped=len(unknown), stored=len(suggestions))
    return len([s for s in suggestions if s.event_name not in decided])


def stage_suggestion_accept(*, suggestion, stage: str | None = None):
    """Write the suggestion (or the person's corrected ``stage``) into the workspace's StageMapping."""
    from funnel_site.events.models import FunnelStage, StageMapping
    from predictions.models import StageSuggestion

    chosen = suggestion.stage if stage is None else stage
    if chosen not in FunnelStage.values:
        raise PredictionError(f"stage {chosen!r} is not a funnel stage: use {', '.join(FunnelStage.values)}")
    with transaction.atomic():
        StageMapping.objects.update_or_create(workspace_id=suggestion.workspace_id, event_name=suggestion.event_name,
                                              defaults={"stage": chosen})
        StageSuggestion.objects.filter(pk=suggestion.pk).update(status=StageSuggestion.Status.ACCEPTED, stage=chosen,
                                                               decided_at=timezone.now())
    # no cache to drop: frames derive stages from the map each time they are read
    suggestion.refresh_from_db()
    return suggestion


def stage_suggestion_dismiss(*, suggestion):
    """Mark a suggestion dismissed (kept, so a refresh does not suggest it again)."""
    from predictions.models import StageSuggestion

    StageSuggestion.objects.filter(pk=suggestion.pk).update(status=StageSuggestion.Status.DISMISSED,
                                                           decided_at=timezone.now())
    suggestion.refresh_from_db()
    return suggestion
