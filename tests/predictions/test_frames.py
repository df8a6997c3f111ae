"""Workspace events -> EventFrame: seconds, stages, purchases (repeats too), campaigns, outbound dropped."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from predictions.frames import workspace_frame

pytestmark = pytest.mark.django_db


def _post(api, items):
    resp = api.post("/api/v1/events", json.dumps(items), content_type="application/json")
    assert resp.status_code == 200 and resp.json()["rejected"] == 0, resp.content


def test_frame_has_own_activity_in_seconds_with_stages_purchases_and_campaigns(api, other_api):
    _post(other_api, [{"contact_id": "z", "event": "Order Completed", "timestamp": 1700000000}])
    _post(api, [
        {"contact_id": "b", "event": "Order Completed", "timestamp": 1700000300, "value": 10, "campaign": "spring",
         "channel": "email"},
        {"contact_id": "a", "event": "Product Viewed", "timestamp": 1700000200.5},
        {"contact_id": "b", "event": "Order Completed", "timestamp": 1700000100, "value": 5},
        {"contact_id": "b", "event": "Email Sent", "timestamp": 1700000050, "campaign": "spring"},
        {"contact_id": "a", "event": "Made Up Thing", "timestamp": 1700000400},
    ])
    frame = workspace_frame(workspace_id=api.workspace.id)
    assert len(frame) == 4, "the outbound Email Sent is not the contact's activity"
    assert "Email Sent" not in set(frame.name)
    by_name = dict(zip(frame.name.tolist(), frame.ts.tolist(), strict=False))
    assert by_name["Product Viewed"] == 1700000200  # microseconds -> whole seconds
    purchases = frame.name == "Order Completed"
    # the second purchase is staged loyalty, but it is still a purchase for the purchase target
    assert sorted(frame.stage[purchases].tolist()) == ["loyalty", "purchase"]
    assert frame.is_purchase[purchases].all() and not frame.is_purchase[~purchases].any()
    assert frame.stage[frame.name == "Made Up Thing"].tolist() == [""]
    assert set(frame.campaign.tolist()) == {"", "spring"} and "email" in set(frame.channel.tolist())
    assert np.isnan(frame.value[frame.name == "Product Viewed"]).all()
    assert frame.end_ts == 1700000401


def test_frame_before_a_cutoff_keeps_only_earlier_events(api):
    _post(api, [{"contact_id": "a", "event": "pv", "timestamp": 1700000000 + i * 100} for i in range(5)])
    frame = workspace_frame(workspace_id=api.workspace.id, before=datetime.fromtimestamp(1700000250, tz=UTC))
    assert frame.ts.tolist() == [1700000000, 1700000100, 1700000200]


def test_empty_workspace_gives_an_empty_frame(api):
    assert len(workspace_frame(workspace_id=api.workspace.id)) == 0
