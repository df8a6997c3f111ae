"""Reads of the events domain that show a stage: they derive it through `stages.derive_stages`.

A stage is never stored (it depends on the contact's other purchases), so whatever shows one
derives it the way the read model does for funnels and models: `event_stages` for a page of
events (the API), `event_stage_counts` for a whole workspace (the overview page).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from funnel_site.events.models import Event
from funnel_site.events.stages import NO_STAGE, STAGE_CODES, StageResolver, derive_stages, stage_name


def event_stages(*, workspace_id: int, events: Sequence[Event]) -> dict[int, str]:
    """Event id -> derived stage ('' for none) of these events of one workspace.

    A purchase's stage depends on the contact's earlier purchases: those of the events' contacts
    are read (one indexed query) and staged together with the events, in (contact, ts, id) order.
    """
    if not events:
        return {}
    resolver = StageResolver.for_workspace(workspace_id)
    contacts = sorted({e.contact_id for e in events})
    names = Event.objects.filter(workspace_id=workspace_id, contact_id__in=contacts).values_list(
        "name", flat=True).distinct()
    purchase_names = [n for n in names if resolver.is_purchase(n)]
    rows = {e.id: (e.contact_id, e.timestamp, e.name) for e in events}
    if purchase_names:
        for event_id, contact_id, ts, name in Event.objects.filter(
            workspace_id=workspace_id, contact_id__in=contacts, name__in=purchase_names
        ).values_list("id", "contact_id", "timestamp", "name"):
            rows.setdefault(event_id, (contact_id, ts, name))
    ids = np.array(list(rows), dtype=np.int64)
    contact = np.array([rows[i][0] for i in rows], dtype=np.int64)
    ts = np.array([int(rows[i][1].timestamp() * 1_000_000) for i in rows], dtype=np.int64)
    order = np.lexsort((ids, ts, contact))
    name_stage = np.array([STAGE_CODES.get(resolver.stage_of(rows[int(i)][2]), NO_STAGE) for i in ids[order]],
                          dtype=np.int8)
    derived = derive_stages(name_stage, contact[order])
    by_id = {int(i): stage_name(int(code)) for i, code in zip(ids[order], derived, strict=True)}
    return {e.id: by_id[e.id] for e in events}


def event_stage_counts(*, workspace_id: int) -> dict[str, int]:
    """Events per derived stage of a workspace ('' for none), from the read model."""
    from funnel_site.events.columns import workspace_columns

    return workspace_columns(workspace_id).stage_counts(StageResolver.for_workspace(workspace_id))
