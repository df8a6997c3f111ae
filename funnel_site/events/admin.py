"""Admin for tenants, keys, contacts, campaigns and the (read-only) event store."""

from django.contrib import admin

from funnel_site.events.models import (
    ApiKey,
    Campaign,
    Contact,
    Event,
    Membership,
    StageMapping,
    Workspace,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class StageMappingInline(admin.TabularInline):
    model = StageMapping
    extra = 0


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "time_zone", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline, StageMappingInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created by `create_workspace` or the service (the clear key is shown once only)."""

    list_display = ["prefix", "workspace", "name", "role", "rate_limit", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["workspace", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name", "workspace__slug"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        from funnel_site.events.services import api_key_revoke

        for key in queryset:
            api_key_revoke(api_key=key)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role"]
    list_filter = ["workspace", "role"]
    search_fields = ["user__username", "workspace__slug"]


@admin.register(StageMapping)
class StageMappingAdmin(admin.ModelAdmin):
    list_display = ["event_name", "stage", "workspace"]
    list_filter = ["workspace", "stage"]
    search_fields = ["event_name"]


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["external_id", "workspace", "email", "first_seen", "last_seen"]
    list_filter = ["workspace"]
    search_fields = ["external_id", "email"]
    readonly_fields = ["first_seen", "last_seen", "first_purchase_at"]
    show_full_result_count = False


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "channel", "workspace", "starts_at", "ends_at"]
    list_filter = ["workspace", "channel"]
    search_fields = ["key", "name"]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Events are append-only: the admin shows them and never edits or deletes."""

    list_display = ["name", "contact", "timestamp", "campaign", "channel", "value", "workspace"]
    list_filter = ["workspace", "channel"]
    search_fields = ["name", "message_id", "contact__external_id"]
    list_select_related = ["contact", "campaign", "workspace"]
    date_hierarchy = "timestamp"
    show_full_result_count = False
    raw_id_fields = ["contact", "campaign"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
