"""Writes of integrations: destinations, syncs (with their beat schedules), run requests, webhook
sources and replays. Tasks are enqueued by name on commit (services never import tasks)."""

from __future__ import annotations

import json

from celery import current_app
from django.db import IntegrityError, transaction
from django.utils import timezone

from funnel_site.events.models import Workspace
from integrations.destinations import ADAPTERS, adapter_class
from integrations.destinations.base import DestinationError
from integrations.mapping import mapping_validate
from integrations.models import Destination, Sync, SyncMode, SyncRun, WebhookDelivery, WebhookSource
from predictions.models import Segment

RUN_TASK = "integrations.tasks.sync_run_execute"
SCHEDULED_TASK = "integrations.tasks.sync_scheduled"
PROCESS_TASK = "integrations.inbound.process_deliveries"


class IntegrationError(ValueError):
    """A request the integrations cannot carry out; the message names the field and the reason."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def destination_create(*, workspace: Workspace, kind: str, name: str, settings: dict, credentials: dict) -> Destination:
    """A destination with encrypted credentials; the adapter checks the settings it needs."""
    if kind not in ADAPTERS:
        raise IntegrationError(f"kind must be one of {', '.join(ADAPTERS)}", "kind")
    try:
        adapter_class(kind)(settings=settings, credentials=credentials)
    except DestinationError as exc:
        raise IntegrationError(str(exc), "settings") from None
    destination = Destination(workspace=workspace, kind=kind, name=name, settings=settings or {})
    destination.set_credentials(credentials or {})
    try:
        with transaction.atomic():
            destination.save()
    except IntegrityError:
        raise IntegrationError(f"a destination named {name!r} exists already", "name") from None
    return destination


def destination_test(*, destination: Destination) -> tuple[bool, str]:
    """Call the tool once with the stored credentials; the outcome is kept on the destination."""
    from integrations.engine import adapter_for

    try:
        ok, message = True, adapter_for(destination).test_connection()
    except DestinationError as exc:
        ok, message = False, str(exc)
    Destination.objects.filter(pk=destination.pk).update(
        last_tested_at=timezone.now(), last_test_ok=ok, last_test_message=message[:1000]
    )
    return ok, message


def _segment(workspace: Workspace, segment) -> Segment:
    qs = Segment.objects.filter(workspace=workspace)
    found = qs.filter(pk=segment).first() if str(segment).isdigit() else qs.filter(name=segment).first()
    if found is None:
        raise IntegrationError(f"no segment {segment!r} in this workspace", "segment")
    return found


def cron_validate(schedule: str) -> list[str]:
    """The five fields of a cron expression (minute hour day month weekday), checked by Celery."""
    from celery.schedules import crontab

    parts = schedule.split()
    if len(parts) != 5:
        raise IntegrationError("schedule must be a cron expression of 5 fields: minute hour day month weekday", "schedule")
    try:
        crontab(minute=parts[0], hour=parts[1], day_of_month=parts[2], month_of_year=parts[3], day_of_week=parts[4])
    except (ValueError, TypeError) as exc:
        raise IntegrationError(f"schedule {schedule!r}: {exc}", "schedule") from None
    return parts


def _schedule_write(sync: Sync) -> None:
    """Keep the sync's django-celery-beat PeriodicTask in step with `sync.schedule`."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    if not sync.schedule:
        if sync.periodic_task_id:
            PeriodicTask.objects.filter(pk=sync.periodic_task_id).delete()
            Sync.objects.filter(pk=sync.pk).update(periodic_task=None)
        return
    minute, hour, day, month, weekday = cron_validate(sync.schedule)
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=minute, hour=hour, day_of_month=day, month_of_year=month, day_of_week=weekday, timezone="UTC"
    )
    task, _ = PeriodicTask.objects.update_or_create(
        name=f"integrations-sync-{sync.pk}",
        defaults={"task": SCHEDULED_TASK, "crontab": crontab, "interval": None, "args": json.dumps([sync.pk]),
                  "queue": "sync", "enabled": sync.enabled},
    )
    if sync.periodic_task_id != task.pk:
        Sync.objects.filter(pk=sync.pk).update(periodic_task=task)
        sync.periodic_task = task


def sync_create(
    *, workspace: Workspace, segment, destination: int, mode: str = SyncMode.UPSERT, schedule: str | None = None,
    field_mapping: dict | None = None, write_empty: bool = False, max_removal_share: float = 0.2,
    run_on_change: bool = True,
) -> Sync:
    """A sync of a segment (id or name) to a destination of the same workspace, with its schedule."""
    seg = _segment(workspace, segment)
    dest = Destination.objects.filter(workspace=workspace, pk=destination).first()
    if dest is None:
        raise IntegrationError(f"no destination {destination!r} in this workspace", "destination")
    if mode not in SyncMode.values:
        raise IntegrationError(f"mode must be one of {', '.join(SyncMode.values)}", "mode")
    if schedule:
        cron_validate(schedule)
    try:
        mapping = mapping_validate(field_mapping or {})
    except ValueError as exc:
        raise IntegrationError(str(exc), "field_mapping") from None
    if not 0 <= max_removal_share <= 1:
        raise IntegrationError("max_removal_share must be between 0 and 1", "max_removal_share")
    with transaction.atomic():
        sync = Sync.objects.create(
            workspace=workspace, segment=seg, destination=dest, mode=mode, schedule=schedule or "",
            field_mapping=mapping, write_empty=write_empty, max_removal_share=max_removal_share,
            run_on_change=run_on_change,
        )
        _schedule_write(sync)
    return sync


def sync_update(*, sync: Sync, **changes) -> Sync:
    """Change a sync's mode, mapping, schedule or switches (the schedule follows in beat)."""
    if "mode" in changes and changes["mode"] not in SyncMode.values:
        raise IntegrationError(f"mode must be one of {', '.join(SyncMode.values)}", "mode")
    if changes.get("schedule"):
        cron_validate(changes["schedule"])
    if "field_mapping" in changes:
        try:
            changes["field_mapping"] = mapping_validate(changes["field_mapping"])
        except ValueError as exc:
            raise IntegrationError(str(exc), "field_mapping") from None
    for key, value in changes.items():
        setattr(sync, key, "" if key == "schedule" and value is None else value)
    with transaction.atomic():
        sync.save()
        _schedule_write(sync)
    return sync


def sync_run_request(
    *, sync: Sync, dry_run: bool = False, trigger: str = "manual", confirm_removals: bool = False, enqueue: bool = True
) -> tuple[SyncRun, bool]:
    """A queued run of `sync` (enqueued on commit), or the run already active: (run, created)."""
    try:
        with transaction.atomic():
            run = SyncRun.objects.create(workspace_id=sync.workspace_id, sync=sync, dry_run=dry_run, trigger=trigger,
                                         confirm_removals=confirm_removals)
    except IntegrityError:
        active = SyncRun.objects.filter(sync=sync, status__in=SyncRun.ACTIVE).first()
        if active is None:  # it finished in between
            return sync_run_request(sync=sync, dry_run=dry_run, trigger=trigger, confirm_removals=confirm_removals,
                                    enqueue=enqueue)
        return active, False
    if enqueue:
        transaction.on_commit(lambda: current_app.send_task(RUN_TASK, args=[run.pk]))
    return run, True


def segment_syncs_request(*, segment_id: int, workspace_id: int) -> list[int]:
    """Queue a run of every enabled sync of a segment that asked to follow its changes."""
    run_ids = []
    for sync in Sync.objects.filter(segment_id=segment_id, workspace_id=workspace_id, enabled=True, run_on_change=True):
        run, _ = sync_run_request(sync=sync, trigger="segment")
        run_ids.append(run.pk)
    return run_ids


def webhook_source_create(*, workspace: Workspace, source: str, secret: str) -> WebhookSource:
    """Register a signing secret (several may be active: rotation)."""
    from integrations.crypto import encrypt_json
    from integrations.models import WebhookSourceKind

    if source not in WebhookSourceKind.values:
        raise IntegrationError(f"source must be one of {', '.join(WebhookSourceKind.values)}", "source")
    secret = (secret or "").strip()
    if len(secret) < 16:
        raise IntegrationError("secret must be at least 16 characters", "secret")
    if source == "standard":
        from integrations.webhooks.standard import secret_bytes

        try:
            secret_bytes(secret)
        except ValueError as exc:
            raise IntegrationError(str(exc), "secret") from None
    from integrations.webhooks.base import secrets_forget

    created = WebhookSource.objects.create(
        workspace=workspace, source=source, secret_encrypted=encrypt_json({"secret": secret}), hint=secret[-4:]
    )
    secrets_forget()
    return created


def webhook_source_deactivate(*, source: WebhookSource) -> None:
    """Retire a secret (after rotation)."""
    from integrations.webhooks.base import secrets_forget

    WebhookSource.objects.filter(pk=source.pk).update(active=False)
    secrets_forget()


def webhook_delivery_replay(*, delivery: WebhookDelivery) -> None:
    """Process a stored delivery again (after a fix), on the ingest queue."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=WebhookDelivery.Status.RECEIVED, error="")
    transaction.on_commit(lambda: current_app.send_task(PROCESS_TASK, args=[[delivery.pk]], queue="ingest"))
