"""The Segment HTTP Tracking API, driven by the official segment-analytics-python client over HTTP."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from funnel_site.events.models import Contact, Event
from tests.stages import shown_stages


@pytest.mark.django_db(transaction=True)
def test_official_segment_client_sends_to_a_live_server(live_server, workspace_with_key):
    from segment.analytics import Client

    workspace, key = workspace_with_key
    errors = []
    client = Client(write_key=key, host=live_server.url, sync_mode=True, max_retries=1,
                    on_error=lambda e, batch: errors.append(e))
    when = datetime(2026, 3, 1, 12, tzinfo=UTC)
    client.identify("user-1", {"email": "ada@example.com", "plan": "pro"}, timestamp=when)
    client.track("user-1", "Product Added", {"sku": "A1", "price": 9.5}, timestamp=when,
                 context={"campaign": {"name": "spring-sale", "medium": "email"}})
    client.page("user-1", "Docs", "Getting started", {"path": "/docs"}, timestamp=when)
    client.screen("user-2", "App", "Home", timestamp=when)
    client.track(anonymous_id="anon-9", event="Order Completed", properties={"revenue": 42.0}, timestamp=when)
    client.flush()
    assert errors == []
    events = {e.name: e for e in Event.objects.filter(workspace=workspace).select_related("campaign", "contact")}
    assert set(events) == {"Product Added", "Page Viewed", "Screen Viewed", "Order Completed"}
    added = events["Product Added"]
    assert added.contact.external_id == "user-1" and shown_stages([added]) == ["consideration"]
    assert added.campaign.key == "spring-sale" and added.channel == "email"
    assert added.properties["sku"] == "A1" and added.timestamp == when
    assert events["Order Completed"].contact.external_id == "anon-9" and events["Order Completed"].value == 42.0
    contact = Contact.objects.get(workspace=workspace, external_id="user-1")
    assert contact.email == "ada@example.com" and contact.traits.get("plan") == "pro"
    # The client's retries re-send the same messageIds: nothing is stored twice.
    client.track("user-1", "Product Added", {"sku": "A1"}, timestamp=when, message_id="fixed-1")
    client.track("user-1", "Product Added", {"sku": "A1"}, timestamp=when, message_id="fixed-1")
    client.flush()
    assert Event.objects.filter(workspace=workspace, message_id="fixed-1").count() == 1


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


@pytest.mark.django_db
def test_single_message_endpoints_and_bad_input(client, workspace_with_key):
    _, key = workspace_with_key
    auth = {"HTTP_AUTHORIZATION": _basic(key)}
    ok = client.post("/v1/track", json.dumps({"userId": "u1", "event": "Signed Up", "timestamp": "2026-01-01T00:00:00Z",
                                              "messageId": "s-1"}), content_type="application/json", **auth)
    assert ok.status_code == 200 and ok.json()["success"] is True and ok.json()["imported"] == 1
    missing = client.post("/v1/track", json.dumps({"event": "Signed Up", "timestamp": "2026-01-01T00:00:00Z"}),
                          content_type="application/json", **auth)
    assert missing.status_code == 400 and missing.json()["errors"][0]["field"] in ("userId", "contact_id")
    bad = client.post("/v1/batch", "{oops", content_type="application/json", **auth)
    assert bad.status_code == 400
    nokey = client.post("/v1/batch", json.dumps({"batch": []}), content_type="application/json")
    assert nokey.status_code == 401
    wrong = client.post("/v1/batch", json.dumps({"batch": []}), content_type="application/json",
                        HTTP_AUTHORIZATION=_basic("fk_deadbeef_nope"))
    assert wrong.status_code == 401
