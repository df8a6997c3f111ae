"""Celery queue names in one place, and the routing of task modules onto them."""

from enum import StrEnum

from kombu import Exchange, Queue


class CeleryQueue(StrEnum):
    """The worker pools of a scaled-out deployment; the embedded worker consumes all of them."""

    INGEST = "ingest"
    TRAINING = "training"
    SCORING = "scoring"
    SYNC = "sync"


CELERY_TASK_QUEUES = tuple(Queue(q.value, Exchange(q.value, type="direct"), routing_key=q.value) for q in CeleryQueue)

CELERY_TASK_ROUTES = {
    "funnel_site.events.tasks.*": {"queue": CeleryQueue.INGEST.value, "routing_key": "ingest"},
    "funnel_site.funnels.tasks.*": {"queue": CeleryQueue.INGEST.value, "routing_key": "ingest"},
    "predictions.tasks.train_*": {"queue": CeleryQueue.TRAINING.value, "routing_key": "training"},
    # the CRF stage tagger fits a model: with the trainings, not in front of the scoring runs
    "predictions.tasks.stage_suggestions_refresh*": {"queue": CeleryQueue.TRAINING.value, "routing_key": "training"},
    "predictions.tasks.score_*": {"queue": CeleryQueue.SCORING.value, "routing_key": "scoring"},
    "predictions.tasks.*": {"queue": CeleryQueue.SCORING.value, "routing_key": "scoring"},
    "integrations.tasks.*": {"queue": CeleryQueue.SYNC.value, "routing_key": "sync"},
    "integrations.inbound.*": {"queue": CeleryQueue.INGEST.value, "routing_key": "ingest"},
}
