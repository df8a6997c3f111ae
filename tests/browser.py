"""Headless Chromium (Debian's package) driven by Playwright, for the web UI tests.

Playwright's own browser download cannot run here, so the tests launch /usr/bin/chromium. When it is
missing the tests skip, unless REQUIRE_BROWSER=1 (CI), which makes a missing browser a failure.
"""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    """Debian's chromium binary, if installed."""
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium browser for the whole session."""
    path = chromium_path()
    if path is None:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (apt-get install chromium) and REQUIRE_BROWSER=1")
        pytest.skip("chromium is not installed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # playwright's loop vs the ORM in tests
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh browser page (its own cookies)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def admin_login(db, django_user_model):
    """A superuser; returns (username, password)."""
    django_user_model.objects.create_superuser("boss", "boss@example.com", "s3cret-pass")
    return "boss", "s3cret-pass"


def login(page, live_server, username: str, password: str) -> None:
    """Log in through the login form, as a person would."""
    page.goto(f"{live_server.url}/accounts/login/?next=/dashboard/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/dashboard/")


def chart_data(page, canvas_id: str) -> dict:
    """What Chart.js drew on a canvas: its labels and each dataset's data (fails if nothing was drawn)."""
    page.wait_for_function(f"window.Chart && Chart.getChart(document.getElementById('{canvas_id}'))")
    return page.evaluate(
        f"""() => {{ const c = Chart.getChart(document.getElementById('{canvas_id}'));
        return {{labels: c.data.labels || [], datasets: c.data.datasets.map(d => d.data),
                 type: c.config.type, value_labels: (c.options.plugins.valueLabels || {{}}).labels || []}}; }}""")
