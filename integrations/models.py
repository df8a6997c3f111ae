"""Destinations, syncs and their runs (outbound); webhook sources and deliveries (inbound).

The engine (integrations/engine.py) owns the diff: `DeliveredRecord` is what the destination last
accepted per contact; a run writes one `OutboxItem` per pending change and one `DeliveryAttempt` per
try of a batch (saleor's outbox shape); `SyncRecord` keeps each record's outcome as history.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from funnel_site.events.models import Contact, Workspace
from predictions.models import Segment


class DestinationKind(models.TextChoices):
    HUBSPOT = "hubspot", "HubSpot"
    MAILCHIMP = "mailchimp", "Mailchimp"
    KLAVIYO = "klaviyo", "Klaviyo"
    SALESFORCE = "salesforce", "Salesforce"
    WEBHOOK = "webhook", "Webhook"
    FILE = "file", "File"


class Destination(models.Model):
    """A tool a workspace pushes segments to. Credentials are a Fernet token, never shown again."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="destinations")
    kind = models.CharField(max_length=16, choices=DestinationKind.choices)
    name = models.CharField(max_length=200)
    settings = models.JSONField(default=dict, blank=True, help_text="api_base, list_id, rate_limit ...")
    credentials_encrypted = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_message = models.TextField(blank=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="uniq_destination_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def __repr__(self) -> str:  # never the credentials
        return f"<Destination {self.pk} {self.kind} {self.name!r}>"

    @property
    def credentials(self) -> dict:
        """The decrypted credentials (for adapters only; never serialise this)."""
        from integrations.crypto import decrypt_json

        return decrypt_json(self.credentials_encrypted)

    def set_credentials(self, value: dict) -> None:
        """Encrypt and keep `value` (saved by the caller)."""
        from integrations.crypto import encrypt_json

        self.credentials_encrypted = encrypt_json(value or {})


class SyncMode(models.TextChoices):
    UPSERT = "upsert", "Upsert (add and update)"
    ADD_ONLY = "add_only", "Add only"
    MIRROR = "mirror", "Mirror (also remove leavers)"


class Sync(models.Model):
    """A segment pushed to a destination: which fields, how, when."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="syncs")
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="syncs")
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="syncs")
    mode = models.CharField(max_length=16, choices=SyncMode.choices, default=SyncMode.UPSERT)
    # destination field -> source: "email", "contact_id", "trait:<name>", "score:<target>.probability",
    # "score:<target>.percentile", "score:<target>.top_factor" (integrations/mapping.py)
    field_mapping = models.JSONField(default=dict, blank=True)
    write_empty = models.BooleanField(default=False, help_text="send empty values (overwrite fields with blanks)")
    max_removal_share = models.FloatField(default=0.2, help_text="a mirror run removing more than this share stops")
    schedule = models.CharField(max_length=100, blank=True, help_text="cron: minute hour day month weekday")
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    enabled = models.BooleanField(default=True)
    run_on_change = models.BooleanField(default=True, help_text="run after a refresh changed the segment")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"sync {self.pk}: {self.segment_id} -> {self.destination_id} ({self.mode})"


class SyncRun(models.Model):
    """One execution of a sync (or a dry run): status, counts, timings."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        PARTIAL = "partial"
        FAILED = "failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    sync = models.ForeignKey(Sync, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    dry_run = models.BooleanField(default=False)
    trigger = models.CharField(max_length=16, default="manual", help_text="manual, schedule, segment, cli")
    confirm_removals = models.BooleanField(default=False, help_text="allow a mirror run past the removal guard")
    needs_confirmation = models.BooleanField(default=False)
    planned = models.BooleanField(default=False)
    added = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    planned_counts = models.JSONField(default=dict, blank=True, help_text="the diff: add / update / remove")
    error = models.TextField(blank=True)
    runner = models.CharField(max_length=200, blank=True, help_text="host:pid of the worker running it")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # one run per sync at a time: a second "sync now" gets the active run back
            models.UniqueConstraint(
                fields=["sync"], condition=Q(status__in=["queued", "running"]), name="one_active_run_per_sync"
            )
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of sync {self.sync_id}: {self.status}"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class Operation(models.TextChoices):
    ADD = "add"
    UPDATE = "update"
    REMOVE = "remove"


class OutboxItem(models.Model):
    """A pending change of one contact at one destination, written when the run is planned."""

    class Status(models.TextChoices):
        PENDING = "pending"
        IN_FLIGHT = "in_flight"  # a try is under way (after a worker death: re-sent with the same key)
        SENT = "sent"
        FAILED = "failed"

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="outbox")
    sync = models.ForeignKey(Sync, on_delete=models.CASCADE, related_name="+")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    operation = models.CharField(max_length=8, choices=Operation.choices)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    tries = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run", "status"], name="outbox_run_status")]


class DeliveryAttempt(models.Model):
    """One HTTP try of one batch of outbox items (status code, error, duration)."""

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="attempts_made")
    operation = models.CharField(max_length=8, choices=Operation.choices)
    first_item = models.BigIntegerField()
    size = models.PositiveIntegerField()
    outcome = models.CharField(max_length=16)  # ok, partial, rejected, rate_limited, transient
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]


class SyncRecord(models.Model):
    """The outcome of one record in one run (kept as history; dry runs store the planned diff)."""

    class Status(models.TextChoices):
        OK = "ok"
        FAILED = "failed"
        SKIPPED = "skipped"
        PLANNED = "planned"

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="records")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    operation = models.CharField(max_length=8, choices=Operation.choices)
    status = models.CharField(max_length=8, choices=Status.choices)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run", "status"], name="syncrecord_run_status")]


class DeliveredRecord(models.Model):
    """What the destination last accepted for a contact: the engine diffs against this."""

    sync = models.ForeignKey(Sync, on_delete=models.CASCADE, related_name="delivered")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    fields = models.JSONField(default=dict)
    external_ref = models.CharField(max_length=255, blank=True, help_text="the destination's id for it")
    delivered_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sync", "contact"], name="one_delivered_per_contact")]


class FailedRecord(models.Model):
    """A record the destination refused with a 4xx: after `RETRY_LIMIT` refusals of the same payload
    it is skipped (not retried for ever) until its data changes."""

    RETRY_LIMIT = 3

    sync = models.ForeignKey(Sync, on_delete=models.CASCADE, related_name="+")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    payload_hash = models.CharField(max_length=64)
    refusals = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sync", "contact"], name="one_failed_per_contact")]


class Suppression(models.Model):
    """A contact a tool reported as unsubscribed or deleted: never (re)added by later runs."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    destination = models.ForeignKey(
        Destination, null=True, blank=True, on_delete=models.CASCADE, help_text="empty: every destination"
    )
    reason = models.CharField(max_length=200)
    source = models.CharField(max_length=32, help_text="webhook source or destination kind")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact", "destination"], name="uniq_suppression"),
        ]


class WebhookSourceKind(models.TextChoices):
    HUBSPOT = "hubspot", "HubSpot"
    SEGMENT = "segment", "Segment"
    STANDARD = "standard", "Standard Webhooks"


class WebhookSource(models.Model):
    """A signing secret of an inbound source; several may be active at once (rotation)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="webhook_sources")
    source = models.CharField(max_length=16, choices=WebhookSourceKind.choices)
    secret_encrypted = models.TextField(editable=False)
    hint = models.CharField(max_length=16, blank=True, help_text="last characters, to tell secrets apart")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]

    def __repr__(self) -> str:
        return f"<WebhookSource {self.pk} {self.source} …{self.hint}>"

    @property
    def secret(self) -> str:
        from integrations.crypto import decrypt_json

        return decrypt_json(self.secret_encrypted).get("secret", "")


class WebhookDelivery(models.Model):
    """An accepted inbound payload, stored raw before it is processed (deduped on the provider id)."""

    class Status(models.TextChoices):
        RECEIVED = "received"
        PROCESSED = "processed"
        FAILED = "failed"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=16, choices=WebhookSourceKind.choices)
    provider_id = models.CharField(max_length=255)
    payload = models.TextField(help_text="the raw JSON of this delivery (one event of a HubSpot array)")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "source", "provider_id"], name="uniq_webhook_delivery")
        ]


class WebhookRefusal(models.Model):
    """A refused inbound request: the reason only, nothing of its body."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=16, choices=WebhookSourceKind.choices)
    reason = models.CharField(max_length=32)  # unsigned, bad_signature, stale, malformed, duplicate, secret_unreadable
    status_code = models.PositiveSmallIntegerField()
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
