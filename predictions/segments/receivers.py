"""Signal receivers of segments: default segments for a new workspace, refreshes after scoring.

Connected in `PredictionsConfig.ready()`. Scoring never imports segments: it sends
`predictions.signals.scores_updated`, and the refresh counts come back as this receiver's return
value (`Signal.send` returns them), which `manage.py score` prints.
"""

from __future__ import annotations

import structlog

log = structlog.get_logger(__name__)


def workspace_created(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    """Give a new workspace its default segments ("Likely purchasers", "Churn risk")."""
    if not created or raw:
        return
    from predictions.segments.services import segments_create_defaults

    segments_create_defaults(workspace=instance)


def scores_updated(sender, workspace_id: int, contact_ids=None, **kwargs) -> dict:
    """Refresh the workspace's segments: whole after a batch run (`contact_ids` None), only the
    rescored contacts after a real-time rescoring (then a segment that reads only other targets'
    scores is skipped: nothing it reads changed). Returns `{"segments": [RefreshResult dicts]}`."""
    from predictions.segments.services import segments_refresh

    target = kwargs.get("target") if contact_ids is not None else None
    results = segments_refresh(workspace_id=workspace_id, contact_ids=contact_ids, target=target)
    log.info("segments_refreshed", workspace=workspace_id, target=kwargs.get("target"),
             contacts=None if contact_ids is None else len(contact_ids),
             changed=sum(1 for r in results if r.entered or r.exited))
    return {"segments": [r.to_dict() for r in results]}
