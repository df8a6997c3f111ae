"""Saved funnels in the Django admin."""

from django.contrib import admin

from funnel_site.funnels.models import SavedFunnel


@admin.register(SavedFunnel)
class SavedFunnelAdmin(admin.ModelAdmin):
    list_display = ("name", "workspace", "updated_at")
    list_filter = ("workspace",)
    search_fields = ("name", "description")
    readonly_fields = ("created_at", "updated_at")
