from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "predictions"
    label = "predictions"

    def ready(self) -> None:
        from funnel_site.events.signals import events_ingested

        events_ingested.connect(_events_ingested, dispatch_uid="predictions-rescore-on-events")


def _events_ingested(sender, *, workspace_id: int, contact_ids, **kwargs) -> None:
    """New events: their contacts are rescored within seconds (predictions/realtime.py)."""
    from predictions.realtime import rescore_request

    rescore_request(workspace_id=workspace_id, contact_ids=contact_ids)
