"""Test helper: the stages of stored events as the API shows them (derived, never stored)."""

from __future__ import annotations

from funnel_site.events.selectors import event_stages


def shown_stages(queryset) -> list[str]:
    """The derived stage of each event of `queryset`, in its order."""
    events = list(queryset)
    stages: dict[int, str] = {}
    for workspace_id in {e.workspace_id for e in events}:
        stages.update(event_stages(workspace_id=workspace_id, events=[e for e in events if e.workspace_id == workspace_id]))
    return [stages[e.id] for e in events]
