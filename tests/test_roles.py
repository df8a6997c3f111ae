"""Roles are enforced on every API route and page action (viewer < editor < admin, per workspace).

The tables below say which role each (route, method) needs; the tests walk the URLconf, so a route
or a method without a line here fails `test_every_api_route_has_a_role_case` /
`test_every_page_route_has_a_role_case`. Adding a route is one line. Each case is then called by a
key (API) or a member (page) of each role: below the role the answer is 403 before anything is
read or written; at or above it anything but 403 (and never a 5xx).
"""

from __future__ import annotations

import base64
import json

import pytest
from django.test import Client
from django.urls import get_resolver

from funnel_site.events.roles import ADMIN, EDITOR, ROLE_RANK, VIEWER

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")

# API route -> (concrete path, {METHOD: role needed}). Ids that do not exist are fine: the role is
# checked before the object is looked up (a 404 then proves the request got past the role).
API_ROLES: dict[str, tuple[str, dict[str, str]]] = {
    "api/v1/events": ("/api/v1/events", {"GET": VIEWER, "POST": EDITOR}),
    "api/v1/contacts": ("/api/v1/contacts", {"GET": VIEWER}),
    "api/v1/contacts/<str:external_id>": ("/api/v1/contacts/nobody", {"GET": VIEWER}),
    "api/v1/campaigns": ("/api/v1/campaigns", {"GET": VIEWER}),
    "api/v1/workspace": ("/api/v1/workspace", {"GET": VIEWER}),
    "v1/batch": ("/v1/batch", {"POST": EDITOR}),
    "v1/track": ("/v1/track", {"POST": EDITOR}),
    "v1/identify": ("/v1/identify", {"POST": EDITOR}),
    "v1/page": ("/v1/page", {"POST": EDITOR}),
    "v1/screen": ("/v1/screen", {"POST": EDITOR}),
    "api/v1/funnels": ("/api/v1/funnels", {"GET": VIEWER, "POST": EDITOR}),
    "api/v1/funnels/query": ("/api/v1/funnels/query", {"POST": VIEWER}),
    "api/v1/funnels/query/contacts": ("/api/v1/funnels/query/contacts", {"POST": VIEWER}),
    "api/v1/funnels/marketing": ("/api/v1/funnels/marketing", {"GET": VIEWER}),
    "api/v1/funnels/<int:pk>": (
        "/api/v1/funnels/999999", {"GET": VIEWER, "PUT": EDITOR, "PATCH": EDITOR, "DELETE": EDITOR},
    ),
    "api/v1/funnels/<int:pk>/results": ("/api/v1/funnels/999999/results", {"GET": VIEWER}),
    "api/v1/funnels/<int:pk>/contacts": ("/api/v1/funnels/999999/contacts?step=1", {"GET": VIEWER}),
    "api/v1/models": ("/api/v1/models", {"GET": VIEWER, "POST": ADMIN}),
    "api/v1/models/<int:model_id>": ("/api/v1/models/999999", {"GET": VIEWER}),
    "api/v1/models/<int:model_id>/activate": ("/api/v1/models/999999/activate", {"POST": ADMIN}),
    "api/v1/models/<int:model_id>/cancel": ("/api/v1/models/999999/cancel", {"POST": ADMIN}),
    "api/v1/predictions": ("/api/v1/predictions", {"GET": VIEWER}),
    "api/v1/predictions/<str:contact_id>": ("/api/v1/predictions/nobody", {"GET": VIEWER}),
    # scoring runs (admins start them), stored predictions, inline scoring (reads only)
    "api/v1/scoring-runs": ("/api/v1/scoring-runs", {"GET": VIEWER, "POST": ADMIN}),
    "api/v1/scoring-runs/<int:run_id>": ("/api/v1/scoring-runs/999999", {"GET": VIEWER}),
    "api/v1/contacts/<str:contact_id>/predictions": ("/api/v1/contacts/nobody/predictions", {"GET": VIEWER}),
    "api/v1/predict": ("/api/v1/predict", {"POST": VIEWER}),
    # segments (editors change them; a preview writes nothing, so viewers may run it)
    "api/v1/segments": ("/api/v1/segments", {"GET": VIEWER, "POST": EDITOR}),
    "api/v1/segments/preview": ("/api/v1/segments/preview", {"POST": VIEWER}),
    "api/v1/segments/<int:segment_id>": (
        "/api/v1/segments/999999", {"GET": VIEWER, "PUT": EDITOR, "PATCH": EDITOR, "DELETE": EDITOR},
    ),
    "api/v1/segments/<int:segment_id>/members": ("/api/v1/segments/999999/members", {"GET": VIEWER}),
    "api/v1/segments/<int:segment_id>/refresh": ("/api/v1/segments/999999/refresh", {"POST": EDITOR}),
    "api/v1/segments/<int:segment_id>/history": ("/api/v1/segments/999999/history", {"GET": VIEWER}),
    # integrations (admins manage destinations, syncs and webhook secrets)
    "api/v1/destinations": ("/api/v1/destinations", {"GET": VIEWER, "POST": ADMIN}),
    "api/v1/destinations/<int:pk>": ("/api/v1/destinations/999999", {"GET": VIEWER, "DELETE": ADMIN}),
    "api/v1/destinations/<int:pk>/test": ("/api/v1/destinations/999999/test", {"POST": ADMIN}),
    "api/v1/syncs": ("/api/v1/syncs", {"GET": VIEWER, "POST": ADMIN}),
    "api/v1/syncs/<int:pk>": ("/api/v1/syncs/999999", {"GET": VIEWER, "PATCH": ADMIN, "DELETE": ADMIN}),
    "api/v1/syncs/<int:pk>/run": ("/api/v1/syncs/999999/run", {"POST": ADMIN}),
    "api/v1/sync-runs": ("/api/v1/sync-runs", {"GET": VIEWER}),
    "api/v1/sync-runs/<int:pk>": ("/api/v1/sync-runs/999999", {"GET": VIEWER}),
    "api/v1/sync-runs/<int:pk>/records": ("/api/v1/sync-runs/999999/records", {"GET": VIEWER}),
    "api/v1/webhook-sources": ("/api/v1/webhook-sources", {"GET": VIEWER, "POST": ADMIN}),
    "api/v1/webhook-sources/<int:pk>": ("/api/v1/webhook-sources/999999", {"GET": VIEWER, "DELETE": ADMIN}),
    "api/v1/webhook-deliveries": ("/api/v1/webhook-deliveries", {"GET": VIEWER}),
    "api/v1/webhook-deliveries/<int:pk>/replay": ("/api/v1/webhook-deliveries/999999/replay", {"POST": ADMIN}),
}

# Page route (under the workspace `acme`) -> (concrete path, {METHOD: role needed}).
PAGE_ROLES: dict[str, tuple[str, dict[str, str]]] = {
    "dashboard/<slug:slug>/": ("/dashboard/acme/", {"GET": VIEWER}),
    "dashboard/<slug:slug>/funnels/": ("/dashboard/acme/funnels/", {"GET": VIEWER}),
    "dashboard/<slug:slug>/funnels/save": ("/dashboard/acme/funnels/save", {"POST": EDITOR}),
    "dashboard/<slug:slug>/funnels/<int:pk>/delete": ("/dashboard/acme/funnels/999999/delete", {"POST": EDITOR}),
    "dashboard/<slug:slug>/funnels/marketing/": ("/dashboard/acme/funnels/marketing/", {"GET": VIEWER}),
    "dashboard/<slug:slug>/models/": ("/dashboard/acme/models/", {"GET": VIEWER, "POST": ADMIN}),
    "dashboard/<slug:slug>/models/<int:model_id>/": ("/dashboard/acme/models/999999/", {"GET": VIEWER}),
    "dashboard/<slug:slug>/models/<int:model_id>/status": ("/dashboard/acme/models/999999/status", {"GET": VIEWER}),
    "dashboard/<slug:slug>/models/<int:model_id>/activate": (
        "/dashboard/acme/models/999999/activate", {"POST": ADMIN},
    ),
    "dashboard/<slug:slug>/models/<int:model_id>/cancel": ("/dashboard/acme/models/999999/cancel", {"POST": ADMIN}),
    "dashboard/<slug:slug>/models/contacts/<str:contact_id>/": (
        "/dashboard/acme/models/contacts/nobody/", {"GET": VIEWER},
    ),
    "dashboard/<slug:slug>/models/<int:model_id>/score": ("/dashboard/acme/models/999999/score", {"POST": ADMIN}),
    # contacts, scores, workspace settings (ui)
    "dashboard/<slug:slug>/contacts/": ("/dashboard/acme/contacts/", {"GET": VIEWER}),
    "dashboard/<slug:slug>/contacts/<str:contact_id>/": ("/dashboard/acme/contacts/nobody/", {"GET": VIEWER}),
    "dashboard/<slug:slug>/scores/<int:model_id>.csv": ("/dashboard/acme/scores/999999.csv", {"GET": VIEWER}),
    "dashboard/<slug:slug>/settings/": ("/dashboard/acme/settings/", {"GET": VIEWER}),
    "dashboard/<slug:slug>/settings/stages": ("/dashboard/acme/settings/stages", {"POST": ADMIN}),
    "dashboard/<slug:slug>/settings/keys": ("/dashboard/acme/settings/keys", {"POST": ADMIN}),
    "dashboard/<slug:slug>/settings/keys/<int:key_id>/revoke": (
        "/dashboard/acme/settings/keys/999999/revoke", {"POST": ADMIN},
    ),
    "dashboard/<slug:slug>/settings/members": ("/dashboard/acme/settings/members", {"POST": ADMIN}),
    "dashboard/<slug:slug>/settings/members/<int:member_id>/remove": (
        "/dashboard/acme/settings/members/999999/remove", {"POST": ADMIN},
    ),
    # segments
    "dashboard/<slug:slug>/segments/": ("/dashboard/acme/segments/", {"GET": VIEWER}),
    "dashboard/<slug:slug>/segments/new/": ("/dashboard/acme/segments/new/", {"GET": EDITOR, "POST": EDITOR}),
    "dashboard/<slug:slug>/segments/preview": ("/dashboard/acme/segments/preview", {"POST": VIEWER}),
    "dashboard/<slug:slug>/segments/<int:segment_id>/": ("/dashboard/acme/segments/999999/", {"GET": VIEWER}),
    "dashboard/<slug:slug>/segments/<int:segment_id>/refresh": (
        "/dashboard/acme/segments/999999/refresh", {"POST": EDITOR},
    ),
    "dashboard/<slug:slug>/segments/<int:segment_id>/delete": (
        "/dashboard/acme/segments/999999/delete", {"POST": EDITOR},
    ),
    # integrations
    "dashboard/<slug:slug>/destinations/": ("/dashboard/acme/destinations/", {"GET": VIEWER, "POST": ADMIN}),
    "dashboard/<slug:slug>/destinations/<int:pk>/test": (
        "/dashboard/acme/destinations/999999/test", {"POST": ADMIN},
    ),
    "dashboard/<slug:slug>/syncs/": ("/dashboard/acme/syncs/", {"GET": VIEWER, "POST": ADMIN}),
    "dashboard/<slug:slug>/syncs/<int:pk>/run": ("/dashboard/acme/syncs/999999/run", {"POST": ADMIN}),
    "dashboard/<slug:slug>/syncs/runs/<int:pk>/": ("/dashboard/acme/syncs/runs/999999/", {"GET": VIEWER}),
    "dashboard/<slug:slug>/webhooks/": ("/dashboard/acme/webhooks/", {"GET": VIEWER, "POST": ADMIN}),
    "dashboard/<slug:slug>/webhooks/<int:pk>/replay": ("/dashboard/acme/webhooks/999999/replay", {"POST": ADMIN}),
}


def _patterns(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for p in resolver.url_patterns:
        route = prefix + str(p.pattern)
        if hasattr(p, "url_patterns"):
            yield from _patterns(p, route)
        else:
            yield route.lstrip("^").rstrip("$"), p.callback


def _api_methods(callback) -> set[str]:
    cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    return {m.upper() for m in METHODS if cls is not None and hasattr(cls, m)}


def test_every_api_route_has_a_role_case():
    missing = []
    for route, callback in _patterns():
        if route.startswith(("api/v1/", "v1/")):
            known = API_ROLES.get(route, ("", {}))[1]
            missing += [f"{method} {route}" for method in sorted(_api_methods(callback) - set(known))]
    assert not missing, f"add a role case to API_ROLES for: {missing}"


def test_every_page_route_has_a_role_case():
    routes = {route for route, _ in _patterns() if route.startswith("dashboard/<slug:slug>/")}
    missing = routes - set(PAGE_ROLES)
    assert not missing, f"add a role case to PAGE_ROLES for: {sorted(missing)}"


def _cases(table):
    return [(route, method, needed) for route, (_, methods) in sorted(table.items()) for method, needed in methods.items()]


@pytest.fixture
def keys(workspace_with_key):
    from funnel_site.events.services import api_key_create

    return {role: api_key_create(workspace=workspace_with_key[0], name=role, role=role)[1] for role in ROLE_RANK}


def _call(client, method: str, path: str, **extra):
    body = json.dumps({}) if method != "GET" else None
    kwargs = {"content_type": "application/json", "data": body} if body is not None else {}
    return getattr(client, method.lower())(path, **kwargs, **extra)


@pytest.mark.parametrize("route,method,needed", _cases(API_ROLES))
def test_api_route_needs_its_role(route, method, needed, keys):
    from funnel_site.events.models import Event
    from funnel_site.funnels.models import SavedFunnel
    from predictions.models import ModelVersion

    path = API_ROLES[route][0]
    for role, key in keys.items():
        before = (Event.objects.count(), SavedFunnel.objects.count(), ModelVersion.objects.count())
        segment = route.startswith("v1/")  # the Segment API's HTTP Basic, key as user name
        auth = f"Basic {base64.b64encode(f'{key}:'.encode()).decode()}" if segment else f"Bearer {key}"
        resp = _call(Client(), method, path, HTTP_AUTHORIZATION=auth)
        allowed = ROLE_RANK[role] >= ROLE_RANK[needed]
        assert resp.status_code < 500, (role, method, path, resp.content[:300])
        if allowed:
            assert resp.status_code != 403, (role, method, path, resp.content[:300])
        else:
            assert resp.status_code == 403, (role, method, path, resp.status_code, resp.content[:300])
            assert needed in resp.json()["error"], resp.json()
            assert before == (Event.objects.count(), SavedFunnel.objects.count(), ModelVersion.objects.count())


@pytest.fixture
def members(workspace_with_key, django_user_model):
    from funnel_site.events.models import Membership

    clients = {}
    for role in ROLE_RANK:
        user = django_user_model.objects.create_user(f"user-{role}", password="pw-for-tests")
        Membership.objects.create(workspace=workspace_with_key[0], user=user, role=role)
        client = Client()
        client.force_login(user)
        clients[role] = client
    return clients


@pytest.mark.parametrize("route,method,needed", _cases(PAGE_ROLES))
def test_page_action_needs_its_role(route, method, needed, members):
    path = PAGE_ROLES[route][0]
    for role, client in members.items():
        resp = client.get(path) if method == "GET" else client.post(path, {})
        allowed = ROLE_RANK[role] >= ROLE_RANK[needed]
        assert resp.status_code < 500, (role, method, path)
        assert (resp.status_code != 403) if allowed else (resp.status_code == 403), (role, method, path, resp.status_code)


def test_a_viewer_cannot_change_what_an_admin_made(api, keys, workspace_with_key):
    """End to end on real rows: a saved funnel survives a viewer's delete, and an editor's works."""
    made = api.post("/api/v1/funnels", {"name": "f", "definition": {"steps": ["a", "b"]}}, format="json")
    assert made.status_code == 201, made.content
    path = f"/api/v1/funnels/{made.json()['id']}"
    viewer = Client(HTTP_AUTHORIZATION=f"Bearer {keys[VIEWER]}")
    assert viewer.delete(path).status_code == 403
    assert viewer.get(path).status_code == 200
    editor = Client(HTTP_AUTHORIZATION=f"Bearer {keys[EDITOR]}")
    assert editor.delete(path).status_code == 204
