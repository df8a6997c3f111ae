"""Tenants (workspaces), their API keys and members, and the append-only event store."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone


class FunnelStage(models.TextChoices):
    """The five marketing funnel stages of DESIGN section 5."""

    AWARENESS = "awareness", "Awareness"
    INTEREST = "interest", "Interest"
    CONSIDERATION = "consideration", "Consideration"
    PURCHASE = "purchase", "Purchase"
    LOYALTY = "loyalty", "Loyalty"


class Workspace(models.Model):
    """A tenant: one brand or client of the platform. Every row below belongs to exactly one."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="workspaces", blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    """A Django user's access to a workspace in the web UI."""

    class Role(models.TextChoices):
        """DESIGN section 5: a viewer reads; an editor also changes funnels and segments; an admin
        also trains, activates, and manages API keys, destinations, syncs and members."""

        VIEWER = "viewer", "Viewer"
        EDITOR = "editor", "Editor"
        ADMIN = "admin", "Admin"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ADMIN)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="uniq_membership")
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.workspace}"


class ApiKey(models.Model):
    """A workspace API key. Only a SHA-256 hash is stored; the prefix identifies the key in lists."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    # what a request authenticated by this key may do (funnel_site.events.roles)
    role = models.CharField(max_length=16, choices=Membership.Role.choices, default=Membership.Role.ADMIN)
    # requests this key may make, e.g. "600/min" (blank: settings.FUNNEL_THROTTLE_RATES["api_key"])
    rate_limit = models.CharField(
        max_length=32, blank=True, default="",
        validators=[RegexValidator(r"^[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)$",
                                   "write a rate like 600/min, 10/s, 5000/hour or 100000/day")],
    )
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.workspace.slug})"


class StageMapping(models.Model):
    """A workspace's override of the default event-name -> stage map (blank stage: no stage)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="stage_mappings")
    event_name = models.CharField(max_length=200)
    stage = models.CharField(max_length=16, choices=FunnelStage.choices, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "event_name"], name="uniq_stage_mapping")
        ]

    def __str__(self) -> str:
        return f"{self.event_name} -> {self.stage or '(none)'}"


class Contact(models.Model):
    """A person known to a workspace by its external id (Segment userId/anonymousId, CRM id...)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="contacts")
    external_id = models.CharField(max_length=255)
    email = models.CharField(max_length=254, blank=True)
    traits = models.JSONField(default=dict, blank=True)
    first_seen = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    # The earliest purchase: a later purchase is a repeat purchase, staged as loyalty.
    first_purchase_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "external_id"], name="uniq_contact")
        ]

    def __str__(self) -> str:
        return self.external_id


class Campaign(models.Model):
    """A marketing campaign, referenced by events through its key."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="campaigns")
    key = models.CharField(max_length=200)
    name = models.CharField(max_length=200, blank=True)
    channel = models.CharField(max_length=100, blank=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "key"], name="uniq_campaign")]

    def __str__(self) -> str:
        return self.name or self.key


class Event(models.Model):
    """One behaviour or campaign event. Append-only; `message_id` makes ingestion idempotent.

    The foreign keys are not enforced by the database (`db_constraint=False`): a deferred FK check
    per key per row doubled the cost of bulk ingestion (see docs/benchmarks.md). The ingestion
    service creates the contact and campaign of every event in the same transaction, and Django
    still cascades deletes. `workspace` has no index of its own: the unique constraint and the name
    index start with it. Five indexes in all: each one costs every ingested row a b-tree insert.
    """

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    # Indexed by event_contact_time below, which starts with it.
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="events", db_constraint=False, db_index=False
    )
    name = models.CharField(max_length=200)
    # No stored stage: it depends on the contact's other purchases (a repeat purchase is loyalty),
    # which can arrive later, so it is derived in one place (`stages.derive_stages`) on read.
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    # Indexed only where set (the partial index below): most events have no campaign.
    campaign = models.ForeignKey(
        Campaign, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        db_constraint=False, db_index=False,
    )
    channel = models.CharField(max_length=100, blank=True)
    value = models.FloatField(null=True, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    message_id = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "message_id"], name="uniq_event_message")
        ]
        indexes = [
            # per-contact time order (sequences, strict funnels, explanations) and the cascade of a
            # contact's deletion; a contact belongs to one workspace, so it need not lead with it
            models.Index(fields=["contact", "timestamp"], name="event_contact_time"),
            # per-event-name time ranges (funnel steps)
            models.Index(fields=["workspace", "name", "timestamp"], name="event_name_time"),
            # SET_NULL when a campaign is deleted
            models.Index(fields=["campaign"], name="event_campaign", condition=models.Q(campaign__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.name} @ {self.timestamp:%Y-%m-%d %H:%M}"


class IngestCounter(models.Model):
    """Per workspace: the sequence number of its newest ingest-log row, and the log's epoch.

    Every ingest transaction increments `seq` as its last statement; the row lock it takes is held
    until commit, so log sequence numbers follow commit order (see `funnel_site.events.ingestlog`).
    `epoch` is random per counter: a snapshot on disk made from another database (or from one since
    recreated) names another epoch and is not used.
    """

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, primary_key=True, related_name="+")
    seq = models.BigIntegerField(default=0)
    epoch = models.CharField(max_length=32)


class IngestLogEntry(models.Model):
    """One committed ingest transaction: its place in commit order and the range of its event ids.

    The range may also hold ids of concurrent transactions (ids are drawn from one sequence by all
    writers); a reader fetches the range and keeps the ids it has not read yet.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+", db_index=False)
    seq = models.BigIntegerField()
    first_event_id = models.BigIntegerField()
    last_event_id = models.BigIntegerField()
    events = models.IntegerField()
    committed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "seq"], name="uniq_ingest_log_seq")]
