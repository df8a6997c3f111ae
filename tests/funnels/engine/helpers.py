"""Build `EventColumns` from readable event lists, matching steps by name as the DB layer would."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from funnel_site.funnels.engine import EventColumns, FunnelDefinition, funnel_compute

SECOND = 1_000_000
DAY = 86_400


def columns_for(
    definition: FunnelDefinition,
    events: Sequence[tuple],
    *,
    hold_key: str | None = None,
    breakdown_key: str | None = None,
) -> EventColumns:
    """`events`: (contact, seconds, name[, props]) in event-id order; sorted here by (contact, ts)."""
    rows = sorted(enumerate(events), key=lambda item: (item[1][0], item[1][1], item[0]))
    hold_codes: dict[object, int] = {}
    breakdown_codes: dict[object, int] = {}
    contact, ts, step_mask, excl_mask, hold, breakdown = [], [], [], [], [], []
    for _, event in rows:
        props = event[3] if len(event) > 3 else {}
        mask = sum(1 << k for k, step in enumerate(definition.steps) if event[2] in step.matcher.events)
        excl = sum(1 << j for j, item in enumerate(definition.exclusions) if event[2] in item.matcher.events)
        contact.append(event[0])
        ts.append(int(event[1] * SECOND))
        step_mask.append(mask)
        excl_mask.append(excl)
        value = props.get(hold_key) if hold_key else None
        hold.append(-1 if value is None else hold_codes.setdefault(value, len(hold_codes)))
        value = props.get(breakdown_key) if breakdown_key else None
        breakdown.append(-1 if value is None else breakdown_codes.setdefault(value, len(breakdown_codes)))
    return EventColumns(
        contact=np.array(contact, dtype=np.int64),
        ts=np.array(ts, dtype=np.int64),
        step_mask=np.array(step_mask, dtype=np.uint32),
        exclusion_mask=np.array(excl_mask, dtype=np.uint32),
        hold_value=np.array(hold, dtype=np.int64) if hold_key else None,
        breakdown_value=np.array(breakdown, dtype=np.int64) if breakdown_key else None,
        breakdown_labels=list(breakdown_codes) if breakdown_key else None,
    )


def run(definition: FunnelDefinition, events: Sequence[tuple], **kwargs):
    """The `FunnelResult` of `events`."""
    return funnel_compute(definition=definition, columns=columns_for(definition, events, **kwargs))


def counts(definition: FunnelDefinition, events: Sequence[tuple], **kwargs) -> list[int]:
    """Per-step counts of `events`."""
    return [step.count for step in run(definition, events, **kwargs).steps]
