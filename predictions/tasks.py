"""Celery tasks of predictions: thin, they take ids and call the services (routing: funnel_site/queues.py).

`train_*` tasks and the CRF stage tagger (`stage_suggestions_refresh*`: model fitting, CPU-bound,
kept off the latency-sensitive `scoring` queue) run on the `training` queue, the others on `scoring`. Nothing here imports
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
        outcome = model_version_run(version_id=version_id)
    except RunnerAlive as exc:  # a duplicate while the first delivery still runs: look again later
        raise self.retry(countdown=exc.retry_in) from None
    if outcome == "succeeded":
        # a training is when a workspace's events were last read in full: suggest stages for the
        # event names its stage map does not know (a person accepts them; nothing changes by itself)
        from predictions.models import ModelVersion

        workspace_id = ModelVersion.objects.values_list("workspace_id", flat=True).get(pk=version_id)
        stage_suggestions_refresh.delay(workspace_id)
    return outcome


@shared_task(name="predictions.tasks.stage_suggestions_refresh", acks_late=True)
def stage_suggestions_refresh(workspace_id: int) -> int:
    """Re-run the CRF stage tagger of one workspace; returns the number of suggestions stored."""
    from funnel_site.events.models import Workspace
    from predictions.services import stage_suggestions_refresh as refresh

    workspace = Workspace.objects.filter(pk=workspace_id).first()
    return 0 if workspace is None else refresh(workspace=workspace)  # deleted meanwhile: nothing to do


@shared_task(name="predictions.tasks.stage_suggestions_refresh_all")
def stage_suggestions_refresh_all() -> list[int]:
    """Nightly (beat): one refresh task per workspace with events; returns their workspace ids."""
    from django.db.models import Exists, OuterRef

    from funnel_site.events.models import Event, Workspace

    # EXISTS per workspace (an index probe each), not a DISTINCT over every event
    ids = list(Workspace.objects.filter(Exists(Event.objects.filter(workspace_id=OuterRef("pk"))))
               .order_by("pk").values_list("pk", flat=True))
    for workspace_id in ids:
        stage_suggestions_refresh.delay(workspace_id)
    return ids


@shared_task(name="predictions.tasks.reap_stale_trainings")
def reap_stale_trainings() -> int:
    """Fail running versions whose worker stopped sending heartbeats (periodic)."""
    from predictions.services import model_versions_fail_stale

    return model_versions_fail_stale()


@shared_task(name="predictions.tasks.score_active_models")
def score_active_models() -> list[int]:
    """Queue a scoring run of every active model (nightly, by beat); returns the run ids."""
    from predictions.models import ModelVersion
    from predictions.services import PredictionError, scoring_queue

    runs = []
    for version_id in ModelVersion.objects.filter(is_active=True).values_list("pk", flat=True):
        try:  # one model without a usable artifact does not keep the others from their run
            runs.append(scoring_queue(version_id=version_id, trigger="nightly").pk)
        except PredictionError:
            continue
    return runs


@shared_task(name="predictions.tasks.score_model_version")
def score_model_version(version_id: int) -> int:
    """Queue a scoring run of one version (kept for callers of the earlier API); returns the run id."""
    from predictions.services import scoring_queue

    return scoring_queue(version_id=version_id, trigger="api").pk


@shared_task(name="predictions.tasks.scoring_run_start", acks_late=True, reject_on_worker_lost=True)
def scoring_run_start(run_id: int) -> dict:
    """Plan a run and fan its shards out as a chord on `scoring` (one shard: scored right here)."""
    from predictions.recovery import scoring_run_heartbeat
    from predictions.scoring import scoring_run_finish, scoring_run_plan, scoring_shard_safe

    with scoring_run_heartbeat(run_id):
        bounds = scoring_run_plan(run_id=run_id)
        if bounds is None:
            return {"run": run_id, "started": False}
        if len(bounds) <= 1:
            results = [scoring_shard_safe(run_id=run_id, first_contact=lo, last_contact=hi) for lo, hi in bounds]
            run = scoring_run_finish(run_id=run_id, shard_results=results)
            return {"run": run_id, "status": run.status, "shards": len(bounds)}
    chord(score_shard.s(run_id, lo, hi) for lo, hi in bounds)(score_finish.s(run_id))
    return {"run": run_id, "shards": len(bounds)}


@shared_task(name="predictions.tasks.score_shard", acks_late=True, reject_on_worker_lost=True)
def score_shard(run_id: int, first_contact: int, last_contact: int) -> dict:
    """Score and stage one contact-id range of a run (idempotent: a redelivery replaces its rows)."""
    from predictions.recovery import scoring_run_heartbeat
    from predictions.scoring import scoring_shard_safe

    try:
        with scoring_run_heartbeat(run_id):
            return scoring_shard_safe(run_id=run_id, first_contact=first_contact, last_contact=last_contact)
    except Exception as exc:  # noqa: BLE001 - any failure fails the run (named), the chord still ends
        return {"error": f"shard {first_contact}-{last_contact}: {type(exc).__name__}: {exc}"}


@shared_task(name="predictions.tasks.score_finish", acks_late=True)
def score_finish(results: list[dict], run_id: int) -> dict:
    """After every shard: percentiles, then the run's scores become current (or the run fails)."""
    from predictions.recovery import scoring_run_heartbeat
    from predictions.scoring import scoring_run_finish

    with scoring_run_heartbeat(run_id):
        run = scoring_run_finish(run_id=run_id, shard_results=results)
    return {"run": run_id, "status": run.status}


@shared_task(name="predictions.tasks.reap_stale_scoring_runs")
def reap_stale_scoring_runs() -> int:
    """Fail scoring runs that never finished (periodic)."""
    from predictions.scoring import scoring_runs_fail_stale

    return scoring_runs_fail_stale()


@shared_task(name="predictions.tasks.rescore_drain", acks_late=True, reject_on_worker_lost=True)
def rescore_drain(workspace_id: int) -> int:
    """Rescore the workspace's contacts with new events (debounced: one task per burst)."""
    from predictions.realtime import rescore_drain_run

    return rescore_drain_run(workspace_id=workspace_id)


@shared_task(name="predictions.tasks.explain_score")
def explain_score(score_id: int) -> dict:
    """Explain one stored score and keep the factors on it (asked by a first read)."""
    from predictions.realtime import score_explain

    score = score_explain(score_id=score_id)
    return {"score_id": score_id, "explained": bool(score and score.explained_at)}
