"""The five-stage marketing funnel: awareness -> interest -> consideration -> purchase -> loyalty.

For a period, each contact with a staged event in it has a *furthest stage* (the highest stage of
its events there, a repeat purchase being loyalty) and counts as having *reached* that stage and
every stage before it: someone who bought came through consideration even when no cart event was
recorded. `with_events` is the plain count of contacts with an event of the stage. Stage-to-stage
conversion is reached(k) / reached(k-1). A contact belongs to the campaign (channel) of its first
event in the period that has one (first touch, as funnel breakdowns), else to `null`.

For an ordered, windowed version use the explorer with steps `stage:awareness,...`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from funnel_site.events.columns import workspace_columns
from funnel_site.events.models import Campaign, Workspace
from funnel_site.events.stages import STAGES, StageResolver

DEFAULT_PERIOD = timedelta(days=30)


def _rates(reached: np.ndarray) -> list[dict[str, Any]]:
    start = int(reached[0]) if reached.size else 0
    rows = []
    for k, stage in enumerate(STAGES):
        count = int(reached[k])
        previous = int(reached[k - 1]) if k else count
        rows.append({
            "stage": stage,
            "reached": count,
            "conversion_from_previous": round(count / previous, 4) if previous else None,
            "conversion_from_start": round(count / start, 4) if start else None,
        })
    return rows


def _first_touch(contact: np.ndarray, values: np.ndarray, present: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Per contact of `wanted` (sorted ids), the value of its first row with `present`, or -1."""
    out = np.full(wanted.shape[0], -1, dtype=np.int64)
    rows = np.flatnonzero(present)
    if rows.size == 0:
        return out
    ids, first = np.unique(contact[rows], return_index=True)  # rows are in (contact, ts) order
    position = np.minimum(np.searchsorted(ids, wanted), ids.size - 1)
    hit = ids[position] == wanted
    out[hit] = values[rows[first[position[hit]]]]
    return out


def _grouped(groups: np.ndarray, furthest: np.ndarray, labels: dict[int, str | None]) -> list[dict[str, Any]]:
    """Reached counts per group value (-1: none), largest group first."""
    values, inverse = np.unique(groups, return_inverse=True)
    n_stages = len(STAGES)
    exact = np.bincount(inverse * n_stages + furthest, minlength=values.size * n_stages).reshape(values.size, n_stages)
    reached = np.cumsum(exact[:, ::-1], axis=1)[:, ::-1]  # reached k = furthest >= k
    out = []
    for g in np.lexsort((values == -1, -reached[:, 0])):  # largest first, `null` last among equals
        out.append({"value": labels.get(int(values[g])), "contacts": int(reached[g, 0]), "stages": _rates(reached[g])})
    return out


def marketing_funnel_report(
    *, workspace: Workspace, since: datetime | None = None, until: datetime | None = None
) -> dict[str, Any]:
    """The five-stage report of `[since, until)` (default: the 30 days up to the newest event)."""
    cols = workspace_columns(workspace.id)
    if until is None:
        until = cols.datetime_of(int(cols.ts.max()) + 1) if cols.size else datetime.now(UTC)
    if since is None:
        since = until - DEFAULT_PERIOD
    in_range = (cols.ts >= int(since.timestamp() * 1e6)) & (cols.ts < int(until.timestamp() * 1e6))
    stage = cols.stages(StageResolver.for_workspace(workspace.id))
    staged = np.flatnonzero(in_range & (stage >= 0))
    contact, stage_of_row = cols.contact[staged], stage[staged].astype(np.int64)
    n_stages = len(STAGES)
    if staged.size:
        starts = np.flatnonzero(np.r_[True, contact[1:] != contact[:-1]])
        contacts = contact[starts]
        furthest = np.maximum.reduceat(stage_of_row, starts)
        flags = np.bitwise_or.reduceat(np.left_shift(1, stage_of_row), starts)
    else:
        contacts = np.zeros(0, np.int64)
        furthest = flags = np.zeros(0, np.int64)
    reached = np.array([int(np.count_nonzero(furthest >= k)) for k in range(n_stages)])
    stages = _rates(reached)
    for k, row in enumerate(stages):
        row["with_events"] = int(np.count_nonzero(flags & (1 << k)))

    window_rows = np.flatnonzero(in_range)
    row_contact = cols.contact[window_rows]
    campaign = _first_touch(row_contact, cols.campaign[window_rows], cols.campaign[window_rows] >= 0, contacts)
    campaign_keys = dict(Campaign.objects.filter(workspace=workspace).values_list("id", "key"))
    empty_channel = cols.channels.index("") if "" in cols.channels else -2
    channel_codes = cols.channel[window_rows].astype(np.int64)
    channel = _first_touch(row_contact, channel_codes, channel_codes != empty_channel, contacts)
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "contacts": int(contacts.size),
        "stages": stages,
        "by_campaign": _grouped(campaign, furthest, {-1: None, **campaign_keys}),
        "by_channel": _grouped(channel, furthest, {-1: None, **dict(enumerate(cols.channels))}),
    }
