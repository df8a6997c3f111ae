"""Evaluation against oracles written from the definition (README "Segments"), on generated data.

The oracles read only the generated Python data (events, traits, emails, scores), never the
database or the evaluator's helpers.
"""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest

from predictions.segments.definition import definition_parse
from predictions.segments.evaluate import definition_evaluate
from tests.predictions.segments.conftest import AS_OF, NAMES, PLANS

pytestmark = pytest.mark.django_db
STAGE_ORDER = ["awareness", "interest", "consideration", "purchase", "loyalty"]
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


# --- oracle -------------------------------------------------------------------------------------
def stages_of(events):
    """Stage of each event: the default map, a purchase after the contact's first one is loyalty."""
    out, purchased = [], False
    for moment, name in events:
        stage = NAMES[name]
        if stage == "purchase":
            stage = "loyalty" if purchased else "purchase"
            purchased = True
        out.append((moment, stage))
    return out


def seconds(text):
    return int(text[:-1]) * UNITS[text[-1]]


def json_equal(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def trait_holds(op, have, value) -> bool:
    number = isinstance(have, int | float) and not isinstance(have, bool)
    if op == "exists":
        return True
    if op == "eq":
        return json_equal(have, value)
    if op == "in":
        return any(json_equal(have, v) for v in value)
    if op == "contains":
        return isinstance(have, str) and value.lower() in have.lower()
    if not number:  # numeric operators match JSON numbers only
        return False
    return {"gt": have > value, "gte": have >= value, "lt": have < value, "lte": have <= value}[op]


def oracle(g, node) -> set[str]:
    everyone = set(g.contact_ids)
    key, spec = next(iter(node.items()))
    if key == "and":
        return set.intersection(*(oracle(g, child) for child in spec))
    if key == "or":
        return set.union(*(oracle(g, child) for child in spec))
    if key == "not":
        return everyone - oracle(g, spec)
    if key == "score":
        scores = g.scores[spec["target"]]
        if "min_probability" in spec:
            return {c for c, p in scores.items() if p >= spec["min_probability"]}
        ranked = sorted(scores, key=lambda c: (-scores[c], g.contact_ids[c]))
        return set(ranked[: math.ceil(spec["top_percent"] * len(ranked) / 100)])
    if key == "stage":
        members = set()
        wanted = STAGE_ORDER.index(spec["reached"])
        for contact, events in g.events.items():
            staged = [(t, STAGE_ORDER.index(s)) for t, s in stages_of(events) if t <= AS_OF]
            arrivals = [t for t, s in staged if s == wanted]
            if not arrivals:
                continue
            latest = max(arrivals)
            if "not_next_within" in spec:
                if latest > AS_OF - timedelta(seconds=seconds(spec["not_next_within"])):
                    continue
                if any(s > wanted and t >= latest for t, s in staged):
                    continue
            members.add(contact)
        return members
    if key == "trait":
        op, value, name = spec["op"], spec.get("value"), spec["key"]
        out = set()
        for contact, traits in g.traits.items():
            if name not in traits:
                continue
            have = traits[name]
            ok = trait_holds(op, have, value)
            if ok:
                out.add(contact)
        return out
    if key == "email":
        op, value = spec["op"], (spec.get("value") or "").lower()
        test = {"exists": lambda e: e != "", "eq": lambda e: e == value, "ends_with": lambda e: e.endswith(value),
                "contains": lambda e: value in e}[op]
        return {c for c, e in g.emails.items() if test(e.lower())}
    raise AssertionError(key)


# --- random definitions -----------------------------------------------------------------------------
def random_leaf(rng):
    kind = rng.choice(["score", "score", "stage", "stage", "trait", "trait", "email"])
    if kind == "score":
        spec = {"target": rng.choice(["purchase", "churn"])}
        if rng.random() < 0.5:
            spec["top_percent"] = rng.choice([1, 10, 25, 33.3, 50, 100])
        else:
            spec["min_probability"] = rng.choice([0, 0.25, 0.5, 0.6, 0.9, 1])
        return {"score": spec}
    if kind == "stage":
        spec = {"reached": rng.choice(STAGE_ORDER[:4] + ["loyalty"])}
        if spec["reached"] != "loyalty" and rng.random() < 0.7:
            spec["not_next_within"] = rng.choice(["1h", "3d", "2w", "30d"])
        return {"stage": spec}
    if kind == "trait":
        which = rng.choice(["plan", "age", "vip"])
        if which == "plan":
            op = rng.choice(["eq", "in", "contains", "exists"])
            value = {"eq": rng.choice(PLANS), "in": rng.sample(PLANS, 2), "contains": "pr", "exists": None}[op]
        elif which == "age":
            op = rng.choice(["gt", "gte", "lt", "lte", "eq", "exists"])
            value = None if op == "exists" else rng.choice([30, 40.5, 18, 70])
        else:
            op = rng.choice(["eq", "exists"])
            value = None if op == "exists" else rng.random() < 0.5
        spec = {"key": which, "op": op}
        if value is not None:
            spec["value"] = value
        return {"trait": spec}
    op = rng.choice(["eq", "ends_with", "contains", "exists"])
    spec = {"op": op}
    if op != "exists":
        spec["value"] = {"eq": "C001@shop.io", "ends_with": "@example.com", "contains": "SHOP"}[op]
    return {"email": spec}


def random_definition(rng, depth=0):
    roll = rng.random()
    if depth >= 3 or roll < 0.4:
        return random_leaf(rng)
    if roll < 0.55:
        return {"not": random_definition(rng, depth + 1)}
    return {rng.choice(["and", "or"]): [random_definition(rng, depth + 1) for _ in range(rng.randint(1, 3))]}


def members(g, definition, **kwargs) -> set[str]:
    ids = definition_evaluate(workspace=g.workspace, definition=definition, as_of=AS_OF, **kwargs).contact_ids
    by_id = {v: k for k, v in g.contact_ids.items()}
    return {by_id[int(i)] for i in ids}


def test_each_leaf_kind_matches_the_oracle(generated):
    rng = random.Random(11)
    for _ in range(60):
        leaf = definition_parse(random_leaf(rng), workspace=generated.workspace)
        assert members(generated, leaf) == oracle(generated, leaf), leaf


def test_random_definitions_match_the_oracle(generated):
    rng = random.Random(5)
    non_trivial = 0
    for _ in range(60):
        definition = definition_parse(random_definition(rng), workspace=generated.workspace)
        expected = oracle(generated, definition)
        non_trivial += 0 < len(expected) < len(generated.contact_ids)
        assert members(generated, definition) == expected, definition
    assert non_trivial > 20  # the generator is not just producing everyone / no one


def test_restricted_to_some_contacts(generated):
    definition = {"or": [{"score": {"target": "purchase", "top_percent": 20}},
                         {"not": {"stage": {"reached": "consideration"}}}]}
    some = sorted(generated.contact_ids)[:15]
    got = members(generated, definition, contact_ids=[generated.contact_ids[c] for c in some])
    assert got == oracle(generated, definition) & set(some)


def test_top_percent_is_exact_with_ties(generated):
    scores = generated.scores["purchase"]
    got = members(generated, {"score": {"target": "purchase", "top_percent": 10}})
    assert len(got) == math.ceil(len(scores) / 10)
    # every member scores at least as high as every non-member
    assert min(scores[c] for c in got) >= max(p for c, p in scores.items() if c not in got)


def test_no_active_model_matches_nobody_and_says_how_to_get_one(generated):
    from predictions.models import ModelVersion

    ModelVersion.objects.filter(workspace=generated.workspace, target="churn").update(is_active=False)
    result = definition_evaluate(workspace=generated.workspace, as_of=AS_OF,
                                 definition={"score": {"target": "churn", "min_probability": 0.1}})
    assert result.contact_ids.size == 0
    assert "manage.py train" in result.warnings[0] and "churn" in result.warnings[0]


def test_saved_funnel_step(workspace_with_key):
    """Reached step 2 of a saved funnel; with not_next_within: furthest step is 2, reached long enough ago."""
    from funnel_site.events.services import events_ingest
    from funnel_site.funnels.models import SavedFunnel

    ws = workspace_with_key[0]
    day = timedelta(days=1)
    plan = {  # contact -> (event, days before AS_OF)
        "stuck-long": [("Product Viewed", 10), ("Product Added", 9)],
        "stuck-recent": [("Product Viewed", 2), ("Product Added", 1)],
        "bought": [("Product Viewed", 10), ("Product Added", 9), ("Order Completed", 8)],
        "viewer": [("Product Viewed", 10)],
        "out-of-window": [("Product Viewed", 30), ("Product Added", 20)],
    }
    items = [{"contact_id": c, "event": e, "timestamp": (AS_OF - d * day).isoformat(), "message_id": f"{c}{k}"}
             for c, events in plan.items() for k, (e, d) in enumerate(events)]
    assert events_ingest(workspace=ws, items=list(enumerate(items))).rejected == 0
    funnel = SavedFunnel.objects.create(workspace=ws, name="checkout", definition={
        "steps": [{"events": ["Product Viewed"]}, {"events": ["Product Added"]}, {"events": ["Order Completed"]}],
        "window": "7d"})
    ids = {c.external_id: c.id for c in ws.contacts.all()}
    by_id = {v: k for k, v in ids.items()}

    def run(spec):
        definition = definition_parse({"funnel": {"id": funnel.id, **spec}}, workspace=ws)
        return {by_id[int(i)] for i in definition_evaluate(workspace=ws, definition=definition,
                                                           as_of=AS_OF).contact_ids}

    assert run({"step": 2}) == {"stuck-long", "stuck-recent", "bought"}
    assert run({"step": 1}) == set(plan)
    assert run({"step": 2, "not_next_within": "3d"}) == {"stuck-long"}
    assert run({"step": 2, "not_next_within": "1h"}) == {"stuck-long", "stuck-recent"}
