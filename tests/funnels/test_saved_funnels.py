"""Saved funnels: create, list, get, update, delete, results and contacts; per workspace only."""

from __future__ import annotations

import json

import pytest

from funnel_site.funnels.models import SavedFunnel

from .helpers import ingest

pytestmark = pytest.mark.django_db

DEFINITION = {"steps": ["pv", {"event": "buy", "properties": [{"key": "plan", "operator": "eq", "value": "pro"}]}],
              "window": "1d", "breakdown": "channel"}


@pytest.fixture
def saved(api):
    ingest(api.workspace, [
        ("a", 0, "pv", {"channel": "email"}), ("a", 10, "buy", {"properties": {"plan": "pro"}}),
        ("b", 0, "pv"), ("b", 10, "buy", {"properties": {"plan": "free"}}),
    ])
    resp = api.post("/api/v1/funnels", json.dumps({"name": "Pro buyers", "definition": DEFINITION}),
                    content_type="application/json")
    assert resp.status_code == 201, resp.content
    return resp.json()


def test_create_stores_the_canonical_definition(api, saved):
    assert saved["definition"]["window_seconds"] == 86400
    assert saved["definition"]["steps"][1]["properties"][0] == {"key": "plan", "operator": "eq", "value": "pro"}
    assert [f["name"] for f in api.get("/api/v1/funnels").json()["results"]] == ["Pro buyers"]
    assert api.get(f"/api/v1/funnels/{saved['id']}").json()["name"] == "Pro buyers"


def test_results_and_contacts_of_a_saved_funnel(api, saved):
    data = api.get(f"/api/v1/funnels/{saved['id']}/results").json()
    assert [s["count"] for s in data["steps"]] == [2, 1]
    assert {b["value"]: b["steps"][1]["count"] for b in data["breakdown"]} == {"email": 1, None: 0}
    page = api.get(f"/api/v1/funnels/{saved['id']}/contacts?step=2&status=dropped").json()
    assert [c["contact_id"] for c in page["contacts"]] == ["b"]


def test_update_and_delete(api, saved):
    url = f"/api/v1/funnels/{saved['id']}"
    resp = api.put(url, json.dumps({"name": "Any buyers", "definition": {"steps": ["pv", "buy"]}}),
                   content_type="application/json")
    assert resp.status_code == 200 and resp.json()["name"] == "Any buyers"
    assert [s["count"] for s in api.get(f"{url}/results").json()["steps"]] == [2, 2]
    resp = api.patch(url, json.dumps({"description": "everyone"}), content_type="application/json")
    assert resp.json()["description"] == "everyone" and resp.json()["name"] == "Any buyers"
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404
    assert not SavedFunnel.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "", "definition": DEFINITION}, "name"),
        ({"name": "x", "definition": {"steps": ["pv"]}}, "definition.steps"),
        ({"name": "x", "definition": {"steps": ["pv", "buy"], "window": "1y"}}, "window"),
        ({"name": "x"}, "definition"),
        ({"name": "Pro buyers", "definition": DEFINITION}, "name"),
    ],
)
def test_invalid_saved_funnel_is_a_400_naming_the_field(api, saved, body, field):
    resp = api.post("/api/v1/funnels", json.dumps(body), content_type="application/json")
    assert resp.status_code == 400 and resp.json()["field"] == field, resp.content


def test_another_workspace_cannot_read_change_or_delete_it(api, saved, other_api):
    url = f"/api/v1/funnels/{saved['id']}"
    assert other_api.get("/api/v1/funnels").json()["results"] == []
    for resp in (other_api.get(url), other_api.get(f"{url}/results"), other_api.get(f"{url}/contacts?step=1"),
                 other_api.put(url, json.dumps({"name": "mine"}), content_type="application/json"),
                 other_api.delete(url)):
        assert resp.status_code == 404
    assert SavedFunnel.objects.get().name == "Pro buyers"


def test_admin_lists_saved_funnels(admin_client, saved):
    resp = admin_client.get("/admin/funnels/savedfunnel/")
    assert resp.status_code == 200 and b"Pro buyers" in resp.content


def test_the_page_runs_a_saved_funnel_with_its_filters(admin_client, saved):
    resp = admin_client.get(f"/dashboard/acme/funnels/?saved={saved['id']}")
    assert resp.status_code == 200
    counts = [s["count"] for s in resp.context["steps"]]
    assert counts == [2, 1]  # the plan=pro filter of step 2 applies, though the form shows only "buy"
    assert resp.context["form"]["steps"].value() == "pv,buy"
