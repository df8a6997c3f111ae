"""A sync run stranded by a dead worker is handed back (funnel_site/recovery.py).

While `engine.sync_run_execute` runs, `sync_run_heartbeat` keeps the run's `runner` and
`heartbeat_at` fresh every few seconds (batches can wait on a rate limit for minutes, so the
per-batch update alone would look like a death). When the runner is dead, recovery releases the
row (runner emptied, under the row lock, only if it still has that runner) and sends the task
again; the engine's claim then takes the run over and resumes it from the outbox, which is the
truth: sent items are never sent again, the batch that was in flight is re-sent with the same
outbox ids (the receivers' idempotency key), nothing pending is lost. After
INTEGRATIONS_MAX_RUN_ATTEMPTS claims the run is failed, its pending items with it, and named so.
"""

from __future__ import annotations

import structlog
from django.conf import settings
from django.db import transaction

from funnel_site.recovery import RowHeartbeat
from integrations.models import SyncRun

log = structlog.get_logger(__name__)
HEARTBEAT_SECONDS = 5


def sync_run_heartbeat(run_id: int) -> RowHeartbeat:
    """The heartbeat of a run while this process executes it, for `with` around the execution."""
    return RowHeartbeat(SyncRun, run_id, alive={"status": SyncRun.Status.RUNNING}, every=HEARTBEAT_SECONDS)


def sync_run_recover(*, pk: int, runner: str, reason: str) -> bool:
    """Hand a running run whose runner died back to the queue (or fail it after too many claims);
    False when the row moved on meanwhile."""
    from integrations.engine import _finish

    with transaction.atomic():
        run = SyncRun.objects.select_for_update().filter(pk=pk, status=SyncRun.Status.RUNNING, runner=runner).first()
        if run is None:
            return False
        if run.attempts >= settings.INTEGRATIONS_MAX_RUN_ATTEMPTS:
            _finish(run, error=f"{reason}; claimed {run.attempts} times, given up", failed=True)
            log.warning("sync_run_given_up", run=pk, reason=reason, attempts=run.attempts)
            return True
        run.runner = ""  # released: the claim takes it over (engine._claim) and resumes the outbox
        run.save(update_fields=["runner"])
        transaction.on_commit(lambda: _send(pk))
    log.warning("sync_run_requeued", run=pk, reason=reason, attempts=run.attempts)
    return True


def _send(run_id: int) -> None:
    from celery import current_app

    from integrations.services import RUN_TASK

    current_app.send_task(RUN_TASK, args=[run_id])
