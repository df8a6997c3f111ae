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
from django.utils import timezone

from funnel_site.events.models import Workspace
from predictions.ml.config import TrainConfig
from predictions.ml.errors import ArtifactError, ConfigError
from predictions.models import Arch, ModelVersion, Target

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

    train_model_version.apply_async(args=[version.pk], task_id=version.celery_task_id)


def model_version_cancel(*, version: ModelVersion) -> ModelVersion:
    """Cancel a queued or running training; a running one stops at its next heartbeat (seconds)."""
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if locked.status not in ModelVersion.IN_FLIGHT:
            raise PredictionError(f"model {locked.pk} is {locked.status}: only a queued or running training can be cancelled")
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
        raise PredictionError(f"model {version.pk} is {version.status}: only a succeeded model can be activated")
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


def scoring_queue(*, version_id: int) -> None:
    """Score every eligible contact with a version on the `scoring` queue (after activation, daily)."""
    from predictions.tasks import score_model_version

    score_model_version.delay(version_id)


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


def contact_explanation_request(*, version: ModelVersion, contact, wait_seconds: float | None = None):
    """The contact's explained score under `version`: stored, or computed by a worker while we wait.

    Returns the ContactScore, or None when the worker has not answered within `wait_seconds`
    (the explanation is then stored when it finishes). PredictionError when it cannot be explained.
    """
    from celery.exceptions import TimeoutError as CeleryTimeout

    from predictions.models import ContactScore
    from predictions.tasks import explain_contact

    score = ContactScore.objects.filter(model_version=version, contact=contact).first()
    if score is not None and score.explained_at is not None:
        return score
    wait = settings.PREDICTION_EXPLAIN_WAIT_SECONDS if wait_seconds is None else wait_seconds
    pending = explain_contact.delay(version.pk, contact.pk)
    try:
        answer = pending.get(timeout=wait, propagate=True, disable_sync_subtasks=False) if wait > 0 else None
    except CeleryTimeout:
        return None
    if answer is None:
        return None
    if "error" in answer:
        raise PredictionError(answer["error"])
    return ContactScore.objects.get(pk=answer["score_id"])


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
