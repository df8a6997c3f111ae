"""Result caching keyed on the definition and the newest event, and the query time limit."""

from __future__ import annotations

import time

import numpy as np
import pytest
from django.db import connection

from funnel_site.events.models import StageMapping
from funnel_site.funnels.engine import EventColumns, FunnelTimeoutError, funnel_compute
from funnel_site.funnels.engine.parsing import funnel_definition_from_strings
from funnel_site.funnels.limits import QueryDeadline, database_time_limit
from funnel_site.funnels.selectors import funnel_query
from funnel_site.funnels.spec import funnel_spec_parse

from .helpers import counts, ingest

pytestmark = pytest.mark.django_db


def query(workspace, **options):
    return funnel_query(workspace=workspace, spec=funnel_spec_parse(options)).payload


def test_a_repeated_query_is_served_from_the_cache_until_a_new_event(workspace_with_key):
    workspace = workspace_with_key[0]
    ingest(workspace, [("a", 0, "pv"), ("a", 10, "cart"), ("b", 0, "pv")])
    first = query(workspace, steps=["pv", "cart"])
    assert counts(first) == [2, 1] and first["cached"] is False
    again = query(workspace, steps=["pv", "cart"], window="14d")  # the same definition, spelled otherwise
    assert counts(again) == [2, 1] and again["cached"] is True
    assert query(workspace, steps=["pv", "cart"], window="1d")["cached"] is False  # another definition
    ingest(workspace, [("b", 20, "cart")], start=10)
    fresh = query(workspace, steps=["pv", "cart"])
    assert counts(fresh) == [2, 2] and fresh["cached"] is False
    assert fresh["newest_event_id"] > first["newest_event_id"]


def test_a_changed_stage_map_is_a_new_cache_key(workspace_with_key):
    workspace = workspace_with_key[0]
    ingest(workspace, [("a", 0, "pv"), ("a", 10, "Wished")])
    assert counts(query(workspace, steps=["stage:interest", "stage:consideration"])) == [1, 0]
    StageMapping.objects.create(workspace=workspace, event_name="Wished", stage="consideration")
    assert counts(query(workspace, steps=["stage:interest", "stage:consideration"])) == [1, 1]


def test_deadline_checks_and_error_text():
    deadline = QueryDeadline(0.0)
    time.sleep(0.001)
    assert deadline.remaining() == 0
    with pytest.raises(FunnelTimeoutError, match="time limit of 0 s while testing"):
        deadline.check("testing")
    QueryDeadline(60).check("fine")


def test_the_engine_stops_at_its_deadline():
    """The engine addition: with a deadline, chunks of contacts check it before they run."""
    rng = np.random.default_rng(1)
    contact = np.repeat(np.arange(300, dtype=np.int64), 3)
    ts = np.tile(np.arange(3, dtype=np.int64), 300) * 1_000_000
    columns = EventColumns(contact=contact, ts=ts, step_mask=rng.choice([1, 2], size=contact.size).astype(np.uint32))
    definition = funnel_definition_from_strings(steps=["a", "b"])
    with pytest.raises(FunnelTimeoutError):
        funnel_compute(definition=definition, columns=columns, deadline=time.monotonic() - 1)
    done = funnel_compute(definition=definition, columns=columns, deadline=time.monotonic() + 60)
    assert done.steps[0].count == funnel_compute(definition=definition, columns=columns).steps[0].count


def test_the_database_stops_a_query_past_the_deadline():
    """A slow statement is cancelled by the database and becomes FunnelTimeoutError."""
    slow = "SELECT pg_sleep(2)" if connection.vendor == "postgresql" else (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n")
    started = time.monotonic()
    with (pytest.raises(FunnelTimeoutError), database_time_limit(QueryDeadline(0.3), "sleeping"),
          connection.cursor() as cursor):
        cursor.execute(slow)
    assert time.monotonic() - started < 1.9
    with connection.cursor() as cursor:  # the connection is usable afterwards
        cursor.execute("SELECT 1")
        assert cursor.fetchone()[0] == 1


def test_property_values_are_cached_and_refreshed_by_new_events(workspace_with_key):
    from funnel_site.funnels.properties import property_cache

    workspace = workspace_with_key[0]
    ingest(workspace, [("a", 0, "pv", {"properties": {"plan": "pro"}}), ("a", 10, "buy")])
    steps = ["pv", "buy"]

    def table():
        payload = query(workspace, steps=steps, breakdown="property:plan")
        return {item["value"]: [s["count"] for s in item["steps"]] for item in payload["breakdown"]}

    assert table() == {"pro": [1, 1]}
    assert (workspace.id, "plan") in property_cache._keys
    ingest(workspace, [("b", 0, "pv", {"properties": {"plan": "free"}}), ("c", 0, "pv")], start=10)
    assert table() == {"pro": [1, 1], "free": [1, 0], None: [1, 0]}
