"""The integrations API: contract shapes, credentials never returned, tenancy by id, roles."""

from __future__ import annotations

import base64

import pytest

from funnel_site.events.models import ApiKey
from integrations.models import Destination, SyncRun, WebhookDelivery
from tests.integrations.helpers import members, segment

pytestmark = pytest.mark.django_db


def _destination(api, **kw):
    body = {"kind": "webhook", "name": "hook", "settings": {"api_base": "http://127.0.0.1:9/hook"},
            "credentials": {"secret": "whsec_" + base64.b64encode(b"k" * 24).decode()}, **kw}
    return api.post("/api/v1/destinations", body, format="json")


def test_destination_created_without_credentials_in_any_answer(api):
    resp = _destination(api)
    assert resp.status_code == 201, resp.content
    assert "credentials" not in resp.json() and b"whsec_" not in resp.content
    listed = api.get("/api/v1/destinations")
    assert b"whsec_" not in listed.content and listed.json()["results"][0]["id"] == resp.json()["id"]
    dest = Destination.objects.get()
    assert "whsec_" not in dest.credentials_encrypted and "whsec_" not in repr(dest)
    assert dest.credentials["secret"].startswith("whsec_")


def test_bad_input_names_the_field(api):
    assert "kind" in api.post("/api/v1/destinations", {"kind": "fax", "name": "x"}, format="json").json()["detail"]
    resp = api.post("/api/v1/destinations", {"kind": "hubspot", "name": "x", "credentials": {}}, format="json")
    assert resp.status_code == 400 and "credentials.token" in resp.json()["error"]
    seg = segment(api.workspace)
    dest_id = _destination(api).json()["id"]
    resp = api.post("/api/v1/syncs", {"segment": seg.pk, "destination": dest_id, "schedule": "every day"}, format="json")
    assert resp.status_code == 400 and "schedule" in resp.json()["detail"]
    resp = api.post("/api/v1/syncs", {"segment": seg.pk, "destination": dest_id,
                                      "field_mapping": {"x": "score:purchase.oops"}}, format="json")
    assert resp.status_code == 400 and "field_mapping" in resp.json()["detail"]


def test_sync_by_segment_name_with_schedule_and_dry_run(api):
    from django_celery_beat.models import PeriodicTask

    seg = segment(api.workspace, "Likely buyers")
    members(api.workspace, seg, ["a", "b"])
    dest_id = _destination(api).json()["id"]
    resp = api.post("/api/v1/syncs", {"segment": "Likely buyers", "destination": dest_id, "mode": "mirror",
                                      "schedule": "*/15 * * * *"}, format="json")
    assert resp.status_code == 201, resp.content
    sync_id = resp.json()["id"]
    task = PeriodicTask.objects.get(name=f"integrations-sync-{sync_id}")
    assert task.task == "integrations.tasks.sync_scheduled" and task.crontab.minute == "*/15"
    run = api.post(f"/api/v1/syncs/{sync_id}/run", {"dry_run": True}, format="json")
    assert run.status_code == 202 and run.json()["created"] is True
    again = api.post(f"/api/v1/syncs/{sync_id}/run", {}, format="json")
    assert again.json() == {"run_id": run.json()["run_id"], "created": False}  # one run per sync at a time
    detail = api.get(f"/api/v1/sync-runs/{run.json()['run_id']}").json()
    assert detail["status"] == "queued" and {"added", "updated", "removed", "failed", "skipped"} <= set(detail)
    from integrations.engine import sync_run_execute

    sync_run_execute(run_id=run.json()["run_id"])
    records = api.get(f"/api/v1/sync-runs/{run.json()['run_id']}/records").json()
    assert records["count"] == 2 and {r["status"] for r in records["results"]} == {"planned"}
    api.patch(f"/api/v1/syncs/{sync_id}", {"schedule": None}, format="json")
    assert not PeriodicTask.objects.filter(name=f"integrations-sync-{sync_id}").exists()


def test_webhook_sources_register_secrets_never_shown(api):
    resp = api.post("/api/v1/webhook-sources", {"source": "segment", "secret": "s" * 20 + "tail"}, format="json")
    assert resp.status_code == 201 and resp.json()["hint"] == "tail" and "secret" not in resp.json()
    assert api.post("/api/v1/webhook-sources", {"source": "segment", "secret": "short"}, format="json").status_code == 400
    bad_std = api.post("/api/v1/webhook-sources", {"source": "standard", "secret": "whsec_!!!notbase64!!!"}, format="json")
    assert bad_std.status_code == 400 and "secret" in bad_std.json()["detail"]


@pytest.mark.parametrize("role,read,write", [("viewer", 200, 403), ("editor", 200, 403), ("admin", 200, 201)])
def test_roles(api, role, read, write):
    ApiKey.objects.filter(workspace=api.workspace).update(role=role)
    assert api.get("/api/v1/destinations").status_code == read
    assert api.get("/api/v1/sync-runs").status_code == read
    assert _destination(api).status_code == write
    assert api.post("/api/v1/webhook-sources", {"source": "segment", "secret": "x" * 20}, format="json").status_code == write


def test_other_workspace_ids_are_404(api, other_api):
    seg = segment(api.workspace)
    dest_id = _destination(api).json()["id"]
    sync_id = api.post("/api/v1/syncs", {"segment": seg.pk, "destination": dest_id}, format="json").json()["id"]
    run_id = api.post(f"/api/v1/syncs/{sync_id}/run", {"dry_run": True}, format="json").json()["run_id"]
    delivery = WebhookDelivery.objects.create(workspace=api.workspace, source="standard", provider_id="p", payload="{}")
    for method, path in [("get", f"/api/v1/destinations/{dest_id}"), ("post", f"/api/v1/destinations/{dest_id}/test"),
                         ("get", f"/api/v1/syncs/{sync_id}"), ("post", f"/api/v1/syncs/{sync_id}/run"),
                         ("get", f"/api/v1/sync-runs/{run_id}"), ("get", f"/api/v1/sync-runs/{run_id}/records"),
                         ("post", f"/api/v1/webhook-deliveries/{delivery.pk}/replay")]:
        assert getattr(other_api, method)(path).status_code == 404, path
    # a sync of acme's segment to a globex destination, or the reverse, cannot be made
    other_dest = _destination(other_api).json()["id"]
    resp = other_api.post("/api/v1/syncs", {"segment": seg.pk, "destination": other_dest}, format="json")
    assert resp.status_code == 400 and "segment" in resp.json()["detail"]
    assert other_api.get("/api/v1/sync-runs").json()["count"] == 0
    assert SyncRun.objects.filter(workspace=other_api.workspace).count() == 0


def test_admin_never_shows_credentials_or_secrets(api, admin_client):
    dest_id = _destination(api).json()["id"]
    api.post("/api/v1/webhook-sources", {"source": "segment", "secret": "top-secret-value-1234"}, format="json")
    from integrations.models import Destination, WebhookSource

    token = Destination.objects.get(pk=dest_id).credentials_encrypted
    for url in (f"/admin/integrations/destination/{dest_id}/change/", "/admin/integrations/destination/",
                f"/admin/integrations/webhooksource/{WebhookSource.objects.get().pk}/change/"):
        page = admin_client.get(url)
        assert page.status_code == 200, url
        assert b"whsec_" not in page.content and token.encode() not in page.content
        assert b"top-secret-value" not in page.content
