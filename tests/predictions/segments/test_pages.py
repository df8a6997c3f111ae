"""Segment pages through Django's test client: list, editor, detail, preview endpoint, roles, tenancy."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from predictions.models import Segment

pytestmark = pytest.mark.django_db
TOP10 = {"score": {"target": "purchase", "top_percent": 10}}


@pytest.fixture
def member(client, django_user_model, workspace_with_key):
    """Log in a user with a given role in acme."""
    from funnel_site.events.models import Membership

    def login(role: str):
        user = django_user_model.objects.create_user(f"u-{role}", password="pw-12345678")
        Membership.objects.create(workspace=workspace_with_key[0], user=user, role=role)
        client.force_login(user)
        return client

    return login


def test_editor_previews_saves_and_sees_members(member, generated):
    client = member("editor")
    slug = generated.workspace.slug
    page = client.get(reverse("segments_ui:list", args=[slug]))
    assert page.status_code == 200 and b"Likely purchasers" in page.content and b"New segment" in page.content
    assert client.get(reverse("segments_ui:new", args=[slug])).status_code == 200
    preview = client.post(reverse("segments_ui:preview", args=[slug]), json.dumps({"definition": TOP10}),
                          content_type="application/json")
    assert preview.status_code == 200 and preview.json()["size"] > 0
    bad = client.post(reverse("segments_ui:preview", args=[slug]),
                      json.dumps({"definition": {"score": {"target": "purchase", "top_percent": 0}}}),
                      content_type="application/json")
    assert bad.status_code == 400 and bad.json()["field"] == "definition.score.top_percent"
    resp = client.post(reverse("segments_ui:new", args=[slug]), {"name": "best", "definition": json.dumps(TOP10)})
    segment = Segment.objects.get(workspace=generated.workspace, name="best")
    assert resp.status_code == 302 and resp.url == reverse("segments_ui:detail", args=[slug, segment.pk])
    detail = client.get(resp.url)
    assert detail.status_code == 200 and b'id="size-chart"' in detail.content
    best = max(generated.scores["purchase"], key=lambda c: (generated.scores["purchase"][c],
                                                            -generated.contact_ids[c]))
    assert best.encode() in detail.content
    resp = client.post(reverse("segments_ui:new", args=[slug]),
                       {"name": "bad", "definition": json.dumps({"score": {"target": "purchase"}})})
    assert resp.status_code == 200 and b"definition.score.min_probability" in resp.content


def test_viewer_reads_but_sees_no_controls_and_cannot_write(member, generated):
    client = member("viewer")
    slug = generated.workspace.slug
    segment = Segment.objects.get(workspace=generated.workspace, name="Churn risk")
    page = client.get(reverse("segments_ui:detail", args=[slug, segment.pk]))
    assert page.status_code == 200
    assert b"segment-form" not in page.content and b"refresh-segment" not in page.content
    assert b"New segment" not in client.get(reverse("segments_ui:list", args=[slug])).content
    assert client.get(reverse("segments_ui:new", args=[slug])).status_code == 403
    assert client.post(reverse("segments_ui:detail", args=[slug, segment.pk]),
                       {"name": "x", "definition": json.dumps(TOP10)}).status_code == 403
    assert client.post(reverse("segments_ui:refresh", args=[slug, segment.pk])).status_code == 403
    assert client.post(reverse("segments_ui:delete", args=[slug, segment.pk])).status_code == 403
    assert Segment.objects.filter(pk=segment.pk, name="Churn risk").exists()


def test_another_workspaces_pages_are_404(member, generated, other_workspace_with_key):
    client = member("admin")
    other = other_workspace_with_key[0]
    theirs = Segment.objects.filter(workspace=other).first()
    assert client.get(reverse("segments_ui:list", args=[other.slug])).status_code == 404
    assert client.get(reverse("segments_ui:detail", args=[other.slug, theirs.pk])).status_code == 404
    # acme's slug with globex's segment id is not found either
    assert client.get(reverse("segments_ui:detail", args=[generated.workspace.slug, theirs.pk])).status_code == 404


def test_admin_lists_segments_and_keeps_history_read_only(admin_client, generated):
    from predictions.models import SegmentMembership
    from predictions.segments.services import segments_refresh

    segments_refresh(workspace=generated.workspace)
    assert admin_client.get("/admin/predictions/segment/").status_code == 200
    membership = SegmentMembership.objects.first()
    for path in ("/admin/predictions/segmentmembership/", "/admin/predictions/segmentchange/",
                 "/admin/predictions/segmentsize/"):
        assert admin_client.get(path).status_code == 200, path
    assert admin_client.get("/admin/predictions/segmentmembership/add/").status_code == 403
    page = admin_client.get(f"/admin/predictions/segmentmembership/{membership.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    segment = Segment.objects.get(workspace=generated.workspace, name="Churn risk")
    resp = admin_client.post(f"/admin/predictions/segment/{segment.pk}/change/", {
        "workspace": generated.workspace.pk, "name": "Churn risk", "description": "",
        "definition": json.dumps({"score": {"target": "churn", "min_probability": 7}})})
    assert resp.status_code == 200 and b"definition.score.min_probability" in resp.content
