from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "integrations"
    label = "integrations"

    def ready(self) -> None:
        from predictions.signals import segment_membership_changed

        segment_membership_changed.connect(segment_changed, dispatch_uid="integrations-segment-changed")
        from funnel_site.recovery import Recoverable, recoverable_register

        # a sync run left running by a dead worker is resumed from its outbox (integrations/recovery.py)
        recoverable_register(Recoverable(name="sync_run", model="integrations.SyncRun", running={"status": "running"},
                                         recover="integrations.recovery.sync_run_recover"))


def segment_changed(sender, *, segment_id: int, workspace_id: int, entered: int = 0, exited: int = 0, **kwargs) -> None:
    """A refresh changed a segment (sent after commit): run the syncs that follow it."""
    if not (entered or exited):
        return
    from integrations.services import segment_syncs_request

    segment_syncs_request(segment_id=segment_id, workspace_id=workspace_id)
