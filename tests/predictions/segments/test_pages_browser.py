"""The segments page in headless Chromium: build a definition with the editor, watch the live
preview, save, and see the members with their scores; at 1280 px and at 390 px."""

from __future__ import annotations

import math

import pytest

from predictions.models import Segment
from tests.browser import login
from tests.predictions.segments.conftest import generate_workspace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def expected_top(g, percent) -> int:
    return math.ceil(percent * len(g.scores["purchase"]) / 100)


def fits(page) -> bool:
    return page.evaluate("document.querySelector('main').scrollWidth <= window.innerWidth")


def test_preview_save_and_see_members(page, live_server, admin_login, workspace_with_key):
    g = generate_workspace(workspace_with_key[0])
    login(page, live_server, *admin_login)
    page.goto(f"{live_server.url}/dashboard/acme/segments/")
    assert "Likely purchasers" in page.inner_text("#segments")
    page.click("#new-segment")
    page.wait_for_function("document.querySelector('#preview-size').textContent.includes('contacts')")
    assert page.inner_text("#preview-size") == f"{expected_top(g, 10)} contacts"

    page.fill(".score-amount", "50")
    page.wait_for_function(f"document.querySelector('#preview-size').textContent === '{expected_top(g, 50)} contacts'")
    # and / not: add an email condition, negate it; the JSON and the preview follow
    page.click(".add-condition")
    page.locator(".cond-kind").nth(1).select_option("email")
    page.locator(".email-op").select_option("exists")
    page.locator(".negate").nth(1).check()
    definition = page.input_value("#definition-json")
    assert '"not"' in definition and '"email"' in definition and '"and"' in definition
    page.wait_for_function("!document.querySelector('#preview-size').textContent.includes('…')")
    top_half = sorted(g.scores["purchase"], key=lambda c: (-g.scores["purchase"][c], g.contact_ids[c]))
    expected = [c for c in top_half[: expected_top(g, 50)] if not g.emails[c]]
    page.wait_for_function(f"document.querySelector('#preview-size').textContent.startsWith('{len(expected)} ')")

    page.fill("#segment-name", "Half without email")
    page.click("#save-segment")
    page.wait_for_selector("#members")
    segment = Segment.objects.get(name="Half without email")
    assert segment.definition == {"and": [{"score": {"target": "purchase", "top_percent": 50}},
                                          {"not": {"email": {"op": "exists"}}}]}
    assert page.inner_text("#segment-size") == str(len(expected))
    members = page.inner_text("#members")
    assert expected[0] in members and "Viewed a product" in members
    assert page.locator("#size-chart circle").count() == 1

    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("", "new/", f"{segment.pk}/"):
        page.goto(f"{live_server.url}/dashboard/acme/segments/{path}")
        assert fits(page), path
