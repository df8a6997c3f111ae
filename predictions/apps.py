from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "predictions"
    label = "predictions"

    def ready(self) -> None:
        from funnel_site.recovery import Recoverable, recoverable_register

        # a training left running by a dead worker is queued again (funnel_site/recovery.py)
        recoverable_register(Recoverable(name="training", model="predictions.ModelVersion",
                                         running={"status": "running"},
                                         recover="predictions.services.model_version_recover"))
