"""The columnar event cache: same rows as the table, sorted, incremental, derived stages, per tenant."""

from __future__ import annotations

import json

import numpy as np
import pytest

from funnel_site.events.columns import STAGE_CODES, column_cache, workspace_columns
from funnel_site.events.models import Event
from funnel_site.events.selectors import event_stages
from funnel_site.events.stages import StageResolver

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    column_cache.clear()
    yield
    column_cache.clear()


def _post(api, items):
    resp = api.post("/api/v1/events", json.dumps(items), content_type="application/json")
    assert resp.status_code == 200, resp.content
    return resp.json()


def test_columns_hold_every_event_sorted_and_refresh_incrementally(api, other_api):
    _post(other_api, [{"contact_id": "x", "event": "Secret", "timestamp": 1700000000}])
    _post(api, [
        {"contact_id": "b", "event": "Order Completed", "timestamp": 1700000300, "value": 10, "channel": "email",
         "campaign": "c1"},
        {"contact_id": "a", "event": "Product Viewed", "timestamp": 1700000200},
        {"contact_id": "b", "event": "Order Completed", "timestamp": 1700000100, "value": 5.5},
        {"contact_id": "a", "event": "Product Added", "timestamp": 1700000200.5},
    ])
    cols = workspace_columns(api.workspace.id)
    assert cols.size == 4 and "Secret" not in cols.names
    key = list(zip(cols.contact.tolist(), cols.ts.tolist(), cols.event_id.tolist(), strict=True))
    assert key == sorted(key)
    rows = {e.id: e for e in Event.objects.filter(workspace=api.workspace)}
    for i in range(cols.size):
        event = rows[int(cols.event_id[i])]
        assert cols.names[cols.name[i]] == event.name
        assert cols.ts[i] == int(event.timestamp.timestamp() * 1_000_000)
        assert cols.contact[i] == event.contact_id
        assert cols.channels[cols.channel[i]] == event.channel
        assert (cols.campaign[i] == -1) == (event.campaign_id is None)
        assert (np.isnan(cols.value[i]) and event.value is None) or cols.value[i] == event.value
    stages = cols.stages(StageResolver.for_workspace(api.workspace.id))
    by_event = {int(cols.event_id[i]): int(stages[i]) for i in range(cols.size)}
    shown = event_stages(workspace_id=api.workspace.id, events=list(rows.values()))
    for event_id, event in rows.items():
        assert by_event[event_id] == STAGE_CODES.get(shown[event_id], -1), event.name  # same as the API's
    # incremental: a new event lands in its place
    _post(api, [{"contact_id": "a", "event": "Checkout Started", "timestamp": 1700000201}])
    cols2 = workspace_columns(api.workspace.id)
    assert cols2.size == 5
    a_events = [cols2.names[c] for c, who in zip(cols2.name, cols2.contact, strict=True) if who == cols.contact[0]]
    assert a_events == ["Product Viewed", "Product Added", "Checkout Started"]
