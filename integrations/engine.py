"""The sync engine: claim a run (row lock + status), plan it once, deliver its outbox in batches.

Retries belong here, not to the adapters: a 429 waits for Retry-After, a 5xx or timeout backs off
exponentially with full jitter (bounded tries), a 4xx of a whole batch halves it until the bad
records are isolated, and a 4xx of one record is recorded against it. After a worker dies, the
redelivered task resumes the run: sent items are never sent again; the batch that was in flight is
re-sent with the same outbox ids (and the webhook adapter's same `webhook-id`).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from integrations.destinations import adapter_class
from integrations.destinations.base import (
    BatchRejected,
    ConfigurationError,
    DestinationError,
    Outcome,
    RateLimited,
    Record,
    TransientError,
)
from integrations.models import (
    DeliveredRecord,
    DeliveryAttempt,
    FailedRecord,
    Operation,
    OutboxItem,
    Suppression,
    SyncRecord,
    SyncRun,
)
from integrations.plan import payload_hash, removal_guard, run_plan_write, sync_diff
from integrations.ratelimit import TokenBucket, account_key
from integrations.readback import destination_read_back

logger = logging.getLogger("integrations.engine")
FINAL = (SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTIAL, SyncRun.Status.FAILED)


class RunBusy(Exception):
    """Another live worker runs this run; the task tries again later."""


def runner_name() -> str:
    """host:pid of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _runner_alive(runner: str, heartbeat_at) -> bool:
    host, _, pid = runner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        if int(pid) == os.getpid():
            return False  # this very process: an earlier try of ours that raised
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    stale = timezone.now() - timezone.timedelta(seconds=settings.INTEGRATIONS_RUN_STALE_SECONDS)
    return heartbeat_at is not None and heartbeat_at > stale


def adapter_for(destination):
    """An adapter of `destination` with its account's shared rate limiter."""
    from integrations.crypto import CredentialsUnreadable

    cls = adapter_class(destination.kind)
    try:
        credentials = destination.credentials
    except CredentialsUnreadable as exc:
        raise ConfigurationError(str(exc)) from None
    rate, burst = cls.effective_rate_limit(destination.settings or {})
    adapter = cls(settings=destination.settings or {}, credentials=credentials)
    adapter.limiter = TokenBucket(
        key=account_key(kind=destination.kind, api_base=adapter.api_base, credentials=credentials), rate=rate, burst=burst
    )
    return adapter


def _claim(run_id: int) -> SyncRun | None:
    """Lock the run and move it to running (planning it the first time); None when nothing is left."""
    with transaction.atomic():
        # lock the run row only: runs of other syncs to the same destination must not wait for this plan
        run = (SyncRun.objects.select_for_update(of=("self",))
               .select_related("sync", "sync__segment", "sync__destination").get(pk=run_id))
        if run.status in FINAL:
            return None
        if run.status == SyncRun.Status.RUNNING and run.runner and _runner_alive(run.runner, run.heartbeat_at):
            raise RunBusy(f"run {run.pk} is running on {run.runner}")
        now = timezone.now()
        run.status, run.runner, run.heartbeat_at = SyncRun.Status.RUNNING, runner_name(), now
        run.started_at = run.started_at or now
        run.attempts += 1
        if not run.planned:
            plan = sync_diff(sync=run.sync)
            guard = "" if run.dry_run else removal_guard(sync=run.sync, plan=plan, confirmed=run.confirm_removals)
            if guard:
                run.needs_confirmation, run.error = True, guard
            run_plan_write(run=run, plan=plan)
            if run.dry_run or guard:
                run.status = SyncRun.Status.SUCCEEDED if run.dry_run else SyncRun.Status.FAILED
                run.finished_at = timezone.now()
                run.save()
                return None
        run.save()
        return run


def sync_run_execute(*, run_id: int) -> SyncRun:
    """Run (or resume) one sync run to its end; returns it refreshed. Idempotent."""
    failure = _read_back_first(run_id)
    if failure:
        return _finish(SyncRun.objects.get(pk=run_id), error=failure, failed=True)
    run = _claim(run_id)
    if run is None:
        return SyncRun.objects.get(pk=run_id)
    from integrations.recovery import sync_run_heartbeat

    with sync_run_heartbeat(run.pk):  # a run whose worker dies is handed back (integrations/recovery.py)
        return _deliver(run)


def _deliver(run: SyncRun) -> SyncRun:
    destination = run.sync.destination
    try:
        adapter = adapter_for(destination)
        adapter.context = {"sync_id": run.sync_id, "run_id": run.pk, "segment_id": run.sync.segment_id,
                           "segment_name": run.sync.segment.name}
        default_batch = adapter.effective_batch_size(destination.settings or {})
        for operations, method in (((Operation.REMOVE,), adapter.remove), ((Operation.ADD, Operation.UPDATE), adapter.upsert)):
            pending = OutboxItem.objects.filter(
                run=run, operation__in=operations,
                status__in=(OutboxItem.Status.PENDING, OutboxItem.Status.IN_FLIGHT)).count()
            batch = adapter.batch_size_for(operation=operations[-1], pending=pending, default=default_batch)
            after = 0  # keyset: every item of a batch leaves it sent or failed, so the next starts past it
            while True:
                items = list(OutboxItem.objects.filter(
                    run=run, operation__in=operations, pk__gt=after,
                    status__in=(OutboxItem.Status.PENDING, OutboxItem.Status.IN_FLIGHT),
                ).order_by("id")[:batch])
                if not items:
                    break
                after = items[-1].pk
                OutboxItem.objects.filter(pk__in=[i.pk for i in items]).update(
                    status=OutboxItem.Status.IN_FLIGHT, tries=F("tries") + 1
                )
                records = [_record_of(item) for item in items]
                outcomes = Sender(run=run, method=method, operation=operations[-1]).send(records)
                _store_outcomes(run=run, items=items, outcomes=outcomes)
        if adapter.snapshot:
            adapter.write_snapshot(_delivered_records(run.sync))
    except ConfigurationError as exc:
        return _finish(run, error=str(exc), failed=True)
    except Exception as exc:  # a bug or an unreadable answer: the run must not stay `running` for ever
        logger.exception("sync run crashed", extra={"run_id": run.pk})
        return _finish(run, error=f"internal error ({exc.__class__.__name__}): {exc}"[:1000], failed=True)
    return _finish(run)


def _read_back_first(run_id: int) -> str:
    """Suppress what the tool reports as unsubscribed or deleted, before the run is planned; '' or
    why it failed (the run then fails: sending without it could re-add someone who unsubscribed)."""
    run = SyncRun.objects.select_related("sync", "sync__destination").get(pk=run_id)
    if run.planned or run.status in FINAL:
        return ""
    if run.status == SyncRun.Status.RUNNING and run.runner and _runner_alive(run.runner, run.heartbeat_at):
        return ""  # the claim raises RunBusy
    destination = run.sync.destination
    if not adapter_class(destination.kind).reads_back:
        return ""
    try:
        destination_read_back(run=run, adapter=adapter_for(destination))
    except DestinationError as exc:
        return f"reading back unsubscribes and deletions failed, nothing was sent: {exc}"[:1000]
    return ""


def _record_of(item: OutboxItem) -> Record:
    p = item.payload
    return Record(contact_id=item.contact_id, operation=item.operation, email=p.get("email", ""),
                  external_id=p.get("external_id", ""), fields=p.get("fields", {}),
                  external_ref=p.get("external_ref", ""), outbox_id=item.pk)


def _delivered_records(sync) -> list[Record]:
    rows = DeliveredRecord.objects.filter(sync=sync).order_by("contact_id").values_list(
        "contact_id", "contact__external_id", "fields", "external_ref")
    return [Record(contact_id=cid, operation=Operation.ADD, email=f.get("email", ""), external_id=ext,
                   fields=f.get("fields", {}), external_ref=ref) for cid, ext, f, ref in rows.iterator(chunk_size=5000)]


@dataclass
class Sender:
    """Sends one batch with the engine's retry rules, recording an attempt row per try."""

    run: SyncRun
    method: object
    operation: str

    def send(self, records: list[Record]) -> list[Outcome]:
        transient_tries = 0
        waited = 0.0
        while True:
            started = time.monotonic()
            try:
                outcomes = self.method(records)
            except RateLimited as exc:
                self._attempt(records, "rate_limited", exc, started)
                wait = min(exc.retry_after, settings.INTEGRATIONS_MAX_RETRY_AFTER_SECONDS)
                if waited + wait > settings.INTEGRATIONS_MAX_RATE_LIMIT_WAIT_SECONDS:
                    return _fail_all(records, f"rate limited for too long: {exc}", permanent=False)
                waited += wait
                time.sleep(wait)
                continue
            except TransientError as exc:
                self._attempt(records, "transient", exc, started)
                transient_tries += 1
                if transient_tries >= settings.INTEGRATIONS_MAX_TRIES:
                    return _fail_all(records, f"gave up after {transient_tries} tries: {exc}", permanent=False)
                time.sleep(backoff_seconds(transient_tries))
                continue
            except BatchRejected as exc:
                self._attempt(records, "rejected", exc, started)
                if len(records) == 1:
                    return _fail_all(records, str(exc), permanent=True)
                middle = len(records) // 2  # halve until the bad records stand alone
                return self.send(records[:middle]) + self.send(records[middle:])
            bad = sum(1 for o in outcomes if not o.ok)
            self._attempt(records, "partial" if bad else "ok", None, started)
            return outcomes

    def _attempt(self, records: list[Record], outcome: str, exc: Exception | None, started: float) -> None:
        DeliveryAttempt.objects.create(
            run=self.run, operation=self.operation, first_item=records[0].outbox_id if records else 0,
            size=len(records), outcome=outcome, status_code=getattr(exc, "status_code", None) if exc else 200,
            error=str(exc)[:1000] if exc else "", duration_ms=int((time.monotonic() - started) * 1000),
        )


def backoff_seconds(attempt: int) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    ceiling = min(settings.INTEGRATIONS_RETRY_CAP_SECONDS, settings.INTEGRATIONS_RETRY_BASE_SECONDS * 2 ** attempt)
    return random.uniform(0, ceiling)


def _fail_all(records: list[Record], error: str, *, permanent: bool) -> list[Outcome]:
    return [Outcome(r.contact_id, False, error=error[:1000], permanent=permanent) for r in records]


def _store_outcomes(*, run: SyncRun, items: list[OutboxItem], outcomes: list[Outcome]) -> None:
    """One transaction: outbox rows, delivered state, per-record results, run counters."""
    by_contact = {o.contact_id: o for o in outcomes}
    now = timezone.now()
    counts = {"added": 0, "updated": 0, "removed": 0, "failed": 0, "skipped": 0}
    delivered, removed, sent, failed, results = [], [], [], [], []
    refusals: list[tuple[OutboxItem, Outcome]] = []
    suppress: list[int] = []
    for item in items:
        outcome = by_contact.get(item.contact_id) or Outcome(item.contact_id, False, error="no outcome")
        if outcome.ok:
            sent.append(item.pk)
            if item.operation == Operation.REMOVE:
                removed.append(item.contact_id)
                counts["removed"] += 1
            else:
                p = item.payload
                delivered.append(DeliveredRecord(
                    sync_id=run.sync_id, contact_id=item.contact_id, delivered_at=now,
                    fields={"email": p.get("email", ""), "fields": p.get("fields", {})},
                    external_ref=outcome.external_ref or p.get("external_ref", ""),
                ))
                counts["added" if item.operation == Operation.ADD else "updated"] += 1
        else:
            item.error = outcome.error
            failed.append(item)
            status = "skipped" if outcome.suppressed else "failed"
            counts["skipped" if outcome.suppressed else "failed"] += 1
            results.append(SyncRecord(run=run, contact_id=item.contact_id, operation=item.operation,
                                      status=status, error=outcome.error[:1000]))
            if outcome.suppressed:
                suppress.append(item.contact_id)
            elif outcome.permanent:
                refusals.append((item, outcome))
    with transaction.atomic():
        OutboxItem.objects.filter(pk__in=sent).update(status=OutboxItem.Status.SENT)
        for item in failed:
            OutboxItem.objects.filter(pk=item.pk).update(status=OutboxItem.Status.FAILED, error=item.error[:1000])
        if delivered:
            DeliveredRecord.objects.bulk_create(
                delivered, update_conflicts=True, unique_fields=["sync", "contact"],
                update_fields=["fields", "external_ref", "delivered_at"], batch_size=2000,
            )
            FailedRecord.objects.filter(sync_id=run.sync_id, contact_id__in=[d.contact_id for d in delivered]).delete()
        if removed:
            DeliveredRecord.objects.filter(sync_id=run.sync_id, contact_id__in=removed).delete()
        for item, outcome in refusals:
            _note_refusal(run=run, item=item, error=outcome.error)
        for contact_id in suppress:
            Suppression.objects.get_or_create(
                contact_id=contact_id, destination_id=run.sync.destination_id,
                defaults={"workspace_id": run.workspace_id, "reason": "reported by the tool",
                          "source": run.sync.destination.kind},
            )
        SyncRecord.objects.bulk_create(results, batch_size=2000)
        SyncRun.objects.filter(pk=run.pk).update(heartbeat_at=now, **{k: F(k) + v for k, v in counts.items()})


def _note_refusal(*, run: SyncRun, item: OutboxItem, error: str) -> None:
    digest = payload_hash({k: item.payload.get(k) for k in ("external_id", "email", "fields")})
    row, created = FailedRecord.objects.get_or_create(
        sync_id=run.sync_id, contact_id=item.contact_id,
        defaults={"payload_hash": digest, "refusals": 1, "error": error[:1000]},
    )
    if not created:
        row.refusals = row.refusals + 1 if row.payload_hash == digest else 1
        row.payload_hash, row.error, row.at = digest, error[:1000], timezone.now()
        row.save(update_fields=["refusals", "payload_hash", "error", "at"])


def _finish(run: SyncRun, *, error: str = "", failed: bool = False) -> SyncRun:
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().get(pk=run.pk)
        if failed:
            OutboxItem.objects.filter(run=run, status__in=(OutboxItem.Status.PENDING, OutboxItem.Status.IN_FLIGHT)).update(
                status=OutboxItem.Status.FAILED, error=error[:1000])
            run.status = SyncRun.Status.FAILED
        elif run.failed:
            run.status = SyncRun.Status.PARTIAL if (run.added + run.updated + run.removed) else SyncRun.Status.FAILED
        else:
            run.status = SyncRun.Status.SUCCEEDED
        run.error = error or run.error
        run.finished_at = timezone.now()
        run.save()
    logger.info("sync run finished", extra={"run_id": run.pk, "status": run.status, "added": run.added,
                                            "updated": run.updated, "removed": run.removed, "failed": run.failed})
    return run


def stale_runs_resume() -> list[int]:
    """Runs left behind: queued or running with no sign of life for INTEGRATIONS_RUN_STALE_SECONDS
    (a task lost by the broker, a worker machine gone). Their ids, for the caller to re-enqueue;
    the claim decides again under the row lock, so a run that is in fact alive is not run twice."""
    cutoff = timezone.now() - timezone.timedelta(seconds=settings.INTEGRATIONS_RUN_STALE_SECONDS)
    queued = SyncRun.objects.filter(status=SyncRun.Status.QUEUED, created_at__lt=cutoff)
    running = SyncRun.objects.filter(status=SyncRun.Status.RUNNING, heartbeat_at__lt=cutoff)
    return list(queued.values_list("pk", flat=True)) + list(running.values_list("pk", flat=True))
