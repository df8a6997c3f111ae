"""The Django path (ingestion -> column cache -> masks -> engine) gives the counts of references
computed straight from the generated event list: the brute-force enumerator of the engine tests
(every order and option) and the DuckDB SQL of the benchmark (unique sequential)."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from funnel_site.funnels.engine import EventMatcher, Exclusion
from funnel_site.funnels.engine.duckdb_reference import duckdb_sequential_counts
from funnel_site.funnels.selectors import funnel_query
from funnel_site.funnels.spec import funnel_spec_parse
from tests.funnels.engine.bruteforce import brute_contact, contact_logs
from tests.funnels.engine.helpers import columns_for

from .helpers import T0, counts, ingest

pytestmark = pytest.mark.django_db

NAMES = ["A", "B", "C", "D", "X"]


def generated_events(seed: int, contacts: int, per_contact: int) -> list[tuple]:
    """Random small logs on a coarse time grid, so equal timestamps and window edges occur."""
    rng = np.random.default_rng(seed)
    events = []
    for c in range(contacts):
        for _ in range(int(rng.integers(1, per_contact + 1))):
            events.append((f"c{c:03d}", int(rng.integers(0, 12)) * 600, NAMES[int(rng.integers(0, len(NAMES)))]))
    order = rng.permutation(len(events))  # stored out of time order
    return [events[i] for i in order]


def brute_counts(query: dict, events: list[tuple]) -> list[int]:
    """Per-step counts by the brute-force enumerator over the raw list (no database)."""
    definition = funnel_spec_parse(query).definition
    as_ints = [(int(c[1:]), t, name) for c, t, name in events]
    logs = contact_logs(columns_for(definition, as_ints), definition)
    outcomes = [brute_contact(definition, log) for log in logs.values()]
    n = definition.step_count
    if definition.count == "totals":
        reaches = [reach for outcome in outcomes for reach in outcome.attempts]
    else:
        reaches = [outcome.furthest for outcome in outcomes]
    return [sum(1 for reach in reaches if reach >= k) for k in range(1, n + 1)]


QUERIES = [
    {"steps": ["A", "B", "C"], "window": "1h"},
    {"steps": ["A", "B", "C"], "window": "30m", "order": "strict"},
    {"steps": ["A", "B", "C"], "window": "1h", "order": "any"},
    {"steps": ["A", "B", "C"], "window": "1h", "exclude": ["X:1-3"]},
    {"steps": ["A", "B", "C"], "window": "2h", "exclude": ["X:2-3"], "count": "totals"},
    {"steps": ["A", "B|C", "D"], "window": "1h"},
    {"steps": ["A", "B"], "window": "10m", "count": "totals"},
]


@pytest.fixture
def generated(workspace_with_key):
    events = generated_events(seed=11, contacts=60, per_contact=7)
    ingest(workspace_with_key[0], events)
    return workspace_with_key[0], events


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q.get('order', 'seq')}-{q.get('count', 'u')}-{len(q['steps'])}")
def test_django_path_equals_brute_force(generated, query):
    workspace, events = generated
    payload = funnel_query(workspace=workspace, spec=funnel_spec_parse(query), use_cache=False).payload
    assert counts(payload) == brute_counts(query, events)


def test_django_path_equals_duckdb_on_a_larger_log(workspace_with_key):
    workspace = workspace_with_key[0]
    events = generated_events(seed=3, contacts=400, per_contact=12)
    ingest(workspace, events)
    frame = pd.DataFrame({"contact": [c for c, _, _ in events],
                          "ts": [(T0 + t) * 1_000_000 for _, t, _ in events],
                          "name": [n for _, _, n in events]})
    connection = duckdb.connect()
    connection.register("events", frame)
    for steps, window in ((["A", "B", "C", "D"], 3600), (["D", "A"], 1800), (["A", "B", "C"], 86400)):
        payload = funnel_query(workspace=workspace, spec=funnel_spec_parse({"steps": steps, "window": window}),
                               use_cache=False).payload
        assert counts(payload) == duckdb_sequential_counts(connection, "events", [[s] for s in steps], window)


def test_exclusion_helper_types_are_the_engines():
    # the spec builds the engine's own dataclasses (no parallel definitions to drift)
    spec = funnel_spec_parse({"steps": ["A", "B"], "exclude": ["X:1-2"]})
    assert spec.definition.exclusions == (Exclusion(matcher=EventMatcher(events=("X",)), from_step=1, to_step=2),)
