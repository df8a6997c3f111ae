"""Reads of the funnels domain: run a funnel query (cached, time-limited), page through the
contacts of a step, list and get saved funnels.

Results are cached (Django's cache framework) under the workspace, the read model's version
(`WorkspaceColumns.version`: the ingest-log position read, so exactly what the result was computed
from), a digest of its stage map and the digest of the query: a newly committed batch, or a
changed stage map, gives a new key, so a cached result is never stale with respect to events. Contact traits (for
`contact:KEY` breakdowns) are not in the key; `FUNNEL_CACHE_SECONDS` bounds how long a changed
trait can go unseen.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.http import Http404
from django.shortcuts import get_object_or_404

from funnel_site.events.columns import workspace_columns
from funnel_site.events.models import Contact, StageMapping, Workspace
from funnel_site.funnels.engine import funnel_compute
from funnel_site.funnels.inputs import funnel_input_build
from funnel_site.funnels.limits import QueryDeadline, database_time_limit
from funnel_site.funnels.models import SavedFunnel
from funnel_site.funnels.spec import FunnelSpec

CACHE_VERSION = 1
CONTACT_STATUSES = ("converted", "dropped")


@dataclass
class FunnelRun:
    """A query's JSON result and, per step, the sorted Contact ids that converted / dropped off."""

    payload: dict[str, Any]
    converted: list[np.ndarray]
    dropped: list[np.ndarray]


def stage_map_digest(*, workspace_id: int) -> str:
    """A short digest of the workspace's stage overrides (they change what `stage:` steps match)."""
    rows = sorted(StageMapping.objects.filter(workspace_id=workspace_id).values_list("event_name", "stage"))
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def _cache_key(workspace_id: int, data_version: str, stage_digest: str, spec: FunnelSpec) -> str:
    return f"funnels:{CACHE_VERSION}:{workspace_id}:{data_version}:{stage_digest}:{spec.digest}"


def funnel_query(
    *, workspace: Workspace, spec: FunnelSpec, use_cache: bool = True, time_limit: float | None = None
) -> FunnelRun:
    """Run (or fetch from the cache) a funnel query; raises `FunnelTimeoutError` past the time limit.

    The time limit counts from after the read model is up to date: bringing it up to date (a
    map of the snapshot on disk and the log's tail, or, the first time ever, a load of every
    event) runs under its own limit (`FUNNEL_COLUMN_LOAD_TIMEOUT_SECONDS`), since cancelling it
    would only make the next query start again. Raises `ReadModelUnavailable` when the events
    cannot be brought up to date (never answers from old ones).
    """
    started = time.perf_counter()
    stage_digest = stage_map_digest(workspace_id=workspace.id)
    cols = workspace_columns(workspace.id)
    key = _cache_key(workspace.id, cols.version, stage_digest, spec)
    if use_cache and (hit := cache.get(key)) is not None:
        payload = {**hit.payload, "cached": True, "query_seconds": round(time.perf_counter() - started, 4)}
        return FunnelRun(payload=payload, converted=hit.converted, dropped=hit.dropped)

    deadline = QueryDeadline(time_limit)
    with database_time_limit(deadline, "matching the steps"):
        built = funnel_input_build(workspace_id=workspace.id, definition=spec.definition, cols=cols)
    result = funnel_compute(
        definition=spec.definition,
        columns=built.columns,
        step_labels=spec.step_labels,
        check_sorted=False,  # the column cache is sorted by (contact, ts, id) by construction
        deadline=deadline.expires,
    )
    payload = result.to_dict()
    payload["warnings"] = built.warnings + payload["warnings"]
    payload["definition"] = spec.canonical
    payload["newest_event_id"] = built.max_event_id
    payload["data_version"] = cols.version
    payload["cached"] = False
    payload["query_seconds"] = round(time.perf_counter() - started, 4)
    run = FunnelRun(payload=payload, converted=result.converted_contacts, dropped=result.dropped_contacts)
    if use_cache:
        timeout = int(getattr(settings, "FUNNEL_CACHE_SECONDS", 600))
        cache.set(key, run, timeout)
    return run


def funnel_contacts_page(
    *, run: FunnelRun, step: int, status: str, limit: int = 100, offset: int = 0
) -> dict[str, Any]:
    """One page of the contacts that reached (`converted`) or dropped off before (`dropped`) step
    `step` (1-based): `{"step", "status", "total", "limit", "offset", "contacts": [...]}`."""
    lists = run.converted if status == "converted" else run.dropped
    ids = lists[step - 1]
    chosen = [int(x) for x in ids[offset : offset + limit]]
    rows = {
        c.id: c
        for c in Contact.objects.filter(id__in=chosen).only("id", "external_id", "email", "last_seen")
    }
    contacts = [
        {"contact_id": rows[i].external_id, "email": rows[i].email, "last_seen": rows[i].last_seen}
        for i in chosen
        if i in rows
    ]
    return {"step": step, "status": status, "total": int(ids.shape[0]), "limit": limit, "offset": offset,
            "contacts": contacts}


def saved_funnel_list(*, workspace: Workspace):
    """The workspace's saved funnels, by name."""
    return SavedFunnel.objects.filter(workspace=workspace).order_by("name", "id")


def saved_funnel_get(*, workspace: Workspace, funnel_id: int) -> SavedFunnel:
    """A saved funnel of this workspace (404 for another workspace's id, or one past bigint)."""
    if not 0 < int(funnel_id) < 2**63:
        raise Http404(f"saved funnel {funnel_id} does not exist")
    return get_object_or_404(SavedFunnel, workspace=workspace, id=funnel_id)
