"""The five-stage marketing funnel: reached counts, stage-to-stage conversion, per campaign/channel."""

from __future__ import annotations

import pytest

from funnel_site.funnels.marketing import marketing_funnel_report
from funnel_site.funnels.spec import parse_moment

from .helpers import DAY, ingest

pytestmark = pytest.mark.django_db


@pytest.fixture
def crm(api):
    ingest(api.workspace, [
        # a: aware via the spring e-mail, viewed, carted, bought twice (the second is loyalty)
        ("a", 0, "Email Opened", {"campaign": "spring", "channel": "email"}),
        ("a", 60, "Product Viewed"), ("a", 120, "Product Added"), ("a", 180, "Order Completed"),
        ("a", 2 * DAY, "Order Completed"),
        # b: came through paid search, viewed and carted
        ("b", 0, "Product Viewed", {"channel": "paid_search", "campaign": "ps-brand"}), ("b", 60, "Product Added"),
        # c: bought with no earlier staged event recorded (reached every stage up to purchase)
        ("c", 0, "Order Completed", {"channel": "email", "campaign": "spring"}),
        # d: only saw a promotion; e: only an unstaged event
        ("d", 0, "Promotion Viewed"),
        ("e", 0, "Something Else"),
        # f: outside the period
        ("f", 40 * DAY, "Order Completed"),
    ])
    return api


def test_report_counts_and_conversions(crm):
    report = marketing_funnel_report(workspace=crm.workspace, since=parse_moment("2026-01-01", "since"),
                                     until=parse_moment("2026-01-31", "until"))
    stages = {s["stage"]: s for s in report["stages"]}
    assert report["contacts"] == 4
    assert [s["reached"] for s in report["stages"]] == [4, 3, 3, 2, 1]
    assert [s["with_events"] for s in report["stages"]] == [2, 2, 2, 2, 1]
    assert stages["interest"]["conversion_from_previous"] == 0.75
    assert stages["purchase"]["conversion_from_previous"] == round(2 / 3, 4)
    assert stages["loyalty"]["conversion_from_start"] == 0.25
    by_campaign = {g["value"]: [s["reached"] for s in g["stages"]] for g in report["by_campaign"]}
    assert by_campaign == {"spring": [2, 2, 2, 2, 1], "ps-brand": [1, 1, 1, 0, 0], None: [1, 0, 0, 0, 0]}
    by_channel = {g["value"]: [s["reached"] for s in g["stages"]] for g in report["by_channel"]}
    assert by_channel == {"email": [2, 2, 2, 2, 1], "paid_search": [1, 1, 1, 0, 0], None: [1, 0, 0, 0, 0]}


def test_api_defaults_to_the_30_days_before_the_newest_event(crm):
    data = crm.get("/api/v1/funnels/marketing").json()
    assert data["contacts"] == 1 and data["stages"][3]["reached"] == 1  # only f is within 30 days of itself
    data = crm.get("/api/v1/funnels/marketing?since=2026-01-01&until=2026-03-01").json()
    assert data["contacts"] == 5


@pytest.mark.parametrize(("query", "field"), [("since=nope", "since"), ("since=2026-02-01&until=2026-01-01", "until")])
def test_api_validation(crm, query, field):
    resp = crm.get(f"/api/v1/funnels/marketing?{query}")
    assert resp.status_code == 400 and resp.json()["field"] == field
