"""Planning a run: the diff of the segment's members against what was last delivered, written as
outbox rows (one per pending change) in the transaction that starts the run.

Because the diff is taken against `DeliveredRecord` (what the destination accepted) rather than
against the membership changes since the last run, nothing is lost when a run fails, a signal is
missed or transactions commit out of order: whatever was not delivered is still different.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from django.db.models import Q

from integrations.mapping import desired_records
from integrations.models import (
    DeliveredRecord,
    FailedRecord,
    Operation,
    OutboxItem,
    Suppression,
    SyncMode,
    SyncRecord,
    SyncRun,
)

PREVIEW_LIMIT = 5000  # planned records kept for a dry run's preview


def payload_hash(payload: dict) -> str:
    """A stable digest of what would be sent for one contact."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Plan:
    """The changes a run would make, and the records it skips with their reasons."""

    changes: list[tuple[int, str, dict]] = field(default_factory=list)  # (contact, operation, payload)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (contact, reason)
    delivered: int = 0

    def count(self, operation: str) -> int:
        return sum(1 for _, op, _ in self.changes if op == operation)

    @property
    def counts(self) -> dict:
        return {"add": self.count(Operation.ADD), "update": self.count(Operation.UPDATE),
                "remove": self.count(Operation.REMOVE), "skip": len(self.skipped), "delivered": self.delivered}


def sync_diff(*, sync) -> Plan:
    """The plan of `sync` now: adds (not delivered), updates (delivered data differs; not in
    add_only), removes (mirror: delivered but no longer a member), skips (suppressed, or refused
    too often with unchanged data)."""
    desired = desired_records(sync=sync)
    delivered = {
        cid: (fields, ref)
        for cid, fields, ref in DeliveredRecord.objects.filter(sync=sync).values_list("contact_id", "fields", "external_ref")
    }
    suppressed = set(
        Suppression.objects.filter(workspace_id=sync.workspace_id)
        .filter(Q(destination__isnull=True) | Q(destination_id=sync.destination_id))
        .values_list("contact_id", flat=True)
    )
    refused = {
        cid: (h, n, err)
        for cid, h, n, err in FailedRecord.objects.filter(sync=sync).values_list("contact_id", "payload_hash", "refusals", "error")
    }
    plan = Plan(delivered=len(delivered))
    for cid, (external_id, email, fields) in desired.items():
        payload = {"external_id": external_id, "email": email, "fields": fields}
        if cid in suppressed:
            plan.skipped.append((cid, "unsubscribed or deleted in the tool: not sent again"))
            continue
        before = refused.get(cid)
        if before and before[0] == payload_hash(payload) and before[1] >= FailedRecord.RETRY_LIMIT:
            plan.skipped.append((cid, f"refused {before[1]} times, not retried until its data changes: {before[2]}"[:500]))
            continue
        if cid not in delivered:
            plan.changes.append((cid, Operation.ADD, payload))
        elif sync.mode != SyncMode.ADD_ONLY and delivered[cid][0] != {"email": email, "fields": fields}:
            plan.changes.append((cid, Operation.UPDATE, {**payload, "external_ref": delivered[cid][1]}))
    if sync.mode == SyncMode.MIRROR:
        for cid, (stored, ref) in delivered.items():
            if cid not in desired:
                plan.changes.append((cid, Operation.REMOVE, {
                    "external_id": "", "email": stored.get("email", ""), "fields": {}, "external_ref": ref,
                }))
    return plan


def removal_guard(*, sync, plan: Plan, confirmed: bool) -> str:
    """An explanation when a mirror run would remove more than the sync's share ('' when fine)."""
    removes = plan.count(Operation.REMOVE)
    if confirmed or not removes or not plan.delivered:
        return ""
    share = removes / plan.delivered
    if share <= sync.max_removal_share:
        return ""
    return (f"this mirror run would remove {removes} of {plan.delivered} delivered records ({share:.0%}), more than "
            f"the sync's limit of {sync.max_removal_share:.0%}: review the dry run and run again with confirm_removals")


def run_plan_write(*, run: SyncRun, plan: Plan) -> None:
    """Store the plan of a locked, running run: outbox rows (or, for a dry run, preview records)."""
    counts = plan.counts
    if "read_back" in (run.planned_counts or {}):  # written before the plan (integrations/readback.py)
        counts["read_back"] = run.planned_counts["read_back"]
    run.planned_counts = counts
    run.planned = True
    run.skipped = len(plan.skipped)
    if run.dry_run or run.needs_confirmation:
        preview = [SyncRecord(run=run, contact_id=cid, operation=op, status=SyncRecord.Status.PLANNED)
                   for cid, op, _ in plan.changes[:PREVIEW_LIMIT]]
        SyncRecord.objects.bulk_create(preview, batch_size=2000)
        if run.dry_run:
            run.added, run.updated, run.removed = counts["add"], counts["update"], counts["remove"]
    else:
        OutboxItem.objects.bulk_create(
            [OutboxItem(run=run, sync_id=run.sync_id, contact_id=cid, operation=op, payload=payload)
             for cid, op, payload in plan.changes],
            batch_size=5000,
        )
    SyncRecord.objects.bulk_create(
        [SyncRecord(run=run, contact_id=cid, operation=Operation.ADD, status=SyncRecord.Status.SKIPPED, error=why)
         for cid, why in plan.skipped[:PREVIEW_LIMIT]],
        batch_size=2000,
    )
