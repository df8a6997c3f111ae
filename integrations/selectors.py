"""Reads of integrations."""

from __future__ import annotations

from django.db.models import CharField, F, QuerySet, Value

from integrations.models import OutboxItem, SyncRecord, SyncRun

_COLUMNS = ("contact_id", "external_id", "operation", "result", "message")


def run_records(*, run: SyncRun, status: str = "") -> QuerySet:
    """Per-record results of a run as dicts (contact_id, external_id, operation, result, message):
    the delivered ones are the run's sent outbox rows (`ok`; not copied a second time), the rest are
    its SyncRecords (failed, skipped, planned). `status` filters on the result."""
    sent = (OutboxItem.objects.filter(run=run, status=OutboxItem.Status.SENT)
            .annotate(external_id=F("contact__external_id"), result=Value("ok", output_field=CharField()),
                      message=Value("", output_field=CharField()))
            .values(*_COLUMNS))
    others = (SyncRecord.objects.filter(run=run)
              .annotate(external_id=F("contact__external_id"), result=F("status"), message=F("error"))
              .values(*_COLUMNS))
    if status == "ok":
        return sent.order_by("contact_id")
    if status:
        return others.filter(status=status).order_by("contact_id")
    # the members of a UNION carry no ORDER BY of their own (the models' default ordering is cleared)
    return sent.order_by().union(others.order_by(), all=True).order_by("contact_id")
