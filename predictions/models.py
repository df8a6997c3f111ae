"""The model registry (one ModelVersion per training job) and the scores it produced per contact."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from funnel_site.events.models import Contact, Workspace


class Target(models.TextChoices):
    """What a model predicts (DESIGN section 5)."""

    PURCHASE = "purchase", "Purchase"
    CHURN = "churn", "Churn"


class Arch(models.TextChoices):
    """The model family; `auto` runs the tournament of every candidate and serves the best on validation."""

    AUTO = "auto", "Best of the tournament"
    LSTM = "lstm", "LSTM"
    GRU = "gru", "GRU"
    RNN = "rnn", "Simple RNN"
    HMM = "hmm", "Hidden Markov model (funnel stages)"
    GBT_HMM = "gbt_hmm", "Gradient-boosted trees + HMM stage"
    GBT = "gbt", "Gradient-boosted trees (RFM)"
    LOGREG = "logreg", "Logistic regression (RFM)"
    RECENCY = "recency", "Recency alone"
    BGNBD = "bgnbd", "BG/NBD"
    STACK = "stack", "Stacked fusion"


class ModelVersion(models.Model):
    """One training of one target for one workspace, from queued to a published artifact.

    status moves queued -> running -> succeeded | failed | cancelled, under a row lock, so a task
    delivered twice finds the row taken. While running, `progress` (epoch, validation AUC) and
    `heartbeat_at` are written every few seconds; a row without heartbeat for long is failed by a
    periodic task. At most one version per workspace and target is in flight and one is active.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    IN_FLIGHT = (Status.QUEUED, Status.RUNNING)
    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="model_versions")
    target = models.CharField(max_length=16, choices=Target.choices)
    arch = models.CharField(max_length=8, choices=Arch.choices, default=Arch.AUTO, help_text="as requested")
    trained_arch = models.CharField(max_length=8, blank=True, help_text="the candidate served (auto: the best)")
    ensemble = models.BooleanField(default=False)
    # TrainConfig.to_dict() plus `cutoff_unix` (train as of that moment) and `auto_activate`
    config = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.JSONField(default=dict, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    baselines = models.JSONField(default=dict, blank=True)
    candidates = models.JSONField(default=dict, blank=True)
    curves = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    calibration = models.CharField(max_length=16, blank=True)
    validation_cutoff = models.DateTimeField(null=True, blank=True)
    data_end = models.DateTimeField(null=True, blank=True, help_text="newest event used + 1 s")
    timings = models.JSONField(default=dict, blank=True)
    # the tournament: every candidate's backtest figures, the served one and why (ml.trainer.TrainResult)
    scoreboard = models.JSONField(default=dict, blank=True)
    # global importance of the served model by event type and by recency bucket, for the model page
    importance = models.JSONField(default=dict, blank=True)
    failure_reason = models.TextField(blank=True)
    artifact_path = models.CharField(max_length=500, blank=True)
    is_active = models.BooleanField(default=False)
    activated_at = models.DateTimeField(null=True, blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    runner = models.CharField(max_length=200, blank=True, help_text="host:pid of the worker running it")
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "target"], condition=Q(is_active=True), name="one_active_model_per_target"
            ),
            models.UniqueConstraint(
                fields=["workspace", "target"], condition=Q(status__in=["queued", "running"]),
                name="one_training_per_target",
            ),
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="model_version_status_beat")]

    def __str__(self) -> str:
        return f"{self.workspace.slug} {self.target} #{self.pk} ({self.status})"

    @property
    def in_flight(self) -> bool:
        return self.status in self.IN_FLIGHT

    @property
    def horizon_seconds(self) -> int:
        return int(self.config.get("train", {}).get("horizon_seconds", 0))

    @property
    def lookback_seconds(self) -> int:
        return int(self.config.get("train", {}).get("lookback_seconds", 0))


class ScoringRun(models.Model):
    """One batch scoring of every eligible contact with one model version (issue 9).

    queued -> running -> succeeded | failed. Shards stage their scores as rows of this run that are
    not current; the run's end flips them to current in one transaction, so readers see the old
    run's scores or the new run's, never a mix, and a failed run leaves the previous ones in place.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    IN_FLIGHT = (Status.QUEUED, Status.RUNNING)

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="scoring_runs")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="scoring_runs")
    target = models.CharField(max_length=16, choices=Target.choices)
    trigger = models.CharField(max_length=16, default="api", help_text="nightly, cli, api, page, activation")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    as_of = models.DateTimeField(null=True, blank=True, help_text="the cut-off: events before it were used")
    shards = models.PositiveIntegerField(default=0)
    # candidates (contacts active in the lookback by last_seen), eligible, scored, shards_done ...
    counts = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    # the run's raw scores at 1,001 evenly spaced ranks: a real-time rescoring's percentile is read
    # from them in memory instead of counting rows
    raw_quantiles = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    # the process running a part of the run (plan, a shard, the finish) and its heartbeat: a run
    # stranded by a dead worker is failed and tried again as a new run (funnel_site/recovery.py)
    runner = models.CharField(max_length=200, blank=True, help_text="host:pid of the worker running a part of it")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempt = models.PositiveSmallIntegerField(default=1, help_text="1, or the retry's number after a dead worker")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_version"], condition=Q(status__in=["queued", "running"]),
                name="one_scoring_run_in_flight",
            )
        ]

    def __str__(self) -> str:
        return f"{self.workspace.slug} {self.target} run #{self.pk} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class ContactScore(models.Model):
    """A contact's probability for a target, as of a moment, with its explanation once computed.

    Rows with `is_current` are what every reader uses: at most one per contact and target. A batch
    run stages its rows (`scoring_run`, not current) and flips them at its end; a real-time
    rescoring replaces the contact's current row in place (`scoring_run` null).
    """

    # A batch run writes every row twice (COPY, then the switch): the columns that hold one value per
    # shard (workspace, model, run) carry no database constraint (one check per row at commit; the
    # shard checked the run once, and deletes cascade in Django) and no index of their own (each one
    # leads a composite index below).
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False,
                                  db_index=False)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="scores",
                                      db_constraint=False, db_index=False)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="scores")
    target = models.CharField(max_length=16, choices=Target.choices)
    scoring_run = models.ForeignKey(ScoringRun, on_delete=models.CASCADE, null=True, blank=True, related_name="scores",
                                    db_constraint=False, db_index=False)
    is_current = models.BooleanField(default=True)
    probability = models.FloatField()
    raw_score = models.FloatField(null=True, blank=True, help_text="the model's uncalibrated score: the ranking key")
    percentile = models.FloatField(null=True, blank=True, help_text="100 x share of the run ranked at or below")
    as_of = models.DateTimeField(help_text="the cut-off: events before it were used")
    scored_at = models.DateTimeField(default=timezone.now)
    # [{"text", "value", "kind"}], strongest first (value: probability points); empty until explained
    factors = models.JSONField(default=list, blank=True)
    base_value = models.FloatField(null=True, blank=True, help_text="probability with no information (SHAP base)")
    explained_at = models.DateTimeField(null=True, blank=True)
    explain_requested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact", "target"], condition=Q(is_current=True),
                                    name="one_current_score_per_target"),
            models.UniqueConstraint(fields=["scoring_run", "contact"], name="one_score_per_run_contact"),
        ]
        indexes = [
            models.Index(fields=["model_version", "-probability"], name="score_version_probability"),
            models.Index(fields=["workspace", "target", "is_current", "raw_score"], name="score_current_raw"),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} {self.target} {self.probability:.3f}"


class RescoreRequest(models.Model):
    """A contact with new events waiting for its real-time rescoring (drained by one task per workspace)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    contact = models.OneToOneField(Contact, on_delete=models.CASCADE, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)


class RescoreDrain(models.Model):
    """A drain task is scheduled for this workspace: its row's existence debounces the next ones."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="+")
    scheduled_at = models.DateTimeField(default=timezone.now)


class Segment(models.Model):
    """A saved audience: a definition over scores, funnel position and traits (issue 9).

    `definition` is a JSON tree of conditions combined with and / or / not; its grammar and
    evaluation live in `predictions/segments/`. Membership is materialised in SegmentMembership.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="segments")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    definition = models.JSONField(default=dict)
    is_builtin = models.BooleanField(default=False, help_text="created with the workspace; editable")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="uniq_segment_name")]

    def __str__(self) -> str:
        return f"{self.workspace.slug}: {self.name}"


class SegmentMembership(models.Model):
    """One stay of a contact in a segment: open while `exited_at` is null (a current member)."""

    # written by the 10,000s per refresh: one value per refresh, so no per-row constraint check (as ContactScore)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships", db_constraint=False,
                                db_index=False)  # led by the indexes below
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="segment_memberships")
    entered_at = models.DateTimeField(default=timezone.now)
    exited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["segment", "contact"], condition=Q(exited_at__isnull=True), name="one_open_membership"
            )
        ]
        indexes = [models.Index(fields=["segment", "exited_at"], name="membership_segment_open")]


class SegmentChange(models.Model):
    """An `Audience Entered` / `Audience Exited` record, written in the same transaction as the
    membership change; the sync engine (integrations) delivers these. Append-only."""

    class Kind(models.TextChoices):
        ENTERED = "entered", "Audience Entered"
        EXITED = "exited", "Audience Exited"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="changes", db_constraint=False,
                                db_index=False)  # led by segment_change_time
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["segment", "at"], name="segment_change_time")]


class SegmentSize(models.Model):
    """The size of a segment after each refresh (size over time)."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="sizes")
    size = models.PositiveIntegerField()
    entered = models.PositiveIntegerField(default=0)
    exited = models.PositiveIntegerField(default=0)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]


class StageSuggestion(models.Model):
    """A stage the CRF tagger suggests for an event name the stage map does not know.

    Nothing changes by itself: a person accepts it (`stage_suggestion_accept` writes the
    StageMapping) or dismisses it. Re-running the tagger refreshes pending suggestions only.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        DISMISSED = "dismissed", "Dismissed"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="stage_suggestions")
    event_name = models.CharField(max_length=200)
    stage = models.CharField(max_length=16, help_text="suggested funnel stage")
    confidence = models.FloatField(help_text="mean CRF marginal probability of the stage over the name's events")
    occurrences = models.PositiveIntegerField(default=0)
    # the other stages' mean marginals, e.g. {"interest": 0.2, ...}
    alternatives = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-confidence", "event_name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "event_name"], name="uniq_stage_suggestion")
        ]

    def __str__(self) -> str:
        return f"{self.event_name} -> {self.stage} ({self.confidence:.0%}, {self.status})"
