"""The integration pages in headless Chromium at phone width (390 px): add a destination, create a
sync, dry-run it on the real worker and read the preview; webhooks page with refusals and replay."""

from __future__ import annotations

import pytest

from funnel_site.events.models import Membership
from integrations.models import WebhookDelivery, WebhookRefusal
from tests.browser import login
from tests.integrations.helpers import members, segment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _fits(page) -> None:
    """Nothing of this page's content is wider than the phone; wide tables scroll inside their box.
    (The shared header's navigation is the UI work's and is not checked here.)"""
    wide = page.evaluate("""Array.from(document.querySelectorAll('main *'))
        .filter(e => !e.closest('.int-scroll') || e.classList.contains('int-scroll'))
        .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
        .map(e => e.tagName + '#' + e.id + '.' + e.className)""")
    assert not wide, f"wider than {page.viewport_size['width']} px: {wide}"


def test_dry_run_from_the_syncs_page_at_390px(page, live_server, admin_login, workspace_with_key, celery_worker_process):
    ws = workspace_with_key[0]
    seg = segment(ws, "Likely buyers")
    members(ws, seg, ["b1", "b2", "b3"])
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, live_server, *admin_login)
    page.goto(f"{live_server.url}/dashboard/{ws.slug}/destinations/")
    _fits(page)
    page.select_option("#destination-form select[name=kind]", "file")
    page.fill("#destination-form input[name=name]", "Export")
    page.fill("#destination-form textarea[name=settings]", '{"path": "browser/buyers.csv"}')
    page.click("#destination-form button[type=submit]")
    assert "Export" in page.inner_text("#destinations")
    page.click("#destinations >> text=Test connection")
    assert "is writable" in page.inner_text(".messages")
    page.goto(f"{live_server.url}/dashboard/{ws.slug}/syncs/")
    _fits(page)
    # every workspace also has its default segments: pick ours
    page.select_option("#sync-form select[name=segment]", label="Likely buyers")
    page.click("#sync-form button[type=submit]")
    assert "Likely buyers" in page.inner_text("#syncs")
    page.click("#syncs button.dry-run")
    page.wait_for_function("document.querySelector('#run-status').innerText === 'succeeded'", timeout=60_000)
    assert page.inner_text("[data-count=added]") == "3"
    assert page.inner_text("#records").count("planned") == 3
    _fits(page)


def test_webhooks_page_shows_refusals_and_replays(page, live_server, admin_login, workspace_with_key, django_user_model):
    ws = workspace_with_key[0]
    WebhookRefusal.objects.create(workspace=ws, source="hubspot", reason="stale", status_code=400)
    WebhookDelivery.objects.create(workspace=ws, source="standard", provider_id="msg_9", payload="{}",
                                   status="failed", error="data.contact_id is required")
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, live_server, *admin_login)
    page.goto(f"{live_server.url}/dashboard/{ws.slug}/webhooks/")
    _fits(page)
    assert "stale" in page.inner_text("#refusals") and "data.contact_id is required" in page.inner_text("#deliveries")
    page.click("#deliveries >> text=Replay")
    assert "queued for processing again" in page.inner_text(".messages")


def test_page_roles(client, workspace_with_key, django_user_model):
    ws = workspace_with_key[0]
    viewer = django_user_model.objects.create_user("v", password="pw-123456")
    Membership.objects.create(workspace=ws, user=viewer, role="viewer")
    client.force_login(viewer)
    for name in ("destinations", "syncs", "webhooks"):
        assert client.get(f"/dashboard/{ws.slug}/{name}/").status_code == 200
        assert client.post(f"/dashboard/{ws.slug}/{name}/", {}).status_code == 403
    assert client.get("/dashboard/globex-nope/syncs/").status_code == 404
