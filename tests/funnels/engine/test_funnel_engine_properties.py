"""Property test: the compiled engine agrees with the brute-force enumerator on random small logs.

Timestamps come from a small, drawn range, so most logs have equal timestamps (often several
events at one instant, and events matching several steps), for every order and count mode.
"""

from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funnel_site.funnels.engine import (
    Breakdown,
    EventColumns,
    EventMatcher,
    Exclusion,
    FunnelDefinition,
    FunnelStep,
    funnel_evaluate,
)

from .bruteforce import brute_contact, chain_is_clean_attempt, contact_logs

SECOND = 1_000_000


@st.composite
def scenarios(draw, order: str | None = None, lean: bool = False):
    """`lean`: only what the lean kernel takes (sequential, no exclusion, no hold, unique)."""
    order = order or draw(st.sampled_from(["sequential", "strict", "any"]))
    n_steps = draw(st.integers(2, 4))
    optional = [False] * n_steps
    if order != "any" and n_steps > 2:
        optional = [False] + [draw(st.booleans()) for _ in range(n_steps - 2)] + [False]
    exclusions = []
    for j in range(0 if lean else draw(st.integers(0, 2))):
        if order == "any":
            a, b = 1, n_steps
        else:
            a = draw(st.integers(1, n_steps - 1))
            b = draw(st.integers(a + 1, n_steps))
        exclusions.append(Exclusion(matcher=EventMatcher(events=(f"x{j}",)), from_step=a, to_step=b))
    hold = not lean and draw(st.booleans())
    attribution = draw(st.sampled_from(["first_touch", "last_touch"]))
    definition = FunnelDefinition(
        steps=tuple(
            FunnelStep(matcher=EventMatcher(events=(f"s{k}",)), optional=optional[k]) for k in range(n_steps)
        ),
        window_seconds=draw(st.integers(1, 6)),
        order=order,
        exclusions=tuple(exclusions),
        count="unique" if lean else draw(st.sampled_from(["unique", "totals"])),
        hold_constant="product" if hold else None,
        breakdown=Breakdown(field="campaign", attribution=attribution),
    )
    mask_choices = [1 << k for k in range(n_steps)] * 3 + [
        0,
        (1 << n_steps) - 1,
        0b11,
        0b110 & ((1 << n_steps) - 1),
        0b101,
        (1 | (1 << (n_steps - 1))),  # the same event name as the first and the last step
    ]
    rows = []
    last_second = draw(st.integers(1, 9))  # small ranges: many equal timestamps
    for contact in range(draw(st.integers(1, 4))):
        for _ in range(draw(st.integers(0, 7))):
            excl = (
                draw(st.integers(0, (1 << len(exclusions)) - 1))
                if exclusions and draw(st.integers(0, 3)) == 0
                else 0
            )
            rows.append(
                (
                    contact * 7 + 3,
                    draw(st.integers(0, last_second)) * SECOND,
                    draw(st.sampled_from(mask_choices)),
                    excl,
                    draw(st.integers(-1, 1)),
                    draw(st.integers(-1, 2)),
                )
            )
    rows.sort(key=lambda r: (r[0], r[1]))  # stable: the draw order plays the event id
    array = np.array(rows, dtype=np.int64).reshape(-1, 6)
    columns = EventColumns(
        contact=array[:, 0],
        ts=array[:, 1],
        step_mask=array[:, 2].astype(np.uint32),
        exclusion_mask=array[:, 3].astype(np.uint32),
        hold_value=array[:, 4],
        breakdown_value=array[:, 5],
    )
    return definition, columns


def _check(definition: FunnelDefinition, columns: EventColumns) -> None:
    outcomes = funnel_evaluate(definition=definition, columns=columns)
    logs = contact_logs(columns, definition)
    assert sorted(logs) == list(outcomes.contact_ids)
    for c, contact in enumerate(outcomes.contact_ids):
        log = logs[int(contact)]
        expected = brute_contact(definition, log)
        furthest = int(outcomes.furthest[c])
        assert furthest == expected.furthest, (contact, log)
        for k, reached in expected.optional_reached.items():
            assert bool(outcomes.optional_reached[k][c]) == reached, (contact, k, log)
        if furthest:
            assert chain_is_clean_attempt(definition, log, outcomes.chain[c], furthest), (contact, log)
        assert int(outcomes.touch[c]) == expected.touch, (contact, log)
        if definition.count == "totals":
            mine = outcomes.attempt_contact == c
            assert list(outcomes.attempt_furthest[mine]) == expected.attempts, (contact, log)
            for chain, reach in zip(
                outcomes.attempt_chain[mine], outcomes.attempt_furthest[mine], strict=True
            ):
                assert chain_is_clean_attempt(definition, log, chain, int(reach)), (contact, log)


COMMON = settings(
    max_examples=int(os.environ.get("FUNNEL_PROPERTY_EXAMPLES", "250")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@COMMON
@given(scenarios("sequential"))
def test_sequential_matches_brute_force(scenario):
    _check(*scenario)


@COMMON
@given(scenarios("strict"))
def test_strict_matches_brute_force(scenario):
    _check(*scenario)


@COMMON
@given(scenarios("any"))
def test_any_order_matches_brute_force(scenario):
    _check(*scenario)


@COMMON
@given(scenarios("sequential", lean=True))
def test_lean_sequential_matches_brute_force(scenario):
    _check(*scenario)
