from django.apps import AppConfig


class EventsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "funnel_site.events"
    label = "events"

    def ready(self) -> None:
        from funnel_site.events import schema  # noqa: F401  (registers the OpenAPI auth extensions)
