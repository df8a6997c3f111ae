"""A workspace's events as the ML package's EventFrame (read-only: a selector over the column cache).

Outbound events ("Email Sent", "Campaign Received", ... : `funnel_site.events.stages.is_outbound`)
are what the platform does to a contact, not what the contact does. They are left out of the frame
for both targets, so they never make a contact eligible ("any event in the lookback") nor count as
activity for churn ("no event in the horizon"): an e-mail sent to someone who left does not make
them active. Their effect on behaviour is still seen through the contact's own responses (opens,
clicks, visits with the campaign and channel attached).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import numpy as np
from django.db import connection

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
    campaign_codes, campaign_keys = _campaign_keys(cols.campaign[keep])
    channel = cols.channel[keep]
    channels = np.array(cols.channels or [""], dtype=object)
    stage = stage_codes[keep]
    stage = np.where(stage == NO_STAGE, len(STAGES), stage)
    frame = EventFrame(
        contact=cols.contact[keep],
        # integer division keeps the (contact, ts) order of the cache
        ts=cols.ts[keep] // 1_000_000,
        name=names[name],
        stage=_STAGE_NAMES[stage],
        is_purchase=purchase[name],
        campaign=campaign_keys[campaign_codes],
        channel=channels[channel],
        value=cols.value[keep],
    )
    # the columns are coded already: features map each distinct string once, never hash every row
    for column, codes, values in (("name", name, names), ("stage", stage, _STAGE_NAMES),
                                  ("campaign", campaign_codes, campaign_keys), ("channel", channel, channels)):
        frame.with_factorized(column, codes, values)
    return frame


def _campaign_keys(campaign_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, keys) of an array of Campaign ids (-1 for none): keys[codes] is each row's key ('' for none)."""
    import pandas as pd

    codes, unique = pd.factorize(campaign_ids)  # hashing: no sort of every row
    keys = dict(Campaign.objects.filter(id__in=[int(i) for i in unique if i >= 0]).values_list("id", "key"))
    lookup = np.array([keys.get(int(i), "") for i in unique] or [""], dtype=object)
    return codes.astype(np.int64), lookup


def workspace_frame(*, workspace_id: int, before: datetime | None = None) -> EventFrame:
    """The workspace's own-activity events as an EventFrame (see the module docstring)."""
    return frame_from_columns(
        workspace_columns(workspace_id), StageResolver.for_workspace(workspace_id), before=before
    )


def contacts_frame(
    *, workspace_id: int, contact_range: tuple[int, int] | None = None, contact_ids=None,
    before: datetime | None = None,
) -> EventFrame:
    """The own-activity events of some contacts only (a shard, or the contacts to rescore): never the
    whole workspace's frame.

    `contact_range` (first, last Contact.id, inclusive: a scoring shard): slices of the read model's
    contact-sorted columns (`workspace_columns`, the mapped snapshot training reads too), so only
    the range's pages are touched and the frame is the one training builds for those contacts.
    `contact_ids` (real time): read from the database through the (contact, timestamp) index (one
    plain query for a few contacts; on PostgreSQL a binary COPY of arrays parsed by numpy for more).
    Events strictly `before`.
    """
    if contact_ids is None:
        first, last = contact_range
        return frame_from_columns(workspace_columns(workspace_id).contacts_between(int(first), int(last)),
                                  StageResolver.for_workspace(workspace_id), before=before)
    from funnel_site.events.columns import _empty
    from funnel_site.events.columns_read import _one_snapshot

    # a few contacts (real time): one plain query beats the three round trips of the COPY path
    few = len(contact_ids) <= 50
    fetch = _contacts_fetch_postgres if connection.vendor == "postgresql" and not few else _contacts_fetch_generic
    # the dictionaries and the arrays of one snapshot (no name missing from either); the few-contact
    # read is one query, a snapshot by itself (the transaction would add four round trips)
    with contextlib.nullcontext() if few else _one_snapshot():
        fetched = fetch(workspace_id, [int(c) for c in contact_ids], before)
    cols = _empty(workspace_id) if fetched is None else _columns_of(workspace_id, fetched)
    return frame_from_columns(cols, StageResolver.for_workspace(workspace_id))


def _columns_of(workspace_id: int, fetched: dict):
    """Fetched rows as WorkspaceColumns sorted by (contact, ts, event id), like the read model's."""
    from funnel_site.events.columns import WorkspaceColumns, _encode

    names: list[str] = []
    channels: list[str] = []
    arrays = {
        "event_id": fetched["event_id"], "contact": fetched["contact"], "ts": fetched["ts"],
        "name": _encode(fetched["name_hash"], fetched["name_pairs"], names),
        "campaign": fetched["campaign"],
        "channel": _encode(fetched["channel_hash"], fetched["channel_pairs"], channels),
        "value": fetched["value"],
    }
    order = np.lexsort((arrays["event_id"], arrays["ts"], arrays["contact"]))
    return WorkspaceColumns(workspace_id=workspace_id, names=names, channels=channels,
                            max_event_id=int(arrays["event_id"].max()) if len(order) else 0,
                            **{k: v[order] for k, v in arrays.items()})


def _contacts_where(workspace_id, contact_ids, before) -> tuple[str, list]:
    where, params = "contact_id = ANY(%s) AND workspace_id = %s", [contact_ids, workspace_id]
    if before is not None:
        where += ' AND "timestamp" < %s'
        params.append(before)
    return where, params


def _contacts_fetch_postgres(workspace_id, contact_ids, before) -> dict | None:
    from funnel_site.events.columns_read import _PG_COLUMNS, PG_EPOCH_US, _parse_binary_arrays
    from funnel_site.events.models import Event

    table = Event._meta.db_table
    where, params = _contacts_where(workspace_id, contact_ids, before)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT hashtext(name), name FROM {table} WHERE {where} GROUP BY name", params)
        name_pairs = cursor.fetchall()
        cursor.execute(f"SELECT hashtext(channel), channel FROM {table} WHERE {where} GROUP BY channel", params)
        channel_pairs = cursor.fetchall()
        raw = cursor.cursor
        aggregates = ", ".join(f"array_agg(c{i})" for i in range(len(_PG_COLUMNS)))
        exprs = ", ".join(f"{expr} AS c{i}" for i, (expr, _) in enumerate(_PG_COLUMNS))
        query = raw.mogrify(
            f"COPY (SELECT {aggregates} FROM (SELECT {exprs} FROM {table} e WHERE {where}) t) TO STDOUT (FORMAT binary)",
            params,
        )
        buffer = bytearray()
        with raw.copy(query) as copy:
            for chunk in copy:
                buffer += chunk
    arrays, _ = _parse_binary_arrays(bytes(buffer), [dtype for _, dtype in _PG_COLUMNS])
    if arrays[0] is None or arrays[0].shape[0] == 0:
        return None
    return {
        "event_id": arrays[0].astype(np.int64), "contact": arrays[1].astype(np.int64),
        "ts": arrays[2].astype(np.int64) + PG_EPOCH_US, "name_hash": arrays[3].astype(np.int64),
        "campaign": arrays[4].astype(np.int64), "channel_hash": arrays[5].astype(np.int64),
        "value": arrays[6].astype(np.float64), "name_pairs": name_pairs, "channel_pairs": channel_pairs,
    }


def _contacts_fetch_generic(workspace_id, contact_ids, before) -> dict | None:
    from funnel_site.events.models import Event

    qs = Event.objects.filter(workspace_id=workspace_id, contact_id__in=contact_ids)
    if before is not None:
        qs = qs.filter(timestamp__lt=before)
    rows = list(qs.values_list("id", "contact_id", "timestamp", "name", "campaign_id", "channel", "value"))
    if not rows:
        return None
    names = {n: i for i, n in enumerate(sorted({r[3] for r in rows}))}
    channels = {c: i for i, c in enumerate(sorted({r[5] for r in rows}))}
    return {
        "event_id": np.array([r[0] for r in rows], np.int64),
        "contact": np.array([r[1] for r in rows], np.int64),
        "ts": np.array([int(r[2].timestamp() * 1_000_000) for r in rows], np.int64),
        "name_hash": np.array([names[r[3]] for r in rows], np.int64),
        "campaign": np.array([-1 if r[4] is None else r[4] for r in rows], np.int64),
        "channel_hash": np.array([channels[r[5]] for r in rows], np.int64),
        "value": np.array([np.nan if r[6] is None else r[6] for r in rows], np.float64),
        "name_pairs": [(i, n) for n, i in names.items()],
        "channel_pairs": [(i, c) for c, i in channels.items()],
    }


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
