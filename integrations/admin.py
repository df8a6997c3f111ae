"""Admin: history of runs and deliveries; credentials and secrets never shown (not even encrypted)."""

from django.contrib import admin

from integrations.models import (
    DeliveredRecord,
    Destination,
    Suppression,
    Sync,
    SyncRecord,
    SyncRun,
    WebhookDelivery,
    WebhookRefusal,
    WebhookSource,
)


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "workspace", "last_test_ok", "created_at"]
    list_filter = ["kind"]
    exclude = ["credentials_encrypted"]
    readonly_fields = ["last_tested_at", "last_test_ok", "last_test_message"]


@admin.register(Sync)
class SyncAdmin(admin.ModelAdmin):
    list_display = ["id", "segment", "destination", "mode", "schedule", "enabled"]
    list_filter = ["mode", "enabled"]


class SyncRecordInline(admin.TabularInline):
    """Failed, skipped and planned records (delivered ones are the run's sent outbox rows)."""

    model = SyncRecord
    fields = ["contact", "operation", "status", "error"]
    readonly_fields = fields
    raw_id_fields = ["contact"]
    extra = 0
    max_num = 0
    show_change_link = False


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = ["id", "sync", "status", "dry_run", "added", "updated", "removed", "failed", "skipped", "started_at"]
    list_filter = ["status", "dry_run"]
    readonly_fields = [f.name for f in SyncRun._meta.fields]
    inlines = [SyncRecordInline]


@admin.register(DeliveredRecord)
class DeliveredRecordAdmin(admin.ModelAdmin):
    list_display = ["sync", "contact", "external_ref", "delivered_at"]
    raw_id_fields = ["contact"]


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ["contact", "destination", "reason", "source", "at"]
    raw_id_fields = ["contact"]


@admin.register(WebhookSource)
class WebhookSourceAdmin(admin.ModelAdmin):
    list_display = ["workspace", "source", "hint", "active", "created_at"]
    exclude = ["secret_encrypted"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "workspace", "source", "provider_id", "status", "attempts", "received_at"]
    list_filter = ["source", "status"]


@admin.register(WebhookRefusal)
class WebhookRefusalAdmin(admin.ModelAdmin):
    list_display = ["at", "workspace", "source", "reason", "status_code"]
    list_filter = ["source", "reason"]
