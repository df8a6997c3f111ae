"""The funnel pages in a real headless browser: explorer, charts, breakdown, saving, marketing view."""

from __future__ import annotations

import pytest

from tests.browser import chart_data, login

from .helpers import DAY, ingest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop(api):
    events = []
    for i in range(6):  # six visitors, four cart, two buy; the first three came by e-mail
        extra = {"channel": "email", "campaign": "spring"} if i < 3 else {"channel": "social"}
        events.append((f"c{i}", i * DAY, "Page Viewed", extra))
        if i < 4:
            events.append((f"c{i}", i * DAY + 600, "Product Added"))
        if i < 2:
            events.append((f"c{i}", i * DAY + 1800 * (i + 1), "Order Completed"))
    ingest(api.workspace, events)
    return api.workspace


def table_column(page, selector: str, column: int) -> list[str]:
    return page.eval_on_selector_all(
        f"{selector} tbody tr", f"rows => rows.map(r => r.cells[{column}].innerText.trim())")


def test_explore_a_funnel_with_charts_breakdown_and_save_it(page, live_server, admin_login, shop):
    login(page, live_server, *admin_login)
    page.click("text=acme")
    page.click("header nav >> text=Funnels")
    page.fill("#id_steps", "Page Viewed,Product Added,Order Completed")
    page.fill("#id_breakdown", "channel")
    page.click("#explorer button[type=submit]")
    page.wait_for_selector("#funnel-steps")
    assert table_column(page, "#funnel-steps", 2) == ["6", "4", "2"]
    assert table_column(page, "#funnel-steps", 4) == ["100.0%", "66.7%", "33.3%"]
    bars = chart_data(page, "funnel-bars")
    assert bars["datasets"][0] == [6, 4, 2] and bars["labels"] == ["Page Viewed", "Product Added", "Order Completed"]
    assert bars["value_labels"][0] == "6 · 100.0%"
    assert sum(chart_data(page, "ttc-histogram")["datasets"][0]) == 2
    trend = chart_data(page, "trend")["datasets"][0]
    assert len([v for v in trend if v is not None]) == 6  # one entry per day, each day a point
    breakdown = dict(zip(table_column(page, "#breakdown", 0), table_column(page, "#breakdown", 3), strict=True))
    assert breakdown["email"].startswith("2") and breakdown["social"].startswith("0")

    page.fill("#id_name", "Checkout funnel")
    page.click("#save-funnel button[type=submit]")
    page.wait_for_selector("text=saved funnel 'Checkout funnel'")
    assert "Checkout funnel" in page.inner_text("#saved-funnels")
    assert table_column(page, "#funnel-steps", 2) == ["6", "4", "2"]  # the saved funnel is open
    assert page.input_value("#id_breakdown") == "channel"


def test_invalid_input_shows_the_field(page, live_server, admin_login, shop):
    login(page, live_server, *admin_login)
    page.goto(f"{live_server.url}/dashboard/acme/funnels/")
    page.fill("#id_steps", "Page Viewed,Product Added")
    page.fill("#id_window", "fortnight")
    page.click("#explorer button[type=submit]")
    assert page.inner_text("#funnel-error").startswith("window:")
    page.fill("#id_steps", "Page Viewed")
    page.fill("#id_window", "14d")
    page.click("#explorer button[type=submit]")
    assert page.inner_text("#funnel-error").startswith("steps:")


def test_marketing_five_stage_view(page, live_server, admin_login, shop):
    login(page, live_server, *admin_login)
    page.goto(f"{live_server.url}/dashboard/acme/funnels/")
    page.click("text=Marketing funnel")
    page.fill("#id_since", "2026-01-01")
    page.fill("#id_until", "2026-02-01")
    page.click("#marketing-period button[type=submit]")
    page.wait_for_selector("#marketing-stages")
    assert page.inner_text("#marketing-contacts") == "6"
    assert table_column(page, "#marketing-stages", 1) == ["6", "6", "4", "2", "0"]
    assert table_column(page, "#by-campaign", 0) == ["spring", "(none)"]
    assert table_column(page, "#by-channel", 0) == ["email", "social"]
    assert chart_data(page, "marketing-bars")["datasets"][0] == [6, 6, 4, 2, 0]


def test_another_tenant_cannot_open_the_funnel_page(page, live_server, other_api, shop, django_user_model):
    from funnel_site.events.models import Membership

    user = django_user_model.objects.create_user("mia", password="pw-123456")
    Membership.objects.create(workspace=other_api.workspace, user=user)
    login(page, live_server, "mia", "pw-123456")
    assert page.goto(f"{live_server.url}/dashboard/acme/funnels/").status == 404
    assert page.goto(f"{live_server.url}/dashboard/acme/funnels/marketing/").status == 404
