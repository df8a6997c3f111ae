"""The whole web UI in headless Chromium: every page at 1400 px and 390 px without sideways scrolling
(a screenshot of each under var/test/screenshots), a funnel built with the pickers matching the API,
a training started in the UI followed live on a real worker, a contact found and its factors shown,
and tenancy and roles: another tenant's pages are 404, a viewer sees no control that changes anything.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from funnel_site.dashboard.nav import workspace_nav
from funnel_site.events.models import Membership
from predictions.models import ContactScore, ModelVersion
from tests.browser import chart_data, login
from tests.predictions.conftest import (  # noqa: F401  (fixtures)
    TINY,
    _fresh_column_cache,
    make_version,
    synthetic_workspace,
    trained_artifact,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = (1400, 390)
SCREENSHOTS = Path(django_settings.BASE_DIR) / "var" / "test" / "screenshots"
FACTORS = [{"text": "Added to cart 2 days ago", "contribution": 0.31, "kind": "event"},
           {"text": "No purchase in 40 days", "contribution": -0.12, "kind": "recency"},
           {"text": "Came from the spring e-mail", "contribution": 0.05, "kind": "campaign"}]


@pytest.fixture
def world(synthetic_workspace, make_version, other_api):  # noqa: F811
    """acme with 400 synthetic contacts, a succeeded active model, one explained score; and globex."""
    version = make_version(synthetic_workspace)
    contact = synthetic_workspace.contacts.order_by("id").first()
    ContactScore.objects.create(workspace=synthetic_workspace, model_version=version, contact=contact,
                                target="purchase", probability=0.73, as_of=version.created_at,
                                factors=FACTORS, explained_at=version.created_at)
    return {"workspace": synthetic_workspace, "version": version, "contact": contact, "other": other_api.workspace}


def _pages(slug: str, version: ModelVersion, contact_id: str) -> dict[str, str]:
    """Every page of a workspace: its menu (whatever pages are merged) plus the object pages."""
    pages = {item["label"]: item["url"] for item in workspace_nav(slug=slug, current_path="")}
    pages.update({
        "Funnel result": f"/dashboard/{slug}/funnels/?steps=Page+Viewed%2CProduct+Added%2COrder+Completed&breakdown=channel",
        "Model": f"/dashboard/{slug}/models/{version.pk}/",
        "Contact": f"/dashboard/{slug}/contacts/{contact_id}/",
        "Contact scores": f"/dashboard/{slug}/models/contacts/{contact_id}/",
    })
    return pages


def _fits(page, name: str, width: int) -> str | None:
    """Screenshot the page; the overflow (px) when it is wider than the viewport, else None."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("load")
    page.screenshot(path=str(SCREENSHOTS / f"{name.lower().replace(' ', '-')}-{width}.png"), full_page=True)
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    return f"{name} at {width} px is {scroll} px wide" if scroll > inner else None


def test_every_page_fits_at_laptop_and_phone_width(browser, live_server, admin_login, world):
    pages = {"Workspaces": "/dashboard/", "New workspace": "/dashboard/new", "Admin": "/admin/",
             **_pages("acme", world["version"], world["contact"].external_id)}
    too_wide = []
    for width in WIDTHS:
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        page.set_default_timeout(20_000)
        for name, url in (("Landing", "/"), ("Login", "/accounts/login/")):
            page.goto(live_server.url + url)
            too_wide.append(_fits(page, name, width))
        login(page, live_server, *admin_login)
        for name, url in pages.items():
            response = page.goto(live_server.url + url)
            assert response.status == 200, f"{name} {url}: {response.status}"
            too_wide.append(_fits(page, name, width))
        context.close()
    assert [t for t in too_wide if t] == []
    assert {"Overview", "Funnels", "Models", "Contacts", "Settings"} <= set(pages)


def test_overview_charts_and_five_stage_funnel(page, live_server, admin_login, world):
    login(page, live_server, *admin_login)
    page.goto(f"{live_server.url}/dashboard/acme/")
    per_day = chart_data(page, "events-per-day")
    assert len(per_day["labels"]) >= 30 and per_day["labels"][0] < per_day["labels"][-1]
    assert all(isinstance(v, int) for v in per_day["datasets"][0]) and sum(per_day["datasets"][0]) > 0
    stages = chart_data(page, "stage-funnel")
    assert stages["labels"] == ["awareness", "interest", "consideration", "purchase", "loyalty"]
    assert "(exclusive)" in page.inner_text("#overview-period")
    assert int(page.inner_text("#n-contacts").replace(",", "")) == 400


def test_build_a_funnel_with_the_pickers_matches_the_api(page, live_server, admin_login, world, api):
    login(page, live_server, *admin_login)
    page.goto(f"{live_server.url}/dashboard/acme/funnels/")
    page.fill("#id_steps", "")
    for step in ("Page Viewed", "Product Added", "stage:purchase"):
        page.select_option("#step-pick", step)
        page.click("#step-add")
    assert page.input_value("#id_steps") == "Page Viewed,Product Added,stage:purchase"
    page.fill("#id_window", "7d")
    page.click("#explorer button[type=submit]")
    page.wait_for_selector("#funnel-steps")
    shown = [int(c.replace(",", "")) for c in page.eval_on_selector_all(
        "#funnel-steps tbody tr td.count", "cells => cells.map(c => c.innerText)")]
    expected = api.post("/api/v1/funnels/query", json.dumps(
        {"steps": ["Page Viewed", "Product Added", "stage:purchase"], "window": "7d"}),
        content_type="application/json").json()
    assert shown == [s["count"] for s in expected["steps"]] and shown[0] > shown[2] > 0
    assert chart_data(page, "funnel-bars")["datasets"][0] == shown
    assert "all data" in page.inner_text("#funnel-period")
    download = page.request.get(page.url.split("?")[0] + page.get_attribute("#funnel-csv", "href"))
    rows = list(csv.DictReader(io.StringIO(download.text())))
    assert [int(r["count"]) for r in rows if not r["breakdown"]] == shown
    page.click("#funnel-steps tbody tr:nth-child(3) a")  # who dropped off before step 3
    page.wait_for_selector("#dropped-contacts")
    assert page.locator("#dropped-contacts tbody tr").count() == min(50, shown[1] - shown[2])


def test_start_a_training_and_watch_its_status_change(celery_worker_process, page, live_server, admin_login,
                                                      synthetic_workspace, settings):  # noqa: F811
    settings.PREDICTION_TRAIN_DEFAULTS = TINY  # a model that trains in seconds
    login(page, live_server, *admin_login)
    page.goto(f"{live_server.url}/dashboard/acme/models/")
    page.select_option("select[name=target]", "purchase")
    page.click("#train-form button[type=submit]")
    page.wait_for_selector("#status")
    seen = [page.inner_text("#status")]
    for _ in range(1200):  # up to 4 minutes on a busy machine; the page polls and reloads by itself
        status = page.inner_text("#status")
        if status != seen[-1]:
            seen.append(status)
        if status in ("succeeded", "failed"):
            break
        page.wait_for_timeout(200)
    assert seen[0] in ("queued", "running") and seen[-1] == "succeeded", (seen, page.inner_text("main")[:500])
    assert page.locator("#metrics tbody tr").count() >= 2 and "What these figures mean" in page.inner_text("main")
    assert "train_positives" not in page.inner_text("main")
    assert len(chart_data(page, "roc-plot")["datasets"][0]) >= 2


def test_find_a_contact_and_see_its_factors(page, live_server, admin_login, world):
    contact = world["contact"]
    login(page, live_server, *admin_login)
    page.goto(f"{live_server.url}/dashboard/acme/")
    page.click("nav.workspace-nav >> text=Contacts")
    page.fill("#id_q", contact.external_id)
    page.click("#contact-search button[type=submit]")
    page.click(f"#contacts >> text={contact.external_id}")
    assert page.inner_text("#score-purchase .probability") == "0.730"
    waterfall = chart_data(page, "factors-purchase")
    assert waterfall["labels"] == [f["text"] for f in FACTORS]
    assert waterfall["datasets"][0] == [[0, 0.31], [0.31, 0.19], [0.19, 0.24]]
    assert page.locator("#timeline tbody tr").count() >= 1
    page.goto(f"{live_server.url}/dashboard/acme/models/{world['version'].pk}/")
    scores = list(csv.DictReader(io.StringIO(page.request.get(
        live_server.url + page.get_attribute("#scores-csv", "href")).text())))
    assert [(r["contact_id"], r["probability"]) for r in scores] == [(contact.external_id, "0.730000")]


def test_tenancy_and_a_viewer_sees_no_controls(page, live_server, world, django_user_model):
    user = django_user_model.objects.create_user("vic", password="pw-123456")
    Membership.objects.create(workspace=world["workspace"], user=user, role="viewer")
    login(page, live_server, "vic", "pw-123456")
    own = _pages("acme", world["version"], world["contact"].external_id)
    for name, url in own.items():
        assert page.goto(live_server.url + url).status == 200, name
        # a form that posts is a change (search, run and switch forms are GETs that change nothing)
        controls = page.evaluate("""() => [...document.querySelectorAll('form')]
            .filter(f => f.method === 'post' && f.getAttribute('action') !== '/accounts/logout/')
            .map(f => f.outerHTML.slice(0, 100))""")
        assert controls == [], f"{name}: {controls}"
    other_version = ModelVersion.objects.create(workspace=world["other"], target="purchase", config={})
    foreign = _pages("globex", other_version, "c1")
    foreign["Model of globex under acme"] = f"/dashboard/acme/models/{other_version.pk}/"
    for name, url in foreign.items():
        assert page.goto(live_server.url + url).status == 404, f"{name} {url}"
    assert "needs the admin role" in (page.goto(f"{live_server.url}/dashboard/acme/settings/") and page.inner_text("main"))
