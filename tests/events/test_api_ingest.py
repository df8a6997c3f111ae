"""POST /api/v1/events: per-item validation, idempotency, limits, gzip."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest

from funnel_site.events.models import Campaign, Contact, Event
from tests.stages import shown_stages

pytestmark = pytest.mark.django_db


def _post(api, payload, **extra):
    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    return api.post("/api/v1/events", body, content_type="application/json", **extra)


def test_single_object_is_stored_with_stage_campaign_and_contact(api):
    resp = _post(api, {"contact_id": "u1", "event": "Product Added", "timestamp": "2026-01-02T10:00:00Z",
                       "campaign": "spring", "channel": "email", "value": "19.5",
                       "properties": {"sku": "A1"}, "message_id": "m-1"})
    assert resp.status_code == 200, resp.content
    assert resp.json() == {"received": 1, "imported": 1, "duplicates": 0, "rejected": 0, "errors": []}
    event = Event.objects.get()
    assert (event.name, event.channel, event.value) == ("Product Added", "email", 19.5)
    assert shown_stages(Event.objects.all()) == ["consideration"]
    assert event.properties == {"sku": "A1"}
    assert event.campaign.key == "spring" and Campaign.objects.get().channel == "email"
    assert event.timestamp == datetime(2026, 1, 2, 10, tzinfo=UTC)
    contact = Contact.objects.get()
    assert contact.external_id == "u1" and contact.first_seen == contact.last_seen == event.timestamp


def test_list_keeps_valid_items_and_reports_each_invalid_one_by_index_and_field(api):
    now = datetime.now(UTC)
    items = [
        {"contact_id": "u1", "event": "pv", "timestamp": 1511544070},
        {"contact_id": "u1", "event": "cart", "timestamp": "not a time"},
        {"contact_id": "u1", "event": "buy", "timestamp": (now + timedelta(days=2)).isoformat()},
        {"contact_id": "u1", "event": "buy"},
        {"event": "pv", "timestamp": 1511544070},
        {"contact_id": "u2", "event": "Something New", "timestamp": 1511544070123},
        "not an object",
        {"contact_id": "u3", "event": "pv", "timestamp": 1511544070, "value": "abc"},
        {"contact_id": "u3", "event": "pv", "timestamp": 1511544070, "properties": [1, 2]},
    ]
    resp = _post(api, items)
    assert resp.status_code == 200
    body = resp.json()
    assert (body["received"], body["imported"], body["rejected"]) == (9, 2, 7)
    by_index = {e["index"]: e for e in body["errors"]}
    assert by_index[1]["field"] == "timestamp" and "could not parse" in by_index[1]["error"]
    assert by_index[2]["field"] == "timestamp" and "future" in by_index[2]["error"]
    assert by_index[3]["field"] == "timestamp" and "required" in by_index[3]["error"]
    assert by_index[4]["field"] == "contact_id"
    assert by_index[6]["field"] == "item"
    assert by_index[7]["field"] == "value"
    assert by_index[8]["field"] == "properties"
    unknown = Event.objects.get(name="Something New")
    assert shown_stages([unknown]) == [""]  # an unknown name is accepted and maps to no stage
    assert unknown.timestamp == datetime.fromtimestamp(1511544070.123, tz=UTC)  # milliseconds


def test_retried_request_stores_nothing_twice_with_or_without_message_id(api):
    items = [
        {"contact_id": "u1", "event": "pv", "timestamp": 1511544070, "message_id": "a"},
        {"contact_id": "u1", "event": "cart", "timestamp": 1511544080},  # content hash
        {"contact_id": "u1", "event": "cart", "timestamp": 1511544080},  # same content again
    ]
    first = _post(api, items).json()
    assert (first["imported"], first["duplicates"]) == (2, 1)
    second = _post(api, items).json()
    assert (second["imported"], second["duplicates"]) == (0, 3)
    assert Event.objects.count() == 2


def test_all_items_rejected_is_400_with_reasons(api):
    resp = _post(api, [{"contact_id": "u1", "event": "pv"}])
    assert resp.status_code == 400
    assert resp.json()["errors"][0]["field"] == "timestamp"


@pytest.mark.parametrize("body,fragment", [("{not json", "malformed JSON"), ("42", "JSON object or a list"),
                                           ("", "empty")])
def test_malformed_or_non_list_body_is_400_with_the_reason(api, body, fragment):
    resp = _post(api, body)
    assert resp.status_code == 400
    assert fragment in resp.json()["error"]


def test_body_over_the_limit_is_413(api, settings):
    settings.INGEST_MAX_BODY_BYTES = 1000
    resp = _post(api, [{"contact_id": "u1", "event": "pv", "timestamp": 1511544070, "properties": {"x": "y" * 2000}}])
    assert resp.status_code == 413


def test_batch_over_the_item_limit_is_413(api, settings):
    settings.INGEST_MAX_BATCH = 3
    resp = _post(api, [{"contact_id": "u1", "event": "pv", "timestamp": 1511544070 + i} for i in range(4)])
    assert resp.status_code == 413 and "over the limit" in resp.json()["error"]


def test_gzip_body_is_accepted_and_a_gzip_bomb_is_413(api, settings):
    items = [{"contact_id": f"u{i}", "event": "pv", "timestamp": 1511544070 + i} for i in range(50)]
    resp = _post(api, gzip.compress(json.dumps(items).encode()), HTTP_CONTENT_ENCODING="gzip")
    assert resp.status_code == 200 and resp.json()["imported"] == 50
    settings.INGEST_MAX_BODY_BYTES = 10_000
    bomb = gzip.compress(json.dumps([{"contact_id": "x" * 100_000}]).encode())
    assert len(bomb) < 10_000
    assert _post(api, bomb, HTTP_CONTENT_ENCODING="gzip").status_code == 413


@pytest.mark.parametrize("header", [None, "Bearer nope", "Bearer fk_00000000_wrong", "Token abc"])
def test_missing_or_wrong_key_is_401(db, header):
    from rest_framework.test import APIClient

    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    resp = client.post("/api/v1/events", "[]", content_type="application/json")
    assert resp.status_code == 401
    assert Event.objects.count() == 0


def test_revoked_key_is_401(api, workspace_with_key):
    from funnel_site.events.models import ApiKey
    from funnel_site.events.services import api_key_revoke

    api_key_revoke(api_key=ApiKey.objects.get(workspace=workspace_with_key[0]))
    assert _post(api, [{"contact_id": "u1", "event": "pv", "timestamp": 1}]).status_code == 401


def test_key_is_stored_only_as_a_hash(workspace_with_key):
    from funnel_site.events.models import ApiKey

    workspace, key = workspace_with_key
    stored = ApiKey.objects.get(workspace=workspace)
    assert key not in (stored.key_hash, stored.prefix) and key.startswith(f"fk_{stored.prefix}_")


def test_repeat_purchase_is_loyalty_even_when_the_first_arrives_late(api):
    _post(api, [{"contact_id": "u1", "event": "Order Completed", "timestamp": "2026-01-10T00:00:00Z"}])
    assert shown_stages(Event.objects.all()) == ["purchase"]
    _post(api, [{"contact_id": "u1", "event": "Order Completed", "timestamp": "2026-01-05T00:00:00Z"},
                {"contact_id": "u1", "event": "Order Completed", "timestamp": "2026-01-20T00:00:00Z"}])
    stages = shown_stages(Event.objects.order_by("timestamp"))
    assert stages == ["purchase", "loyalty", "loyalty"]
    contact = Contact.objects.get()
    assert contact.first_purchase_at == datetime(2026, 1, 5, tzinfo=UTC)
    assert contact.first_seen == datetime(2026, 1, 5, tzinfo=UTC)
    assert contact.last_seen == datetime(2026, 1, 20, tzinfo=UTC)


def test_get_events_lists_the_workspace_events(api):
    _post(api, [{"contact_id": "u1", "event": "pv", "timestamp": 1511544070 + i} for i in range(3)])
    resp = api.get("/api/v1/events?contact_id=u1&limit=2")
    assert resp.status_code == 200
    assert resp.json()["count"] == 3 and len(resp.json()["results"]) == 2
