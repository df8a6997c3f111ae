"""Admin for segments (definitions validated by the API's grammar) and their read-only history:
memberships, Audience Entered / Exited records and sizes. Registered from predictions/admin.py."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Count, Q
from rest_framework import serializers

from predictions.models import Segment, SegmentChange, SegmentMembership, SegmentSize
from predictions.segments.definition import definition_parse, error_fields


class SegmentAdminForm(forms.ModelForm):
    """Checks the definition with the same grammar as the API (errors name the field)."""

    class Meta:
        model = Segment
        fields = ["workspace", "name", "description", "definition"]

    def clean(self):
        data = super().clean()
        if data.get("workspace") is not None and "definition" in data:
            try:
                data["definition"] = definition_parse(data["definition"], workspace=data["workspace"])
            except serializers.ValidationError as exc:
                self.add_error("definition", "; ".join(f"{e['field']}: {e['error']}"
                                                       for e in error_fields(exc.detail, "definition")))
        return data


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is written by refreshes only."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentAdminForm
    list_display = ["id", "workspace", "name", "size", "is_builtin", "refreshed_at", "updated_at"]
    list_filter = ["workspace", "is_builtin"]
    search_fields = ["name", "workspace__slug"]
    readonly_fields = ["is_builtin", "created_at", "updated_at", "refreshed_at"]
    actions = ["refresh"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            open_members=Count("memberships", filter=Q(memberships__exited_at__isnull=True)))

    @admin.display(description="members", ordering="open_members")
    def size(self, obj) -> int:
        return obj.open_members

    def save_model(self, request, obj, form, change) -> None:
        from predictions.segments.services import segment_refresh

        super().save_model(request, obj, form, change)
        segment_refresh(segment=obj)

    @admin.action(description="Refresh the selected segments now")
    def refresh(self, request, queryset):
        from predictions.segments.services import segment_refresh

        for segment in queryset:
            result = segment_refresh(segment=segment)
            self.message_user(request, f"{segment}: {result.size} members (+{result.entered} / -{result.exited})")


@admin.register(SegmentMembership)
class SegmentMembershipAdmin(ReadOnlyAdmin):
    list_display = ["id", "segment", "contact", "entered_at", "exited_at"]
    list_filter = ["segment__workspace", "segment"]
    search_fields = ["contact__external_id", "contact__email"]
    list_select_related = ["segment__workspace", "contact"]


@admin.register(SegmentChange)
class SegmentChangeAdmin(ReadOnlyAdmin):
    list_display = ["id", "segment", "contact", "kind", "at"]
    list_filter = ["kind", "segment__workspace", "segment"]
    search_fields = ["contact__external_id"]
    list_select_related = ["segment__workspace", "contact"]


@admin.register(SegmentSize)
class SegmentSizeAdmin(ReadOnlyAdmin):
    list_display = ["id", "segment", "size", "entered", "exited", "at"]
    list_filter = ["segment__workspace", "segment"]
    list_select_related = ["segment__workspace"]
