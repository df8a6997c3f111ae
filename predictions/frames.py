"""A workspace's events as the ML package's EventFrame (read-only: a selector over the column cache).

Outbound events ("Email Sent", "Campaign Received", ... : `funnel_site.events.stages.is_outbound`)
are what the platform does to a contact, not what the contact does. They are left out of the frame
for both targets, so they never make a contact eligible ("any event in the lookback") nor count as
activity for churn ("no event in the horizon"): an e-mail sent to someone who left does not make
them active. Their effect on behaviour is still seen through the contact's own responses (opens,
clicks, visits with the campaign and channel attached).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from funnel_site.events.columns import NO_STAGE, WorkspaceColumns, workspace_columns
from funnel_site.events.models import Campaign, Contact
from funnel_site.events.stages import STAGES, StageResolver, is_outbound
from predictions.ml.data import EventFrame

_STAGE_NAMES = np.array([*STAGES, ""], dtype=object)  # index NO_STAGE (-1) -> ""


def frame_from_columns(cols: WorkspaceColumns, resolver: StageResolver, *, before: datetime | None = None) -> EventFrame:
    """Convert columnar events to an EventFrame (ts in unix seconds), outbound events dropped.

    `before`: keep only events strictly before that moment (train or score as of a past date).
    """
    names = np.array(cols.names or [""], dtype=object)
    outbound = np.array([is_outbound(n) for n in cols.names] or [False], dtype=bool)
    purchase = np.array([resolver.is_purchase(n) for n in cols.names] or [False], dtype=bool)
    stage_codes = cols.stages(resolver)
    keep = ~outbound[cols.name] if cols.size else np.zeros(0, dtype=bool)
    if before is not None:
        keep &= cols.ts < int(before.timestamp() * 1_000_000)
    name = cols.name[keep]
    campaign_ids = cols.campaign[keep]
    channels = np.array(cols.channels or [""], dtype=object)
    stage = stage_codes[keep]
    return EventFrame(
        contact=cols.contact[keep],
        # integer division keeps the (contact, ts) order of the cache
        ts=cols.ts[keep] // 1_000_000,
        name=names[name],
        stage=_STAGE_NAMES[np.where(stage == NO_STAGE, len(STAGES), stage)],
        is_purchase=purchase[name],
        campaign=_campaign_keys(campaign_ids),
        channel=channels[cols.channel[keep]],
        value=cols.value[keep],
    )


def _campaign_keys(campaign_ids: np.ndarray) -> np.ndarray:
    """Campaign keys ('' for none) for an array of Campaign ids (-1 for none)."""
    unique, inverse = np.unique(campaign_ids, return_inverse=True)
    keys = dict(Campaign.objects.filter(id__in=[int(i) for i in unique if i >= 0]).values_list("id", "key"))
    lookup = np.array([keys.get(int(i), "") for i in unique] or [""], dtype=object)
    return lookup[inverse] if len(campaign_ids) else np.zeros(0, dtype=object)


def workspace_frame(*, workspace_id: int, before: datetime | None = None) -> EventFrame:
    """The workspace's own-activity events as an EventFrame (see the module docstring)."""
    return frame_from_columns(
        workspace_columns(workspace_id), StageResolver.for_workspace(workspace_id), before=before
    )


def contact_external_ids(contact_ids) -> dict[int, str]:
    """Contact.id -> external id, for output (CSV, API)."""
    ids = [int(i) for i in contact_ids]
    out: dict[int, str] = {}
    for start in range(0, len(ids), 5000):
        out.update(Contact.objects.filter(id__in=ids[start : start + 5000]).values_list("id", "external_id"))
    return out


def unix_to_datetime(seconds: int) -> datetime:
    """Unix seconds -> aware UTC datetime."""
    return datetime.fromtimestamp(int(seconds), tz=UTC)
