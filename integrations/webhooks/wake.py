"""Waking the processing of stored deliveries, off the request path.

A delivery is safe once its row is committed; processing it is the `ingest` queue's job. Publishing
that task from the request cost more than the request's own work (6 ms idle, 20-30 ms on a loaded
machine, through the broker's round trips), and it landed on whichever request opened a coalescing
window, which is what a p99 measures. So the request only notes the workspace in this process's
set; one daemon thread per web process publishes `process_pending(workspace)` at most once per
INTEGRATIONS_WEBHOOK_COALESCE_SECONDS per workspace, delayed by that window so the task sees the
window's rows.

Nothing depends on the publish for correctness: the rows are stored before the 200, processing is
idempotent, and beat's sweep (`integrations-process-pending-webhooks`, every minute) processes any row whose
wake-up was lost (a process killed between the commit and the publish, a broker down).
"""

from __future__ import annotations

import logging
import os
import threading
import time

from celery import current_app
from django.conf import settings

PENDING_TASK = "integrations.inbound.process_pending"
logger = logging.getLogger("integrations.webhooks")


class Waker:
    """Collects workspaces to wake; a thread, started in the process that first needs it (so after
    gunicorn's fork), publishes them."""

    def __init__(self) -> None:
        self._pending: set[int] = set()
        self._cond = threading.Condition()
        self._pid = 0

    def wake(self, workspace_id: int) -> None:
        with self._cond:
            if self._pid != os.getpid():  # first use in this process (a forked worker has no thread)
                self._pid = os.getpid()
                self._pending = set()
                threading.Thread(target=self._loop, name="webhook-waker", daemon=True).start()
            if workspace_id not in self._pending:
                self._pending.add(workspace_id)
                self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                batch, self._pending = self._pending, set()
            window = settings.INTEGRATIONS_WEBHOOK_COALESCE_SECONDS
            for workspace_id in batch:
                try:
                    current_app.send_task(PENDING_TASK, args=[workspace_id], queue="ingest", countdown=window or None)
                except Exception:  # the broker is down: the sweep processes these rows later
                    logger.warning("could not queue webhook processing", exc_info=True,
                                   extra={"workspace_id": workspace_id})
            if window:
                time.sleep(window)  # coalesce: one task per workspace per window, whatever the rate


waker = Waker()
