from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "predictions"
    label = "predictions"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from funnel_site.events.models import Workspace
        from predictions import signals
        from predictions.segments import receivers

        post_save.connect(receivers.workspace_created, sender=Workspace, dispatch_uid="segments_defaults")
        signals.scores_updated.connect(receivers.scores_updated, dispatch_uid="segments_refresh")

        from funnel_site.recovery import Recoverable, recoverable_register

        # a training left running by a dead worker is queued again (funnel_site/recovery.py)
        recoverable_register(Recoverable(name="training", model="predictions.ModelVersion",
                                         running={"status": "running"},
                                         recover="predictions.services.model_version_recover"))
        from predictions.recovery import SCORING_STALE_SECONDS

        # a scoring run left running by a dead worker is failed and tried again as a new run
        recoverable_register(Recoverable(name="scoring_run", model="predictions.ScoringRun",
                                         running={"status": "running"}, stale_seconds=SCORING_STALE_SECONDS,
                                         recover="predictions.recovery.scoring_run_recover"))
        from funnel_site.events.signals import events_ingested

        events_ingested.connect(_events_ingested, dispatch_uid="predictions-rescore-on-events")


def _events_ingested(sender, *, workspace_id: int, contact_ids, **kwargs) -> None:
    """New events: their contacts are rescored within seconds (predictions/realtime.py)."""
    from predictions.realtime import rescore_request

    rescore_request(workspace_id=workspace_id, contact_ids=contact_ids)
