"""Fixtures of the funnel tests (Django side): a fresh column cache and result cache per test.

Test databases roll back, so ids (SQLite) and workspaces repeat between tests; the per-process
caches must not carry one test's events into the next.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_funnel_caches():
    from django.core.cache import cache

    from funnel_site.events.columns import column_cache
    from funnel_site.funnels.properties import property_cache

    for each in (column_cache, property_cache, cache):
        each.clear()
    yield
    for each in (column_cache, property_cache, cache):
        each.clear()
