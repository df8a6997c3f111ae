"""Celery tasks of predictions: thin, they take ids and call the services (routing: funnel_site/queues.py).

`train_*` tasks run on the `training` queue, the others on `scoring`. Nothing here imports
TensorFlow at module level: the worker's parent process must not load it before forking children.
"""

from __future__ import annotations

from celery import chord, shared_task
from django.conf import settings


@shared_task(
    bind=True,
    name="predictions.tasks.train_model_version",
    acks_late=True,  # idempotent: the row's status makes a second delivery a no-op
    reject_on_worker_lost=True,  # a killed worker's job goes back to the queue and is taken over
    soft_time_limit=settings.PREDICTION_TRAIN_TIME_LIMIT + 120,
    time_limit=settings.PREDICTION_TRAIN_TIME_LIMIT + 300,
    max_retries=1000,
)
def train_model_version(self, version_id: int) -> str:
    """Train the ModelVersion `version_id` (queued by `model_version_queue`)."""
    from predictions.training import RunnerAlive, model_version_run

    try:
        return model_version_run(version_id=version_id)
    except RunnerAlive as exc:  # a duplicate while the first delivery still runs: look again later
        raise self.retry(countdown=exc.retry_in) from None


@shared_task(name="predictions.tasks.reap_stale_trainings")
def reap_stale_trainings() -> int:
    """Fail running versions whose worker stopped sending heartbeats (periodic)."""
    from predictions.services import model_versions_fail_stale

    return model_versions_fail_stale()


@shared_task(name="predictions.tasks.score_active_models")
def score_active_models() -> list[int]:
    """Queue a scoring run of every active model (periodic)."""
    from predictions.models import ModelVersion

    ids = list(ModelVersion.objects.filter(is_active=True).values_list("pk", flat=True))
    for version_id in ids:
        score_model_version.delay(version_id)
    return ids


@shared_task(name="predictions.tasks.score_model_version")
def score_model_version(version_id: int) -> dict:
    """Score every eligible contact with a version; in parallel shards when there are many."""
    from predictions.frames import workspace_frame
    from predictions.models import ModelVersion
    from predictions.scoring import eligibles, model_version_score, scores_prune, scores_store

    version = ModelVersion.objects.select_related("workspace").get(pk=version_id)
    frame = workspace_frame(workspace_id=version.workspace_id)
    if len(frame) == 0:
        return {"scored": 0}
    as_of = frame.end_ts
    contacts = eligibles(version, frame, as_of)
    size = settings.PREDICTION_SCORE_SHARD_SIZE
    if len(contacts) <= size:
        run = model_version_score(version=version, frame=frame, as_of=as_of)
        stored = scores_store(run)
        scores_prune(version=version, as_of=as_of)
        return {"scored": stored, "shards": 1}
    bounds = [(int(chunk[0]), int(chunk[-1])) for chunk in (contacts[i : i + size] for i in range(0, len(contacts), size))]
    chord(score_shard.s(version_id, as_of, lo, hi) for lo, hi in bounds)(score_finish.s(version_id, as_of))
    return {"scored": None, "shards": len(bounds)}


@shared_task(name="predictions.tasks.score_shard", acks_late=True)
def score_shard(version_id: int, as_of: int, first_contact: int, last_contact: int) -> int:
    """Score and store the eligible contacts with ids in [first_contact, last_contact]."""
    from predictions.models import ModelVersion
    from predictions.scoring import model_version_score, scores_store

    version = ModelVersion.objects.select_related("workspace").get(pk=version_id)
    run = model_version_score(version=version, as_of=as_of, contact_range=(first_contact, last_contact))
    return scores_store(run)


@shared_task(name="predictions.tasks.score_finish")
def score_finish(stored: list[int], version_id: int, as_of: int) -> dict:
    """After every shard: drop scores of contacts no longer eligible."""
    from predictions.models import ModelVersion
    from predictions.scoring import scores_prune

    scores_prune(version=ModelVersion.objects.get(pk=version_id), as_of=as_of)
    return {"scored": sum(stored), "shards": len(stored)}


@shared_task(name="predictions.tasks.explain_contact")
def explain_contact(version_id: int, contact_id: int) -> dict:
    """Score and explain one contact (the API and the web page wait for this)."""
    from funnel_site.events.models import Contact
    from predictions.models import ModelVersion
    from predictions.scoring import contact_explain
    from predictions.services import PredictionError

    version = ModelVersion.objects.get(pk=version_id)
    contact = Contact.objects.get(pk=contact_id, workspace_id=version.workspace_id)
    try:
        score = contact_explain(version=version, contact=contact)
    except PredictionError as exc:
        return {"error": str(exc)}
    return {"score_id": score.pk}
