"""One definition of a stage: the API, the overview page and the read model (funnels, models) agree,
on random logs with late, tied and repeated purchases sent in random batch orders.

The oracle is DESIGN section 5 in words: an event's stage is its name's; a purchase that follows an
earlier purchase of the same contact is loyalty. The tie rule (ours, stated in stages.py): of two
purchases at the same timestamp, the one stored first (lower event id) is the earlier.
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funnel_site.events.columns import column_cache, workspace_columns
from funnel_site.events.models import Event
from funnel_site.events.services import api_key_create, events_ingest, workspace_create
from funnel_site.events.stages import StageResolver, stage_name

pytestmark = pytest.mark.django_db
NAMES = ["Order Completed", "buy", "Product Viewed", "Product Reviewed", "Product Added", "Unmapped Thing"]
_slugs = itertools.count()

event = st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(NAMES), st.integers(0, 2))  # few times: ties
log_strategy = st.lists(event, min_size=1, max_size=25)


def _oracle(rows: list[tuple[int, int, float, str]]) -> dict[int, str]:
    """(id, contact, ts, name) -> stage, from the definition alone."""
    resolver = StageResolver()
    out = {}
    for event_id, contact, ts, name in rows:
        stage = resolver.stage_of(name)
        if stage == "purchase" and any(
            other_contact == contact and resolver.stage_of(other_name) == "purchase"
            and (other_ts, other_id) < (ts, event_id)
            for other_id, other_contact, other_ts, other_name in rows
        ):
            stage = "loyalty"
        out[event_id] = stage
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(log=log_strategy, cuts=st.lists(st.integers(0, 25), max_size=4), order=st.randoms(use_true_random=False),
       repeats=st.lists(st.integers(0, 24), max_size=3))
def test_api_overview_and_read_model_show_the_one_derived_stage(client, django_user_model, log, cuts, order,
                                                                repeats):
    workspace, _ = workspace_create(slug=f"s{next(_slugs)}")
    _, key = api_key_create(workspace=workspace)
    items = [{"contact_id": c, "event": n, "timestamp": 1_767_225_600 + 60 * t, "message_id": f"m{i}"}
             for i, (c, n, t) in enumerate(log)]
    items += [items[r] for r in repeats if r < len(items)]  # a retried send: stored once
    bounds = sorted({0, len(items), *(c for c in cuts if c < len(items))})
    batches = [items[a:b] for a, b in itertools.pairwise(bounds)]
    order.shuffle(batches)  # late purchases: a later batch may hold a contact's earliest purchase
    for batch in batches:
        events_ingest(workspace=workspace, items=list(enumerate(batch)))
        workspace_columns(workspace.id)  # read in between: the read model refreshes incrementally

    rows = list(Event.objects.filter(workspace=workspace).values_list("id", "contact_id", "timestamp", "name"))
    assert len(rows) == len(log)
    expected = _oracle([(i, c, ts.timestamp(), n) for i, c, ts, n in rows])

    shown: dict[int, str] = {}
    url = "/api/v1/events?limit=10"
    while url:
        resp = client.get(url, HTTP_AUTHORIZATION=f"Bearer {key}")
        assert resp.status_code == 200, resp.content
        shown.update({e["id"]: e["stage"] for e in resp.json()["results"]})
        url = resp.json()["next"]
    assert shown == expected

    cols = workspace_columns(workspace.id)
    derived = cols.stages(StageResolver.for_workspace(workspace.id))
    model = {int(i): stage_name(int(s)) for i, s in zip(cols.event_id, derived, strict=True)}
    assert model == expected

    user = django_user_model.objects.create_superuser(f"u{workspace.id}", password="pw")
    client.force_login(user)
    page = client.get(f"/dashboard/{workspace.slug}/")
    client.logout()
    counts = Counter(expected.values())
    assert dict(page.context["stages"]) == {**{s: counts.get(s, 0) for s in
                                               ("awareness", "interest", "consideration", "purchase", "loyalty")},
                                            "(none)": counts.get("", 0)}
    column_cache.clear()
