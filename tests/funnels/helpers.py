"""Store readable event lists through the ingestion service, for the funnel tests."""

from __future__ import annotations

from collections.abc import Sequence

from funnel_site.events.models import Workspace

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY = 86_400


def ingest(workspace: Workspace, events: Sequence[tuple], *, start: int = 0) -> None:
    """`events`: (contact, seconds after T0, name[, extra item fields]) stored in this order.

    Every event gets its own message_id, so equal-looking events are not deduplicated.
    """
    from funnel_site.events.services import events_ingest

    items = []
    for i, event in enumerate(events):
        contact, seconds, name = event[:3]
        extra = event[3] if len(event) > 3 else {}
        items.append((i, {"contact_id": str(contact), "event": name, "timestamp": T0 + seconds,
                          "message_id": f"t{start + i}", **extra}))
    result = events_ingest(workspace=workspace, items=items)
    assert result.rejected == 0, result.errors
    assert result.imported == len(items), result


def counts(payload: dict) -> list[int]:
    """Per-step counts of a result payload."""
    return [step["count"] for step in payload["steps"]]
