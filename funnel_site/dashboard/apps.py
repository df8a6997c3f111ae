from django.apps import AppConfig


class DashboardConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "funnel_site.dashboard"
    label = "dashboard"

    def ready(self) -> None:
        """Brand the admin with the product's name (its logo is in admin_templates/admin/base_site.html)."""
        from django.contrib import admin

        admin.site.site_header = "Funnel plugin administration"
        admin.site.site_title = "Funnel plugin admin"
        admin.site.index_title = "Workspaces, keys, contacts and events"
        admin.site.site_url = "/dashboard/"
