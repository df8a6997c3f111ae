"""Read-back of unsubscribes and deletions, before a run is planned.

The adapter lists what the tool reports as unsubscribed, cleaned, suppressed or deleted since the
previous read-back of this destination (`BaseDestination.read_back`); each report that names one of
the workspace's contacts (by email, or by the vendor id this destination accepted for it) becomes a
`Suppression` of this destination. The plan skips suppressed contacts, so nothing re-adds or
updates them: not an upsert, not a mirror run, not a contact who leaves and re-enters the segment.

The cursor is when the previous successful read-back of the destination started (kept in that run's
`planned_counts["read_back"]`), less `OVERLAP` for the clocks of the tool and ours; the first
read-back asks for everything. A read-back that still fails after the engine's retry rules fails
the run before anything is sent: sending without it could re-add someone who unsubscribed.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models.functions import Lower
from django.utils import timezone

from funnel_site.events.models import Contact
from integrations.destinations.base import RateLimited, Reported, TransientError
from integrations.models import DeliveredRecord, Suppression, SyncRun

OVERLAP = timedelta(minutes=10)
CHUNK = 5000


def read_back_cursor(*, destination_id: int) -> datetime | None:
    """When the last successful read-back of the destination started, less the overlap (None: never)."""
    rows = (SyncRun.objects.filter(sync__destination_id=destination_id, planned_counts__has_key="read_back")
            .order_by("-id").values_list("planned_counts", flat=True)[:1])
    for counts in rows:
        at = (counts.get("read_back") or {}).get("at")
        if at:
            return datetime.fromisoformat(at) - OVERLAP
    return None


def reported_contacts(*, workspace_id: int, destination_id: int, reports: list[Reported]) -> dict[int, str]:
    """{contact id: reason} of the reports that name a contact of the workspace."""
    found: dict[int, str] = {}
    by_email = {r.email.strip().lower(): r.reason for r in reports if r.email}
    emails = list(by_email)
    for start in range(0, len(emails), CHUNK):
        rows = (Contact.objects.filter(workspace_id=workspace_id).annotate(lower_email=Lower("email"))
                .filter(lower_email__in=emails[start:start + CHUNK]).values_list("pk", "lower_email"))
        for pk, email in rows:
            found[pk] = by_email[email]
    by_ref = {r.external_ref: r.reason for r in reports if r.external_ref}
    if by_ref:
        delivered = DeliveredRecord.objects.filter(sync__destination_id=destination_id).exclude(external_ref="")
        for pk, ref in delivered.values_list("contact_id", "external_ref").iterator(chunk_size=CHUNK):
            # Salesforce keeps "<Contact id>/<CampaignMember id>": the contact is the first part
            reason = by_ref.get(ref) or by_ref.get(ref.split("/", 1)[0])
            if reason and pk not in found:
                found[pk] = reason
    return found


def _read_with_retries(adapter, since) -> list[Reported]:
    from integrations.engine import backoff_seconds

    waited = 0.0
    tries = 0
    while True:
        try:
            return adapter.read_back(since=since)
        except RateLimited as exc:
            wait = min(exc.retry_after, settings.INTEGRATIONS_MAX_RETRY_AFTER_SECONDS)
            if waited + wait > settings.INTEGRATIONS_MAX_RATE_LIMIT_WAIT_SECONDS:
                raise
            waited += wait
            time.sleep(wait)
        except TransientError:
            tries += 1
            if tries >= settings.INTEGRATIONS_MAX_TRIES:
                raise
            time.sleep(backoff_seconds(tries))


def destination_read_back(*, run: SyncRun, adapter) -> dict:
    """Read back the tool's unsubscribes and deletions for `run` (not planned yet) and suppress them;
    the summary is stored on the run and returned. Raises the adapter's error when it fails."""
    destination_id = run.sync.destination_id
    started = timezone.now()
    since = read_back_cursor(destination_id=destination_id)
    reports = _read_with_retries(adapter, since)
    contacts = reported_contacts(workspace_id=run.workspace_id, destination_id=destination_id, reports=reports)
    already = set(Suppression.objects.filter(destination_id=destination_id, contact_id__in=list(contacts))
                  .values_list("contact_id", flat=True))
    Suppression.objects.bulk_create(
        [Suppression(workspace_id=run.workspace_id, contact_id=pk, destination_id=destination_id,
                     reason=f"reported by the tool: {reason}"[:200], source=adapter.kind)
         for pk, reason in contacts.items() if pk not in already],
        ignore_conflicts=True, batch_size=2000,
    )
    summary = {"at": started.isoformat(), "since": since.isoformat() if since else None,
               "reported": len(reports), "matched": len(contacts), "suppressed": len(set(contacts) - already)}
    counts = dict(run.planned_counts or {})
    counts["read_back"] = summary
    SyncRun.objects.filter(pk=run.pk).update(planned_counts=counts)
    run.planned_counts = counts
    return summary
