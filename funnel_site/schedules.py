"""Every periodic task of the product, in one place (Celery beat; django-celery-beat copies these
entries into the database at start-up, where the admin can change them)."""

from __future__ import annotations

from celery.schedules import crontab

CELERY_BEAT_SCHEDULE = {
    # a training whose worker died would otherwise stay `running` for ever
    "predictions-reap-stale-trainings": {
        "task": "predictions.tasks.reap_stale_trainings",
        "schedule": 60.0,
    },
    # inbound webhook deliveries still waiting (a coalesced wake-up may have missed one)
    "integrations-process-pending-webhooks": {
        "task": "integrations.inbound.process_pending",
        "schedule": 60.0,
    },
    # sync runs whose task was lost or whose worker machine went away
    "integrations-resume-stale-runs": {
        "task": "integrations.tasks.resume_stale_runs",
        "schedule": 120.0,
    },
    # jobs left `running` by a dead worker go back to the queue (funnel_site/recovery.py)
    "recover-stranded-work": {
        "task": "funnel_site.recover_stranded_work",
        "schedule": 30.0,
    },
    # fresh scores of every active model once a day (sharded on the `scoring` queue)
    "predictions-score-active-models": {
        "task": "predictions.tasks.score_active_models",
        "schedule": crontab(hour=3, minute=0),
    },
    # the CRF's stage suggestions for event names new since the last training (one task per workspace)
    "predictions-refresh-stage-suggestions": {
        "task": "predictions.tasks.stage_suggestions_refresh_all",
        "schedule": crontab(hour=4, minute=0),
    },
    # a scoring run whose chord was lost would otherwise stay `running` and block the next one
    "predictions-reap-stale-scoring-runs": {
        "task": "predictions.tasks.reap_stale_scoring_runs",
        "schedule": crontab(minute=30),
    },
}
