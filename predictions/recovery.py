"""A scoring run stranded by a dead worker is failed and tried again as a new run (funnel_site/recovery.py).

Every part of a run (the plan in `scoring_run_start`, each `score_shard`, `score_finish`) runs inside
`scoring_run_heartbeat`: the run records the process that started it (sticky: the shards of other
processes do not replace it) and a heartbeat every few seconds from whichever part runs. When that
process dies (a SIGKILLed worker; the shard messages it had reserved are gone with it, or come back
an hour later on Redis), recovery fails the run and queues a new run of the same version in one
transaction:

- nothing is written twice: the failed run's staged rows are deleted, and a late message of it
  finds the run `failed` and does nothing (every part checks the run's status first);
- the previous scores stay current until the new run switches to its own (a run's rows become
  current together, at its end);
- after PREDICTION_MAX_ATTEMPTS runs in a row stranded this way the model is not tried again.

Known gap: with several workers, a dead worker that held shards of a run started elsewhere is seen
only by the silence rule (SCORING_STALE_SECONDS), and a dead starter fails a run whose shards were
fine (redone as the retry: wasted work, nothing wrong). A per-shard ledger would close both.
"""

from __future__ import annotations

import structlog
from django.conf import settings
from django.db import transaction

from funnel_site.recovery import RowHeartbeat
from predictions.models import ScoringRun

log = structlog.get_logger(__name__)

# A run's shards may wait in the queue behind other work with nobody beating for the run; only
# rule 3 of funnel_site/recovery.py (silence) could mistake that for a death, so it waits longer.
SCORING_STALE_SECONDS = 600


def scoring_run_heartbeat(run_id: int) -> RowHeartbeat:
    """The heartbeat of one part of a run, for `with` around the part."""
    return RowHeartbeat(ScoringRun, run_id, alive={"status__in": ScoringRun.IN_FLIGHT},
                        every=settings.PREDICTION_HEARTBEAT_SECONDS, sticky=True)


def scoring_run_recover(*, pk: int, runner: str, reason: str) -> bool:
    """Fail a running run whose runner died and queue its retry; False when the row moved on meanwhile."""
    from predictions.scoring import scoring_run_fail
    from predictions.services import _send_scoring

    with transaction.atomic():
        run = ScoringRun.objects.select_for_update().filter(
            pk=pk, status=ScoringRun.Status.RUNNING, runner=runner).first()
        if run is None:
            return False
        retry = run.attempt < settings.PREDICTION_MAX_ATTEMPTS
        scoring_run_fail(run_id=run.pk, reason=f"{reason}; " + (
            "tried again as a new run" if retry else f"tried {run.attempt} times, given up"))
        if retry:
            again = ScoringRun.objects.create(workspace_id=run.workspace_id, model_version_id=run.model_version_id,
                                              target=run.target, trigger=run.trigger, attempt=run.attempt + 1)
            transaction.on_commit(lambda: _send_scoring(again.pk))
    log.warning("scoring_run_recovered", run=pk, retry=again.pk if retry else None, reason=reason)
    return True
