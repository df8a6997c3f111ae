"""The web UI's own pages through Django's test client: access, roles, keys shown once, settings."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from funnel_site.dashboard.nav import workspace_nav
from funnel_site.events.models import ApiKey, Membership, StageMapping

pytestmark = pytest.mark.django_db


def _member(django_user_model, workspace, name: str, role: str):
    user = django_user_model.objects.create_user(name, password="pw-123456")
    Membership.objects.create(workspace=workspace, user=user, role=role)
    return user


def _ingest(api, n: int = 12) -> None:
    items = [{"contact_id": f"c{i % 4}", "event": ["Page Viewed", "Product Added", "Order Completed"][i % 3],
              "timestamp": 1767225600 + i * 3600, "properties": {"revenue": 10 * i}} for i in range(n)]
    assert api.post("/api/v1/events", json.dumps(items), content_type="application/json").json()["imported"] == n


def test_nav_leaves_out_entries_whose_url_does_not_reverse():
    labels = [i["label"] for i in workspace_nav(slug="acme", current_path="/dashboard/acme/contacts/c1/")]
    assert labels[:2] == ["Overview", "Funnels"] and "Contacts" in labels and "Settings" in labels
    current = [i["label"] for i in workspace_nav(slug="acme", current_path="/dashboard/acme/contacts/c1/") if i["current"]]
    assert current == ["Contacts"]


def test_every_page_renders_for_a_viewer_without_controls(client, api, django_user_model):
    _ingest(api)
    _member(django_user_model, api.workspace, "vic", "viewer")
    client.login(username="vic", password="pw-123456")
    for url in ["/dashboard/", "/dashboard/acme/", "/dashboard/acme/contacts/", "/dashboard/acme/contacts/c1/",
                "/dashboard/acme/settings/"]:
        body = client.get(url).content.decode()
        assert url == "/dashboard/" or 'class="workspace-nav"' in body, url
        assert body.count('method="post"') == 1, url  # the log-out button only
    assert client.post(reverse("dashboard:key-create", args=["acme"]), {"name": "x", "role": "admin"}).status_code == 403


def test_other_tenant_is_404_on_every_dashboard_page(client, api, other_api, django_user_model):
    _ingest(api)
    _member(django_user_model, other_api.workspace, "mia", "admin")
    client.login(username="mia", password="pw-123456")
    for url in ["/dashboard/acme/", "/dashboard/acme/contacts/", "/dashboard/acme/contacts/c1/",
                "/dashboard/acme/settings/", "/dashboard/go?slug=acme"]:
        assert client.get(url).status_code == 404, url
    from predictions.models import ModelVersion

    theirs = ModelVersion.objects.create(workspace=api.workspace, target="purchase", config={})
    assert client.get(f"/dashboard/acme/scores/{theirs.pk}.csv").status_code == 404
    assert client.get(f"/dashboard/globex/scores/{theirs.pk}.csv").status_code == 404  # their id under my slug
    key = ApiKey.objects.filter(workspace=api.workspace).first()
    assert client.post(f"/dashboard/acme/settings/keys/{key.pk}/revoke").status_code == 404
    assert client.post(f"/dashboard/globex/settings/keys/{key.pk}/revoke").status_code == 302
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None  # another tenant's key id is not found


def test_admin_creates_a_key_shown_once_then_revokes_it(client, api, django_user_model):
    _member(django_user_model, api.workspace, "ada", "admin")
    client.login(username="ada", password="pw-123456")
    page = client.post(reverse("dashboard:key-create", args=["acme"]), {"name": "website", "role": "editor"}, follow=True)
    body = page.content.decode()
    key = ApiKey.objects.get(workspace=api.workspace, name="website")
    assert key.role == "editor" and f"fk_{key.prefix}_" in body
    clear = body.split('id="new-api-key-value">')[1].split("<")[0]
    assert client.get("/dashboard/acme/settings/").content.decode().count(clear) == 0  # shown once
    events = client.post("/api/v1/events", json.dumps([{"contact_id": "u1", "event": "Page Viewed",
                         "timestamp": 1767225600}]), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {clear}")
    assert events.status_code in (200, 201, 207)
    client.post(reverse("dashboard:key-revoke", args=["acme", key.pk]))
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None


def test_admin_edits_stage_map_and_members(client, api, django_user_model):
    _member(django_user_model, api.workspace, "ada", "admin")
    django_user_model.objects.create_user("ed", password="pw-123456")
    client.login(username="ada", password="pw-123456")
    client.post(reverse("dashboard:stage-map", args=["acme"]), {"event_name": "Quiz Done", "stage": "interest"})
    assert StageMapping.objects.get(workspace=api.workspace, event_name="Quiz Done").stage == "interest"
    page = client.post(reverse("dashboard:stage-map", args=["acme"]), {"event_name": "X", "stage": "fame"}, follow=True)
    assert "stage: &#x27;fame&#x27; is not one of" in page.content.decode()
    client.post(reverse("dashboard:member-save", args=["acme"]), {"username": "ed", "role": "editor"})
    assert Membership.objects.get(workspace=api.workspace, user__username="ed").role == "editor"
    ada = Membership.objects.get(workspace=api.workspace, user__username="ada")
    page = client.post(reverse("dashboard:member-remove", args=["acme", ada.pk]), follow=True)
    assert "last admin" in page.content.decode() and Membership.objects.filter(pk=ada.pk).exists()


def test_staff_creates_a_workspace_and_sees_its_first_key(client, django_user_model):
    django_user_model.objects.create_user("sam", password="pw-123456", is_staff=True)
    client.login(username="sam", password="pw-123456")
    page = client.post("/dashboard/new", {"slug": "shop", "name": "Shop", "time_zone": "Europe/Paris"}, follow=True)
    body = page.content.decode()
    assert page.redirect_chain[-1][0] == "/dashboard/shop/" and 'id="new-api-key-value">fk_' in body
    assert "Send your first event" in body and "import_events events.csv --workspace shop" in body
    assert Membership.objects.get(workspace__slug="shop", user__username="sam").role == "admin"
    bad = client.post("/dashboard/new", {"slug": "Bad Slug", "name": "", "time_zone": "UTC"})
    assert "slug:" in bad.content.decode()


def test_non_staff_cannot_create_a_workspace(client, django_user_model):
    django_user_model.objects.create_user("joe", password="pw-123456")
    client.login(username="joe", password="pw-123456")
    assert client.get("/dashboard/new").status_code == 403


def test_favicon_and_branded_admin(client, django_user_model):
    assert client.get("/favicon.ico")["Content-Type"] == "image/x-icon"
    django_user_model.objects.create_superuser("root", "r@example.com", "pw-123456")
    client.login(username="root", password="pw-123456")
    body = client.get("/admin/").content.decode()
    assert "Funnel plugin administration" in body and "dashboard/icon.svg" in body


def test_login_required(client):
    for url in ["/dashboard/", "/dashboard/acme/contacts/"]:
        assert client.get(url).status_code == 302


def test_optional_include_renders_nothing_for_a_missing_partial_and_the_partial_when_present():
    from django.template import Context, Template

    template = Template('{% load ui %}[{% optional_include "no/such.html" %}][{% optional_include "dashboard/_new_key.html" %}]')
    assert "".join(template.render(Context({"new_api_key": None})).split()) == "[][]"
    shown = template.render(Context({"new_api_key": {"name": "k", "key": "fk_x"}}))
    assert 'id="new-api-key-value">fk_x' in shown
