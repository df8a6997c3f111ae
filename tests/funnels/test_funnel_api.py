"""POST /api/v1/funnels/query and the contacts of a step: results, 400s naming the field, tenancy."""

from __future__ import annotations

import json

import pytest

from .helpers import ingest

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(api):
    ingest(api.workspace, [
        ("a", 0, "pv"), ("a", 100, "cart"), ("a", 400, "buy"),
        ("b", 0, "pv"), ("b", 200, "cart"),
        ("c", 0, "pv"),
    ])
    return api


def post(client, path, body, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return client.post(f"{path}?{query}" if query else path, json.dumps(body), content_type="application/json")


def test_query_returns_the_same_shape_as_the_command(shop):
    resp = post(shop, "/api/v1/funnels/query", {"steps": ["pv", "cart", "buy"], "window": "1d"})
    assert resp.status_code == 200, resp.content
    data = resp.json()
    assert [s["count"] for s in data["steps"]] == [3, 2, 1]
    assert {"event", "count", "conversion_from_previous", "conversion_from_start",
            "median_seconds_from_previous", "drop_off", "p90_seconds_from_previous"} <= set(data["steps"][0])
    assert {"time_to_convert_histogram", "trend", "breakdown", "warnings", "definition", "cached"} <= set(data)
    assert sum(data["time_to_convert_histogram"]["counts"]) == 1
    assert data["trend"]["points"][0]["entered"] == 3
    assert data["definition"]["window_seconds"] == 86400


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"steps": ["pv"]}, "steps"),
        ({"steps": [f"e{i}" for i in range(21)]}, "steps"),
        ({}, "steps"),
        ({"steps": ["pv", "cart"], "window": "soon"}, "window"),
        ({"steps": ["pv", "cart"], "window": "91d"}, "window"),
        ({"steps": ["pv", "cart"], "order": "backwards"}, "order"),
        ({"steps": ["pv", "cart"], "count": "many"}, "count"),
        ({"steps": ["pv", "cart"], "exclude": ["x:1-5"]}, "exclude[0]"),
        ({"steps": ["pv", "cart"], "exclude": ["x"]}, "exclude[0]"),
        ({"steps": ["pv", {"event": "cart", "properties": [{"key": "p", "operator": "like", "value": 1}]}]},
         "steps[1].properties[0]"),
        ({"steps": ["pv", {"event": "cart", "properties": [{"key": "p", "operator": "gt", "value": "x"}]}]},
         "steps[1].properties[0]"),
        ({"steps": ["pv", "cart"], "breakdown": "colour"}, "breakdown"),
        ({"steps": ["pv", "cart"], "since": "2026-02-01", "until": "2026-01-01"}, "until"),
        ({"steps": ["pv", "cart"], "colour": "red"}, "colour"),
        ({"steps": ["pv", "stage:heaven"]}, "steps[1]"),
    ],
)
def test_invalid_query_is_a_400_naming_the_field(shop, body, field):
    resp = post(shop, "/api/v1/funnels/query", body)
    assert resp.status_code == 400, resp.content
    assert resp.json()["field"] == field and resp.json()["error"].startswith(field)


def test_body_must_be_an_object(shop):
    resp = shop.post("/api/v1/funnels/query", "[1]", content_type="application/json")
    assert resp.status_code == 400 and resp.json()["field"] == "body"


def test_contacts_who_converted_and_dropped_paginated(shop):
    body = {"steps": ["pv", "cart", "buy"]}
    resp = post(shop, "/api/v1/funnels/query/contacts", body, step=2, status="converted", limit=1)
    data = resp.json()
    assert resp.status_code == 200 and data["total"] == 2 and len(data["contacts"]) == 1
    second = post(shop, "/api/v1/funnels/query/contacts", body, step=2, status="converted", limit=1, offset=1).json()
    assert {data["contacts"][0]["contact_id"], second["contacts"][0]["contact_id"]} == {"a", "b"}
    dropped = post(shop, "/api/v1/funnels/query/contacts", body, step=2, status="dropped").json()
    assert [c["contact_id"] for c in dropped["contacts"]] == ["c"]
    dropped = post(shop, "/api/v1/funnels/query/contacts", body, step=3, status="dropped").json()
    assert [c["contact_id"] for c in dropped["contacts"]] == ["b"]


@pytest.mark.parametrize(("params", "field"), [({}, "step"), ({"step": 4}, "step"), ({"step": "x"}, "step"),
                                               ({"step": 1, "status": "maybe"}, "status"),
                                               ({"step": 1, "limit": 0}, "limit")])
def test_contacts_page_validation(shop, params, field):
    resp = post(shop, "/api/v1/funnels/query/contacts", {"steps": ["pv", "cart", "buy"]}, **params)
    assert resp.status_code == 400 and resp.json()["field"] == field


def test_time_limit_is_a_503_with_the_reason(shop, settings):
    settings.FUNNEL_QUERY_TIMEOUT_SECONDS = 0
    resp = post(shop, "/api/v1/funnels/query", {"steps": ["pv", "cart"]})
    assert resp.status_code == 503 and "time limit" in resp.json()["error"]


def test_no_key_no_result(shop):
    from rest_framework.test import APIClient

    resp = APIClient().post("/api/v1/funnels/query", {"steps": ["pv", "cart"]}, format="json")
    assert resp.status_code == 401


def test_another_workspace_never_sees_these_contacts(shop, other_api):
    ingest(other_api.workspace, [("z", 0, "pv")], start=100)
    data = post(other_api, "/api/v1/funnels/query", {"steps": ["pv", "cart"]}).json()
    assert [s["count"] for s in data["steps"]] == [1, 0]
    page = post(other_api, "/api/v1/funnels/query/contacts", {"steps": ["pv", "cart"]}, step=1).json()
    assert [c["contact_id"] for c in page["contacts"]] == ["z"]
    report = other_api.get("/api/v1/funnels/marketing").json()
    assert report["contacts"] == 1  # z only, not acme's three
