"""Definition validation names the offending field; string parsing follows the CLI contract."""

from __future__ import annotations

import pytest

from funnel_site.funnels.engine import (
    EventMatcher,
    FunnelDefinition,
    FunnelDefinitionError,
    FunnelStep,
    PropertyFilter,
    funnel_definition_from_strings,
    parse_duration,
    parse_exclusion,
)


def field_of(**options) -> str:
    with pytest.raises(FunnelDefinitionError) as error:
        funnel_definition_from_strings(**options)
    return error.value.field


def test_step_count_bounds():
    assert field_of(steps=["a"]) == "steps"
    assert field_of(steps=[f"e{k}" for k in range(21)]) == "steps"
    funnel_definition_from_strings(steps=[f"e{k}" for k in range(20)])


def test_window_bounds():
    assert field_of(steps=["a", "b"], window="0s") == "window"
    assert field_of(steps=["a", "b"], window="91d") == "window"
    assert field_of(steps=["a", "b"], window="soon") == "window"
    assert funnel_definition_from_strings(steps=["a", "b"], window="90d").window_seconds == 90 * 86_400


def test_order_count_and_stage():
    assert field_of(steps=["a", "b"], order="random") == "order"
    assert field_of(steps=["a", "b"], count="some") == "count"
    assert field_of(steps=["stage:nowhere", "b"]) == "steps[0]"
    assert funnel_definition_from_strings(steps=["stage:interest", "b"]).steps[0].matcher.stage == "interest"


def test_exclusion_ranges():
    assert field_of(steps=["a", "b", "c"], exclude=["x:2-2"]) == "exclusions[0]"
    assert field_of(steps=["a", "b", "c"], exclude=["x:1-4"]) == "exclusions[0]"
    assert field_of(steps=["a", "b", "c"], exclude=["x-1-2"]) == "exclusions[0]"
    assert field_of(steps=["a", "b", "c"], exclude=["b:1-3"]) == "exclusions[0]"
    assert field_of(steps=["a", "b", "c"], order="any", exclude=["x:1-2"]) == "exclusions[0]"
    funnel_definition_from_strings(steps=["a", "b", "c"], order="any", exclude=["x:1-3"])


def test_optional_steps_only_in_the_middle_of_ordered_funnels():
    assert field_of(steps=["a", "b", "c"], optional_steps=[1]) == "steps[0].optional"
    assert field_of(steps=["a", "b", "c"], optional_steps=[3]) == "steps[2].optional"
    assert field_of(steps=["a", "b", "c"], optional_steps=[2], order="any") == "steps[1].optional"


def test_property_filters():
    def definition(property_filter):
        return FunnelDefinition(
            steps=(
                FunnelStep(EventMatcher(events=("a",), properties=(property_filter,))),
                FunnelStep(EventMatcher(events=("b",))),
            )
        )

    with pytest.raises(FunnelDefinitionError) as error:
        definition(PropertyFilter("price", "between", 3)).validate()
    assert error.value.field == "steps[0].properties[0]"
    with pytest.raises(FunnelDefinitionError):
        definition(PropertyFilter("price", "gt", "3")).validate()
    with pytest.raises(FunnelDefinitionError):
        definition(PropertyFilter("plan", "in", [])).validate()
    definition(PropertyFilter("plan", "in", ["pro"])).validate()


def test_breakdown_attribution():
    assert field_of(steps=["a", "b"], breakdown="campaign", attribution="middle") == "breakdown.attribution"


def test_parsers():
    assert [parse_duration(text) for text in ("90s", "30m", "1h", "14d", "2w", "45")] == [
        90,
        1800,
        3600,
        1_209_600,
        1_209_600,
        45,
    ]
    exclusion = parse_exclusion("Order Refunded:2-3")
    assert (exclusion.matcher.events, exclusion.from_step, exclusion.to_step) == (("Order Refunded",), 2, 3)
    assert str(FunnelDefinitionError(field="window", reason="too long")) == "window: too long"
