"""Funnel query definitions: typed, immutable dataclasses and their validation.

The engine itself only sees bit masks (see `columns.EventColumns`); these classes describe what
the caller (the Django layer) must match to build them, and carry the options the engine uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import FunnelDefinitionError

MIN_STEPS = 2
MAX_STEPS = 20
MAX_EXCLUSIONS = 32  # one bit each in `EventColumns.exclusion_mask` (uint32)
MIN_WINDOW_SECONDS = 1
MAX_WINDOW_SECONDS = 90 * 86_400
DEFAULT_WINDOW_SECONDS = 14 * 86_400
MAX_HISTOGRAM_BINS = 60

STAGES = ("awareness", "interest", "consideration", "purchase", "loyalty")
ORDERS = ("sequential", "strict", "any")
COUNT_MODES = ("unique", "totals")
ATTRIBUTIONS = ("first_touch", "last_touch")
TREND_INTERVALS = ("day", "week")
FILTER_OPERATORS = ("eq", "in", "contains", "gt", "lt")


@dataclass(frozen=True)
class PropertyFilter:
    """A condition on one event property: `eq`, `in` (a list), `contains` (substring), `gt`, `lt`."""

    key: str
    operator: str
    value: Any

    def validate(self, where: str) -> None:
        """Raise `FunnelDefinitionError` naming `where` when the filter is malformed."""
        if not self.key:
            raise FunnelDefinitionError(field=where, reason="a property filter needs a property name")
        if self.operator not in FILTER_OPERATORS:
            raise FunnelDefinitionError(
                field=where,
                reason=f"unknown operator {self.operator!r}; use one of {', '.join(FILTER_OPERATORS)}",
            )
        if self.operator == "in" and (not isinstance(self.value, (list, tuple)) or not self.value):
            raise FunnelDefinitionError(field=where, reason="`in` needs a non-empty list of values")
        if self.operator == "contains" and not isinstance(self.value, str):
            raise FunnelDefinitionError(field=where, reason="`contains` needs a string")
        if self.operator in ("gt", "lt") and (
            isinstance(self.value, bool) or not isinstance(self.value, (int, float))
        ):
            raise FunnelDefinitionError(field=where, reason=f"`{self.operator}` needs a number")


@dataclass(frozen=True)
class EventMatcher:
    """Which events match: any of `events` (names) or the funnel `stage`, narrowed by the filters."""

    events: tuple[str, ...] = ()
    stage: str | None = None
    properties: tuple[PropertyFilter, ...] = ()
    campaign: str | None = None
    channel: str | None = None

    @property
    def label(self) -> str:
        """A short human label: `stage:NAME` or the event names joined by `|`."""
        return f"stage:{self.stage}" if self.stage else "|".join(self.events)

    def validate(self, where: str) -> None:
        """Raise `FunnelDefinitionError` naming `where` when the matcher matches nothing definable."""
        if bool(self.events) == bool(self.stage):
            raise FunnelDefinitionError(field=where, reason="give either event names or a stage (not both)")
        if any(not isinstance(name, str) or not name.strip() for name in self.events):
            raise FunnelDefinitionError(field=where, reason="event names must be non-empty strings")
        if self.stage is not None and self.stage not in STAGES:
            raise FunnelDefinitionError(
                field=where, reason=f"unknown stage {self.stage!r}; use one of {', '.join(STAGES)}"
            )
        for index, property_filter in enumerate(self.properties):
            property_filter.validate(f"{where}.properties[{index}]")


@dataclass(frozen=True)
class FunnelStep:
    """One funnel step; `optional` middle steps may be skipped (PostHog's optional steps)."""

    matcher: EventMatcher
    optional: bool = False
    name: str | None = None

    @property
    def label(self) -> str:
        """The display name: the explicit `name` or the matcher's label."""
        return self.name or self.matcher.label


@dataclass(frozen=True)
class Exclusion:
    """`EVENT:a-b`: an attempt with a matching event between its step a and step b (1-based) is void."""

    matcher: EventMatcher
    from_step: int
    to_step: int


@dataclass(frozen=True)
class Breakdown:
    """Split results by a field (`campaign`, `channel`, `stage`, `property:NAME`, ...)."""

    field: str
    attribution: str = "first_touch"


@dataclass(frozen=True)
class FunnelDefinition:
    """A complete funnel query. Call `validate()` before use (`funnel_compute` does)."""

    steps: tuple[FunnelStep, ...]
    window_seconds: int = DEFAULT_WINDOW_SECONDS
    order: str = "sequential"
    exclusions: tuple[Exclusion, ...] = ()
    count: str = "unique"
    hold_constant: str | None = None
    breakdown: Breakdown | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    trend_interval: str = "day"
    histogram_bins: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def step_count(self) -> int:
        """The number of steps."""
        return len(self.steps)

    def validate(self) -> None:
        """Raise `FunnelDefinitionError(field=..., reason=...)` at the first invalid field."""
        self._validate_steps()
        self._validate_options()
        self._validate_exclusions()

    def _validate_steps(self) -> None:
        count = len(self.steps)
        if not MIN_STEPS <= count <= MAX_STEPS:
            raise FunnelDefinitionError(
                field="steps", reason=f"a funnel has {MIN_STEPS} to {MAX_STEPS} steps, got {count}"
            )
        for index, step in enumerate(self.steps):
            step.matcher.validate(f"steps[{index}]")
            if step.optional and index in (0, count - 1):
                raise FunnelDefinitionError(
                    field=f"steps[{index}].optional", reason="only middle steps can be optional"
                )
            if step.optional and self.order == "any":
                raise FunnelDefinitionError(
                    field=f"steps[{index}].optional", reason="optional steps need an ordered funnel"
                )

    def _validate_options(self) -> None:
        window = self.window_seconds
        if (
            isinstance(window, bool)
            or not isinstance(window, int)
            or not (MIN_WINDOW_SECONDS <= window <= MAX_WINDOW_SECONDS)
        ):
            raise FunnelDefinitionError(
                field="window",
                reason=f"the conversion window must be 1s to 90d, got {_duration_text(window)}",
            )
        if self.order not in ORDERS:
            raise FunnelDefinitionError(
                field="order", reason=f"use one of {', '.join(ORDERS)}, got {self.order!r}"
            )
        if self.count not in COUNT_MODES:
            raise FunnelDefinitionError(
                field="count", reason=f"use one of {', '.join(COUNT_MODES)}, got {self.count!r}"
            )
        if self.trend_interval not in TREND_INTERVALS:
            raise FunnelDefinitionError(
                field="trend_interval",
                reason=f"use one of {', '.join(TREND_INTERVALS)}, got {self.trend_interval!r}",
            )
        if self.histogram_bins is not None and (
            isinstance(self.histogram_bins, bool)
            or not isinstance(self.histogram_bins, int)
            or not 1 <= self.histogram_bins <= MAX_HISTOGRAM_BINS
        ):
            raise FunnelDefinitionError(field="histogram_bins", reason=f"use 1 to {MAX_HISTOGRAM_BINS} bins")
        if self.hold_constant is not None and not str(self.hold_constant).strip():
            raise FunnelDefinitionError(field="hold_constant", reason="name the property to hold constant")
        if self.breakdown is not None:
            if not self.breakdown.field or not self.breakdown.field.strip():
                raise FunnelDefinitionError(field="breakdown", reason="name the field to break down by")
            if self.breakdown.attribution not in ATTRIBUTIONS:
                raise FunnelDefinitionError(
                    field="breakdown.attribution", reason=f"use one of {', '.join(ATTRIBUTIONS)}"
                )
        if self.date_from is not None and self.date_to is not None and self.date_from >= self.date_to:
            raise FunnelDefinitionError(field="date_range", reason="`since` must be before `until`")

    def _validate_exclusions(self) -> None:
        count = len(self.steps)
        if len(self.exclusions) > MAX_EXCLUSIONS:
            raise FunnelDefinitionError(field="exclusions", reason=f"at most {MAX_EXCLUSIONS} exclusions")
        for index, exclusion in enumerate(self.exclusions):
            where = f"exclusions[{index}]"
            exclusion.matcher.validate(where)
            a, b = exclusion.from_step, exclusion.to_step
            if not (isinstance(a, int) and isinstance(b, int) and 1 <= a < b <= count):
                raise FunnelDefinitionError(
                    field=where, reason=f"the step range must satisfy 1 <= a < b <= {count}, got {a}-{b}"
                )
            if self.order == "any" and (a, b) != (1, count):
                # PostHog: "Partial Exclusions not allowed in unordered funnels".
                raise FunnelDefinitionError(
                    field=where,
                    reason=f"an any-order funnel only takes exclusions over all steps (1-{count})",
                )
            for step in self.steps[a - 1 : b]:
                if step.matcher == exclusion.matcher:
                    # PostHog refuses this too: the step's own events would void every attempt.
                    raise FunnelDefinitionError(
                        field=where, reason=f"the excluded event is itself step {step.label!r} of that range"
                    )


def _duration_text(window) -> str:
    """A window in seconds written as people enter it (8640000 -> '100d'); other values as given."""
    if isinstance(window, bool) or not isinstance(window, int):
        return repr(window)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if window and window % size == 0:
            return f"{window // size}{unit}"
    return f"{window}s"
