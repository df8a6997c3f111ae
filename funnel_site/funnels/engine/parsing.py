"""Parse the CLI / API string forms (`14d`, `stage:purchase`, `Refund:2-3`) into definitions."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .definition import Breakdown, EventMatcher, Exclusion, FunnelDefinition, FunnelStep
from .errors import FunnelDefinitionError

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_EXCLUSION = re.compile(r"^(?P<event>.+):(?P<a>\d+)-(?P<b>\d+)$")


def parse_duration(text: str | int, *, field: str = "window") -> int:
    """`90s`, `30m`, `1h`, `14d`, `2w` (or a bare number of seconds) -> seconds."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _DURATION.match(str(text))
    if not match:
        raise FunnelDefinitionError(
            field=field, reason=f"write a duration like 90s, 30m, 1h, 14d or 2w, got {text!r}"
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_matcher(text: str, *, field: str) -> EventMatcher:
    """`stage:NAME` -> a stage matcher; `A|B` -> a matcher of either event name."""
    text = text.strip()
    if not text:
        raise FunnelDefinitionError(field=field, reason="an empty step")
    if text.startswith("stage:"):
        return EventMatcher(stage=text[len("stage:") :].strip().lower())
    return EventMatcher(events=tuple(part.strip() for part in text.split("|")))


def parse_exclusion(text: str, *, field: str = "exclude") -> Exclusion:
    """`EVENT:a-b` (1-based steps) -> an `Exclusion`."""
    match = _EXCLUSION.match(text.strip())
    if not match:
        raise FunnelDefinitionError(field=field, reason=f"write an exclusion as EVENT:a-b, got {text!r}")
    return Exclusion(
        matcher=parse_matcher(match.group("event"), field=field),
        from_step=int(match.group("a")),
        to_step=int(match.group("b")),
    )


def funnel_definition_from_strings(
    *,
    steps: Sequence[str],
    window: str | int = "14d",
    order: str = "sequential",
    exclude: Sequence[str] = (),
    count: str = "unique",
    breakdown: str | None = None,
    attribution: str = "first_touch",
    hold_constant: str | None = None,
    optional_steps: Sequence[int] = (),
) -> FunnelDefinition:
    """Build and validate a definition from CLI-style strings (`optional_steps` are 1-based)."""
    definition = FunnelDefinition(
        steps=tuple(
            FunnelStep(
                matcher=parse_matcher(text, field=f"steps[{index}]"), optional=(index + 1) in optional_steps
            )
            for index, text in enumerate(steps)
        ),
        window_seconds=parse_duration(window),
        order=order,
        exclusions=tuple(parse_exclusion(text, field=f"exclusions[{i}]") for i, text in enumerate(exclude)),
        count=count,
        breakdown=Breakdown(field=breakdown, attribution=attribution) if breakdown else None,
        hold_constant=hold_constant,
    )
    definition.validate()
    return definition
