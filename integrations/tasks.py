"""Celery tasks of the `sync` queue: thin, take ids, idempotent (a run is claimed under a row lock)."""

from __future__ import annotations

import contextlib

from celery import shared_task


class _Busy(Exception):
    """Raised to retry while another live worker holds the run."""


@shared_task(name="integrations.tasks.sync_run_execute", bind=True, acks_late=True, reject_on_worker_lost=True,
             max_retries=None)
def sync_run_execute(self, run_id: int) -> str:
    """Run or resume one sync run; redelivered after a worker death, it resumes from the outbox."""
    from integrations.engine import RunBusy
    from integrations.engine import sync_run_execute as execute

    try:
        return execute(run_id=run_id).status
    except RunBusy as exc:
        raise self.retry(exc=exc, countdown=30) from None


@shared_task(name="integrations.tasks.sync_scheduled", acks_late=True)
def sync_scheduled(sync_id: int) -> int | None:
    """Beat's entry for a scheduled sync: queue a run (or find the active one) and execute it."""
    from integrations.engine import RunBusy
    from integrations.engine import sync_run_execute as execute
    from integrations.models import Sync
    from integrations.services import sync_run_request

    sync = Sync.objects.filter(pk=sync_id, enabled=True).first()
    if sync is None:
        return None
    run, _ = sync_run_request(sync=sync, trigger="schedule", enqueue=False)
    with contextlib.suppress(RunBusy):  # a live worker holds it and finishes it
        execute(run_id=run.pk)
    return run.pk


@shared_task(name="integrations.tasks.resume_stale_runs")
def resume_stale_runs() -> list[int]:
    """Beat: re-enqueue runs whose task was lost or whose worker machine is gone."""
    from integrations.engine import stale_runs_resume

    run_ids = stale_runs_resume()
    for run_id in run_ids:
        sync_run_execute.delay(run_id)
    return run_ids


from integrations.inbound import process_deliveries  # noqa: E402, F401  (registered with the worker)
