"""One test per funnel rule of DESIGN section 5 and the engine README."""

from __future__ import annotations

import numpy as np
import pytest

from funnel_site.funnels.engine import (
    EventColumns,
    FunnelInputError,
    funnel_compute,
    funnel_definition_from_strings,
    funnel_evaluate,
)

from .helpers import DAY, columns_for, counts, run


def funnel(*steps: str, **options):
    return funnel_definition_from_strings(steps=list(steps), **options)


def test_window_edge_is_inclusive():
    definition = funnel("signup", "pay", window="10s")
    assert counts(definition, [(1, 0, "signup"), (1, 10, "pay")]) == [1, 1]
    assert counts(definition, [(1, 0, "signup"), (1, 11, "pay")]) == [1, 0]


def test_default_window_is_fourteen_days():
    definition = funnel("signup", "pay")
    assert definition.window_seconds == 14 * DAY
    assert counts(
        definition, [(1, 0, "signup"), (1, 14 * DAY, "pay"), (2, 0, "signup"), (2, 14 * DAY + 1, "pay")]
    ) == [2, 1]


def test_equal_timestamps_are_tried_in_step_order():
    # `pay` has the smaller event id, yet at the same instant it may follow `signup`.
    for order in ("sequential", "strict"):
        definition = funnel("signup", "pay", order=order)
        assert counts(definition, [(1, 5, "pay"), (1, 5, "signup")]) == [1, 1]


def test_one_event_advances_one_step():
    definition = funnel("view", "view")
    assert counts(definition, [(1, 0, "view")]) == [1, 0]
    assert counts(definition, [(1, 0, "view"), (1, 1, "view")]) == [1, 1]


def test_strict_is_broken_by_an_intervening_event():
    events = [(1, 0, "signup"), (1, 1, "browse"), (1, 2, "pay")]
    assert counts(funnel("signup", "pay", order="sequential"), events) == [1, 1]
    assert counts(funnel("signup", "pay", order="strict"), events) == [1, 0]
    # a later clean pair still converts
    assert counts(funnel("signup", "pay", order="strict"), events + [(1, 3, "signup"), (1, 4, "pay")]) == [
        1,
        1,
    ]


def test_any_order_accepts_steps_in_any_order():
    events = [(1, 0, "pay"), (1, 1, "signup")]
    assert counts(funnel("signup", "pay", order="sequential"), events) == [1, 0]
    assert counts(funnel("signup", "pay", order="any"), events) == [1, 1]
    assert counts(funnel("signup", "pay", order="any", window="1s"), [(1, 0, "pay"), (1, 2, "signup")]) == [
        1,
        0,
    ]


def test_exclusion_voids_the_attempt_three_users():
    definition = funnel("signup", "pay", exclude=["refund:1-2"])
    events = [
        (1, 0, "signup"),
        (1, 10, "pay"),
        (2, 0, "signup"),
        (2, 5, "pay"),
        (3, 0, "signup"),
        (3, 3, "refund"),
        (3, 6, "pay"),
    ]
    assert counts(definition, events) == [2, 2]


def test_exclusion_falls_back_to_the_best_clean_attempt():
    definition = funnel("signup", "pay", exclude=["refund:1-2"])
    events = [(1, 0, "signup"), (1, 1, "refund"), (1, 2, "signup"), (1, 3, "pay")]
    assert counts(definition, events) == [1, 1]
    # an exclusion after the conversion does not void it
    assert counts(definition, [(1, 0, "signup"), (1, 1, "pay"), (1, 2, "refund")]) == [1, 1]
    # outside the window of the partial attempt it does not void it either
    definition = funnel("signup", "pay", window="10s", exclude=["refund:1-2"])
    assert counts(definition, [(1, 0, "signup"), (1, 11, "refund")]) == [1, 0]


def test_exclusion_only_between_its_steps():
    definition = funnel("view", "cart", "buy", exclude=["coupon:2-3"])
    assert counts(definition, [(1, 0, "view"), (1, 1, "coupon"), (1, 2, "cart"), (1, 3, "buy")]) == [1, 1, 1]
    assert counts(definition, [(1, 0, "view"), (1, 1, "cart"), (1, 2, "coupon"), (1, 3, "buy")]) == [1, 0, 0]
    # cart again after the coupon starts a clean attempt at step 2
    events = [(1, 0, "view"), (1, 1, "cart"), (1, 2, "coupon"), (1, 3, "cart"), (1, 4, "buy")]
    assert counts(definition, events) == [1, 1, 1]


def test_totals_count_attempts_unique_count_contacts():
    events = [
        (1, 0, "signup"),
        (1, 1, "pay"),
        (1, 2, "signup"),
        (1, 3, "pay"),
        (1, 4, "signup"),
        (2, 0, "signup"),
    ]
    assert counts(funnel("signup", "pay"), events) == [2, 1]
    assert counts(funnel("signup", "pay", count="totals"), events) == [4, 2]


def test_hold_constant_requires_the_same_value_on_every_step():
    definition = funnel("view", "cart", "buy", hold_constant="product_id")
    mixed = [
        (1, 0, "view", {"product_id": "a"}),
        (1, 1, "cart", {"product_id": "b"}),
        (1, 2, "buy", {"product_id": "b"}),
    ]
    same = [
        (2, 0, "view", {"product_id": "a"}),
        (2, 1, "cart", {"product_id": "b"}),
        (2, 2, "view", {"product_id": "b"}),
        (2, 3, "cart", {"product_id": "a"}),
        (2, 4, "buy", {"product_id": "a"}),
    ]
    assert counts(definition, mixed, hold_key="product_id") == [1, 0, 0]
    assert counts(definition, same, hold_key="product_id") == [1, 1, 1]
    assert counts(funnel("view", "cart", "buy"), mixed) == [1, 1, 1]


def test_optional_steps_may_be_skipped_and_are_counted_when_done():
    definition = funnel("view", "coupon", "buy", optional_steps=[2])
    events = [(1, 0, "view"), (1, 1, "buy"), (2, 0, "view"), (2, 1, "coupon"), (2, 2, "buy"), (3, 0, "view")]
    result = run(definition, events)
    assert [step.count for step in result.steps] == [3, 1, 2]
    assert result.steps[1].optional
    # rates skip the optional step: buy converts from view
    assert result.steps[2].conversion_from_previous == pytest.approx(2 / 3)
    assert sorted(result.dropped_contacts[2]) == [3]


def test_breakdown_first_touch_and_last_touch():
    events = [
        (1, 0, "signup", {"campaign": "email"}),
        (1, 1, "signup", {"campaign": "ads"}),
        (1, 2, "pay", {"campaign": "ads"}),
        (2, 0, "signup", {"campaign": "ads"}),
        (3, 0, "signup"),
    ]
    first = run(funnel("signup", "pay", breakdown="campaign"), events, breakdown_key="campaign")
    table = {item.value: [step.count for step in item.steps] for item in first.breakdown}
    assert table == {"email": [1, 1], "ads": [1, 0], None: [1, 0]}
    last = run(
        funnel("signup", "pay", breakdown="campaign", attribution="last_touch"),
        events,
        breakdown_key="campaign",
    )
    table = {item.value: [step.count for step in item.steps] for item in last.breakdown}
    assert table == {"ads": [2, 1], None: [1, 0]}


def test_time_to_convert_statistics_and_histogram():
    definition = funnel("signup", "pay")
    events = [(c, 0, "signup") for c in range(1, 9)] + [(c, 10 * c, "pay") for c in range(1, 9)]
    result = run(definition, events)
    pay = result.steps[1]
    assert pay.median_seconds_from_previous == pytest.approx(45.0)
    assert pay.mean_seconds_from_previous == pytest.approx(45.0)
    assert pay.p90_seconds_from_previous == pytest.approx(73.0)
    assert len(result.histogram.counts) == 2  # ceil(cbrt(8))
    assert sum(result.histogram.counts) == 8
    assert result.histogram.bin_edges_seconds[0] == 10 and result.histogram.bin_edges_seconds[-1] == 80
    fixed = funnel_definition_from_strings(steps=["signup", "pay"])
    fixed = type(fixed)(**{**fixed.__dict__, "histogram_bins": 7})
    assert len(run(fixed, events).histogram.counts) == 7


def test_trend_by_day_and_week_of_step_one_entry():
    events = [
        (1, 0, "signup"),
        (1, 60, "pay"),
        (2, DAY + 5, "signup"),
        (3, 3 * DAY, "signup"),
        (3, 3 * DAY + 1, "pay"),
    ]
    daily = run(funnel("signup", "pay"), events).trend
    assert [(p.period_start, p.entered, p.converted) for p in daily] == [
        ("1970-01-01", 1, 1),
        ("1970-01-02", 1, 0),
        ("1970-01-03", 0, 0),
        ("1970-01-04", 1, 1),
    ]
    definition = funnel("signup", "pay")
    weekly = type(definition)(**{**definition.__dict__, "trend_interval": "week"})
    points = run(weekly, events).trend
    # 1970-01-01 was a Thursday: its week starts on Monday 1969-12-29; Jan 4 is a Sunday, same week
    assert [(p.period_start, p.entered, p.converted) for p in points] == [("1969-12-29", 3, 2)]


def test_contact_lists_per_step():
    events = [(10, 0, "a"), (10, 1, "b"), (10, 2, "c"), (20, 0, "a"), (20, 1, "b"), (30, 0, "a")]
    result = run(funnel("a", "b", "c"), events)
    assert [sorted(ids.tolist()) for ids in result.converted_contacts] == [[10, 20, 30], [10, 20], [10]]
    assert [sorted(ids.tolist()) for ids in result.dropped_contacts] == [[], [30], [20]]


def test_to_dict_has_the_contract_keys():
    result = run(funnel("signup", "pay"), [(1, 0, "signup"), (1, 30, "pay"), (2, 0, "signup")])
    payload = result.to_dict()
    step = payload["steps"][1]
    assert {
        "event",
        "count",
        "conversion_from_previous",
        "conversion_from_start",
        "median_seconds_from_previous",
    } <= set(step)
    assert step == {
        **step,
        "event": "pay",
        "count": 1,
        "conversion_from_previous": 0.5,
        "median_seconds_from_previous": 30.0,
    }
    import json

    json.dumps(payload)


def test_unknown_step_gives_zero_and_a_warning():
    result = run(funnel("signup", "nope"), [(1, 0, "signup")])
    assert [step.count for step in result.steps] == [1, 0]
    assert any("nope" in warning for warning in result.warnings)


def test_empty_input():
    definition = funnel("signup", "pay")
    empty = EventColumns(
        contact=np.zeros(0, np.int64), ts=np.zeros(0, np.int64), step_mask=np.zeros(0, np.uint32)
    )
    result = funnel_compute(definition=definition, columns=empty)
    assert [step.count for step in result.steps] == [0, 0]
    assert result.trend == [] and result.histogram.counts == []


def test_unsorted_input_is_refused():
    definition = funnel("signup", "pay")
    columns = EventColumns(
        contact=np.array([2, 1]), ts=np.array([0, 0]), step_mask=np.array([1, 1], dtype=np.uint32)
    )
    with pytest.raises(FunnelInputError):
        funnel_evaluate(definition=definition, columns=columns)


def test_representative_chain_points_at_the_matched_events():
    definition = funnel("a", "b", "c")
    columns = columns_for(definition, [(1, 0, "a"), (1, 1, "a"), (1, 2, "b"), (1, 3, "c")])
    outcomes = funnel_evaluate(definition=definition, columns=columns)
    assert outcomes.furthest.tolist() == [3]
    assert outcomes.chain[0].tolist() == [1, 2, 3]  # the latest start: the shortest conversion


def test_exclusion_after_an_attempts_window_closed_does_not_void_it():
    # found by the property test: the attempt s0@0 -> s1@1 has its 4 s window closed at t=4, so an
    # event at t=5 matching both step 1 and the exclusion (steps 1-3) must not void it
    definition = funnel("s0", "s1", "s2", window="4s", exclude=["x0:1-3"])
    second = 1_000_000
    columns = EventColumns(
        contact=np.array([1, 1, 1, 1, 1], dtype=np.int64),
        ts=np.array([0, 0, 1, 1, 5], dtype=np.int64) * second,
        step_mask=np.array([1, 1, 1, 2, 1], dtype=np.uint32),
        exclusion_mask=np.array([0, 0, 0, 0, 1], dtype=np.uint32),
    )
    result = funnel_compute(definition=definition, columns=columns)
    assert [step["count"] for step in result.to_dict()["steps"]] == [1, 1, 0]


def test_a_tie_may_take_the_next_step_of_each_attempt():
    # DESIGN's example: `view` tied with the `cart` that matched step 2 may match step 3.
    events = [(1, 0, "view"), (1, 1, "cart"), (1, 1, "view")]
    for order in ("sequential", "strict", "any"):
        assert counts(funnel("view", "cart", "view", order=order), events) == [1, 1, 1], order
    # stored in the other order, the same instant gives the same answer
    events = [(1, 0, "view"), (1, 1, "view"), (1, 1, "cart")]
    assert counts(funnel("view", "cart", "view"), events) == [1, 1, 1]
    # but one event still advances one step: the tied view is step 1 (cart then step 2), not 3 too
    assert counts(funnel("view", "cart", "view"), [(1, 1, "cart"), (1, 1, "view")]) == [1, 1, 0]


def test_an_exclusion_tied_with_a_step_is_not_between_the_steps():
    definition = funnel("signup", "pay", exclude=["refund:1-2"])
    assert counts(definition, [(1, 0, "signup"), (1, 0, "refund"), (1, 5, "pay")]) == [1, 1]
    assert counts(definition, [(1, 0, "signup"), (1, 5, "refund"), (1, 5, "pay")]) == [1, 1]
    assert counts(definition, [(1, 0, "signup"), (1, 4, "refund"), (1, 5, "pay")]) == [0, 0]  # void: no clean attempt left


def test_strict_ties_an_unused_event_only_breaks_when_strictly_inside():
    definition = funnel("signup", "pay", order="strict")
    assert counts(definition, [(1, 0, "signup"), (1, 5, "browse"), (1, 5, "pay")]) == [1, 1]
    assert counts(definition, [(1, 0, "signup"), (1, 0, "browse"), (1, 5, "pay")]) == [1, 1]
    three = funnel("signup", "cart", "pay", order="strict")
    assert counts(three, [(1, 0, "signup"), (1, 5, "browse"), (1, 5, "cart"), (1, 9, "pay")]) == [1, 1, 0]


def test_totals_start_again_after_the_instant_of_a_conversion():
    definition = funnel("signup", "pay", count="totals")
    events = [(1, 0, "signup"), (1, 1, "pay"), (1, 1, "signup"), (1, 2, "pay")]
    # the second signup is tied with the converting pay: not after it, so one conversion
    assert counts(definition, events) == [1, 1]
    assert counts(definition, events + [(1, 3, "signup"), (1, 4, "pay")]) == [2, 2]
