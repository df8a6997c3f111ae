"""Workspaces are tenants: a key of workspace A never reads or writes workspace B, on any endpoint.

Every URL under /api/v1/ and /v1/ must have a case here: a new endpoint without one fails
`test_every_endpoint_has_a_tenancy_case`.
"""

from __future__ import annotations

import json

import pytest
from django.urls import get_resolver

from funnel_site.events.models import Contact, Event

pytestmark = pytest.mark.django_db

SECRET = "acme-secret-contact"

# route pattern -> (method, concrete path); each is called with globex's key after acme has data
CASES: dict[str, tuple[str, str]] = {
    "api/v1/events": ("GET", "/api/v1/events"),
    "api/v1/contacts": ("GET", "/api/v1/contacts"),
    "api/v1/contacts/<str:external_id>": ("GET", f"/api/v1/contacts/{SECRET}"),
    "api/v1/campaigns": ("GET", "/api/v1/campaigns"),
    "api/v1/workspace": ("GET", "/api/v1/workspace"),
    "v1/batch": ("POST", "/v1/batch"),
    "v1/track": ("POST", "/v1/track"),
    "v1/identify": ("POST", "/v1/identify"),
    "v1/page": ("POST", "/v1/page"),
    "v1/screen": ("POST", "/v1/screen"),
    # funnels (saved-funnel ids of another workspace are 404: tests/funnels/test_saved_funnels.py)
    "api/v1/funnels": ("GET", "/api/v1/funnels"),
    "api/v1/funnels/query": ("POST", "/api/v1/funnels/query"),
    "api/v1/funnels/query/contacts": ("POST", "/api/v1/funnels/query/contacts"),
    "api/v1/funnels/marketing": ("GET", "/api/v1/funnels/marketing"),
    "api/v1/funnels/<int:pk>": ("GET", "/api/v1/funnels/1"),
    "api/v1/funnels/<int:pk>/results": ("GET", "/api/v1/funnels/1/results"),
    "api/v1/funnels/<int:pk>/contacts": ("GET", "/api/v1/funnels/1/contacts?step=1"),
    # predictions (acme's own model ids tried with globex's key: tests/predictions/test_tenancy_predictions.py)
    "api/v1/models": ("GET", "/api/v1/models"),
    "api/v1/models/<int:model_id>": ("GET", "/api/v1/models/1"),
    "api/v1/models/<int:model_id>/activate": ("POST", "/api/v1/models/1/activate"),
    "api/v1/models/<int:model_id>/cancel": ("POST", "/api/v1/models/1/cancel"),
    "api/v1/predictions": ("GET", "/api/v1/predictions"),
    "api/v1/predictions/<str:contact_id>": ("GET", f"/api/v1/predictions/{SECRET}"),
    # segments (acme's own segment ids tried with globex's key: tests/predictions/segments/test_apis.py)
    "api/v1/segments": ("GET", "/api/v1/segments"),
    "api/v1/segments/preview": ("POST", "/api/v1/segments/preview"),
    "api/v1/segments/<int:segment_id>": ("GET", "/api/v1/segments/1"),
    "api/v1/segments/<int:segment_id>/members": ("GET", "/api/v1/segments/1/members"),
    "api/v1/segments/<int:segment_id>/refresh": ("POST", "/api/v1/segments/1/refresh"),
    "api/v1/segments/<int:segment_id>/history": ("GET", "/api/v1/segments/1/history"),
    # integrations (acme's own ids tried with globex's key: tests/integrations/test_api.py)
    "api/v1/destinations": ("GET", "/api/v1/destinations"),
    "api/v1/destinations/<int:pk>": ("GET", "/api/v1/destinations/1"),
    "api/v1/destinations/<int:pk>/test": ("POST", "/api/v1/destinations/1/test"),
    "api/v1/syncs": ("GET", "/api/v1/syncs"),
    "api/v1/syncs/<int:pk>": ("GET", "/api/v1/syncs/1"),
    "api/v1/syncs/<int:pk>/run": ("POST", "/api/v1/syncs/1/run"),
    "api/v1/sync-runs": ("GET", "/api/v1/sync-runs"),
    "api/v1/sync-runs/<int:pk>": ("GET", "/api/v1/sync-runs/1"),
    "api/v1/sync-runs/<int:pk>/records": ("GET", "/api/v1/sync-runs/1/records"),
    "api/v1/webhook-sources": ("GET", "/api/v1/webhook-sources"),
    "api/v1/webhook-sources/<int:pk>": ("GET", "/api/v1/webhook-sources/1"),
    "api/v1/webhook-deliveries": ("GET", "/api/v1/webhook-deliveries"),
    "api/v1/webhook-deliveries/<int:pk>/replay": ("POST", "/api/v1/webhook-deliveries/1/replay"),
    # scores (acme's run ids, scores and POSTs tried with globex's key: tests/predictions/test_scoring_api.py)
    "api/v1/scoring-runs": ("GET", "/api/v1/scoring-runs"),
    "api/v1/scoring-runs/<int:run_id>": ("GET", "/api/v1/scoring-runs/1"),
    "api/v1/contacts/<str:contact_id>/predictions": ("GET", f"/api/v1/contacts/{SECRET}/predictions"),
    "api/v1/predict": ("POST", "/api/v1/predict"),
}


def _routes(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for p in resolver.url_patterns:
        route = prefix + str(p.pattern)
        if hasattr(p, "url_patterns"):
            yield from _routes(p, route)
        else:
            yield route.lstrip("^").rstrip("$")


def test_every_endpoint_has_a_tenancy_case():
    api_routes = {r for r in _routes() if r.startswith(("api/v1/", "v1/"))}
    missing = api_routes - set(CASES)
    assert not missing, f"add a tenancy case for: {sorted(missing)}"


@pytest.fixture
def acme_data(api):
    resp = api.post("/api/v1/events", json.dumps([
        {"contact_id": SECRET, "event": "Order Completed", "timestamp": "2026-01-01T00:00:00Z",
         "campaign": "acme-campaign", "message_id": "shared-id"},
    ]), content_type="application/json")
    assert resp.json()["imported"] == 1
    return api.workspace


@pytest.mark.parametrize("route", sorted(CASES))
def test_other_workspace_key_never_sees_or_touches_acme(route, acme_data, other_api):
    method, path = CASES[route]
    if method == "GET":
        resp = other_api.get(path)
        assert resp.status_code in (200, 404), resp.content
        assert SECRET.encode() not in resp.content and b"acme-campaign" not in resp.content
        if route == "api/v1/workspace":
            assert resp.json()["slug"] == "globex" and resp.json()["events"] == 0
    else:
        body = {"batch": [{"type": "track", "userId": SECRET, "event": "Order Completed",
                           "timestamp": "2026-01-02T00:00:00Z", "messageId": "shared-id"}]}
        if route != "v1/batch":
            body = {**body["batch"][0], "type": route.split("/")[-1]}
            body.setdefault("name", "x")
        resp = other_api.post(path, json.dumps(body), content_type="application/json")
        assert resp.status_code in (200, 400, 404), resp.content
    # acme's rows are untouched, and whatever globex wrote is globex's
    assert Event.objects.filter(workspace=acme_data).count() == 1
    acme_contact = Contact.objects.get(workspace=acme_data, external_id=SECRET)
    assert acme_contact.email == "" and acme_contact.traits == {}
    assert not Event.objects.filter(workspace=other_api.workspace, contact__workspace=acme_data).exists()


def test_same_message_id_in_two_workspaces_is_two_events(api, other_api):
    item = json.dumps([{"contact_id": "c", "event": "pv", "timestamp": 1511544070, "message_id": "m"}])
    assert api.post("/api/v1/events", item, content_type="application/json").json()["imported"] == 1
    assert other_api.post("/api/v1/events", item, content_type="application/json").json()["imported"] == 1
    assert Event.objects.count() == 2
