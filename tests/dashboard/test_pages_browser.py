"""The web UI in a real headless browser: landing, login, workspaces, overview, tenancy of pages."""

from __future__ import annotations

import json

import pytest

from tests.browser import chart_data, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _ingest(api, n: int = 30) -> None:
    items = [{"contact_id": f"c{i % 7}", "event": ["Page Viewed", "Product Added", "Order Completed"][i % 3],
              "timestamp": 1767225600 + i * 3600} for i in range(n)]
    assert api.post("/api/v1/events", json.dumps(items), content_type="application/json").json()["imported"] == n


def test_landing_links_admin_docs_and_dashboard(page, live_server):
    page.goto(live_server.url + "/")
    assert page.title() == "Funnel plugin"
    hrefs = page.eval_on_selector_all("ul.cards a", "els => els.map(e => e.getAttribute('href'))")
    assert {"/dashboard/", "/admin/", "/api/docs/"} <= set(hrefs)
    page.click("text=API docs")
    page.wait_for_selector(".swagger-ui", state="attached")
    page.get_by_text("/api/v1/events").first.wait_for()


def test_login_then_workspace_overview_shows_counts_chart_and_stages(page, live_server, admin_login, api):
    _ingest(api)
    login(page, live_server, *admin_login)
    page.click("text=acme")
    assert page.inner_text("#n-events") == "30"
    assert page.inner_text("#n-contacts") == "7"
    per_day = chart_data(page, "events-per-day")
    assert sum(per_day["datasets"][0]) == 30 and per_day["labels"] == ["2026-01-01", "2026-01-02"]
    stages = page.inner_text("#stages")
    assert "consideration" in stages and "purchase" in stages


def test_member_sees_only_own_workspace(page, live_server, api, other_api, django_user_model):
    from funnel_site.events.models import Membership

    user = django_user_model.objects.create_user("mia", password="pw-123456")
    Membership.objects.create(workspace=other_api.workspace, user=user)
    login(page, live_server, "mia", "pw-123456")
    rows = page.locator("table.data tbody tr")
    assert rows.count() == 1 and rows.first.inner_text().startswith("globex")
    assert "acme" not in page.content()
    resp = page.goto(f"{live_server.url}/dashboard/acme/")
    assert resp.status == 404
