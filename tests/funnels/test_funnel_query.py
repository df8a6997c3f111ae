"""The Django path of a funnel query: steps by name and stage, filters fetched from the database,
date range, strict order over every event, breakdowns, hold-constant, unknown names."""

from __future__ import annotations

import pytest

from funnel_site.funnels.selectors import funnel_query
from funnel_site.funnels.spec import funnel_spec_parse

from .helpers import DAY, counts, ingest

pytestmark = pytest.mark.django_db


def run(workspace, **query):
    return funnel_query(workspace=workspace, spec=funnel_spec_parse(query), use_cache=False).payload


@pytest.fixture
def shop(workspace_with_key):
    """Four contacts walking view -> cart -> buy with properties, campaigns, channels and traits."""
    workspace = workspace_with_key[0]
    ingest(workspace, [
        ("a", 0, "Product Viewed", {"properties": {"product_id": "p1", "price": 10}, "campaign": "spring",
                                    "channel": "email", "traits": {"plan": "pro"}}),
        ("a", 60, "Product Added", {"properties": {"product_id": "p1"}}),
        ("a", 120, "Order Completed", {"properties": {"product_id": "p1", "price": 10}}),
        ("b", 0, "Product Viewed", {"properties": {"product_id": "p2", "price": 50}, "channel": "social"}),
        ("b", 60, "Product Added", {"properties": {"product_id": "p3"}}),
        ("b", 120, "Order Completed", {"properties": {"product_id": "p3", "price": 5}}),
        ("c", 0, "Product Viewed", {"properties": {"product_id": "p1", "price": 10}, "campaign": "spring",
                                    "traits": {"plan": "free"}}),
        ("c", 30, "Page Viewed"),
        ("c", 60, "Product Added", {"properties": {"product_id": "p1"}}),
        ("d", 20 * DAY, "Product Viewed", {"properties": {"product_id": "p9", "price": 99}}),
        ("d", 20 * DAY + 60, "Product Added"),
    ])
    return workspace


def test_steps_by_name_and_stage(shop):
    assert counts(run(shop, steps=["Product Viewed", "Product Added", "Order Completed"])) == [4, 4, 2]
    assert counts(run(shop, steps=["stage:interest", "stage:consideration", "stage:purchase"])) == [4, 4, 2]
    assert counts(run(shop, steps=["Product Viewed|Page Viewed", "Order Completed"])) == [4, 2]


def test_unknown_event_counts_zero_with_a_warning(shop):
    payload = run(shop, steps=["Product Viewed", "Nope Event"])
    assert counts(payload) == [4, 0]
    assert any("Nope Event" in w for w in payload["warnings"])


def test_property_filters_are_fetched_and_applied(shop):
    step = {"event": "Product Viewed", "properties": [{"key": "price", "operator": "lt", "value": 20}]}
    assert counts(run(shop, steps=[step, "Order Completed"])) == [2, 1]
    step = {"event": "Product Viewed", "properties": [{"key": "product_id", "operator": "in", "value": ["p2", "p9"]}]}
    assert counts(run(shop, steps=[step, "Product Added"])) == [2, 2]
    step = {"event": "Product Viewed", "properties": {"product_id": "p1"}}
    assert counts(run(shop, steps=[step, "Product Added"])) == [2, 2]
    step = {"event": "Order Completed", "properties": [{"key": "price", "operator": "gt", "value": 6}]}
    assert counts(run(shop, steps=["Product Viewed", step])) == [4, 1]


def test_campaign_and_channel_filters(shop):
    assert counts(run(shop, steps=[{"event": "Product Viewed", "campaign": "spring"}, "Product Added"])) == [2, 2]
    assert counts(run(shop, steps=[{"event": "Product Viewed", "channel": "social"}, "Order Completed"])) == [1, 1]
    payload = run(shop, steps=[{"event": "Product Viewed", "campaign": "nope"}, "Product Added"])
    assert counts(payload) == [0, 0] and any("nope" in w for w in payload["warnings"])


def test_hold_constant_needs_the_same_property_value(shop):
    steps = ["Product Viewed", "Product Added", "Order Completed"]
    assert counts(run(shop, steps=steps, hold_constant="product_id")) == [4, 2, 1]


def test_date_range_applies_to_every_event(shop):
    assert counts(run(shop, steps=["Product Viewed", "Product Added"], since="2026-01-10")) == [1, 1]
    assert counts(run(shop, steps=["Product Viewed", "Product Added"], until="2026-01-01T00:00:59Z")) == [3, 0]


def test_strict_order_is_broken_by_any_event_between(shop):
    steps = ["Product Viewed", "Product Added"]
    assert counts(run(shop, steps=steps, order="strict")) == [4, 3]  # c viewed a page in between
    assert counts(run(shop, steps=steps, order="sequential")) == [4, 4]


def test_breakdowns(shop):
    steps = ["Product Viewed", "Order Completed"]

    def table(payload):
        return {item["value"]: [s["count"] for s in item["steps"]] for item in payload["breakdown"]}

    assert table(run(shop, steps=steps, breakdown="campaign")) == {"spring": [2, 1], None: [2, 1]}
    assert table(run(shop, steps=steps, breakdown="channel")) == {"email": [1, 1], "social": [1, 1], None: [2, 0]}
    assert table(run(shop, steps=steps, breakdown="property:product_id")) == {
        "p1": [2, 1], "p2": [1, 1], "p9": [1, 0]}
    assert table(run(shop, steps=steps, breakdown="contact:plan")) == {"pro": [1, 1], "free": [1, 0], None: [2, 1]}
    assert table(run(shop, steps=steps, breakdown="stage")) == {"interest": [4, 2]}
    # last touch: the value of the contact's last step event that has one
    assert table(run(shop, steps=steps, breakdown="property:product_id", attribution="last_touch")) == {
        "p1": [2, 1], "p3": [1, 1], "p9": [1, 0]}


def test_exclusion_and_totals_through_the_database(workspace_with_key):
    workspace = workspace_with_key[0]
    ingest(workspace, [
        ("u1", 0, "Signed Up"), ("u1", 10, "Paid"),
        ("u2", 0, "Signed Up"), ("u2", 5, "Refund"), ("u2", 10, "Paid"), ("u2", 20, "Signed Up"), ("u2", 30, "Paid"),
        ("u3", 0, "Signed Up"), ("u3", 10, "Paid"), ("u3", 20, "Signed Up"), ("u3", 30, "Paid"),
    ])
    steps = ["Signed Up", "Paid"]
    assert counts(run(workspace, steps=steps, exclude=["Refund:1-2"])) == [3, 3]
    assert counts(run(workspace, steps=steps, count="totals")) == [5, 5]
