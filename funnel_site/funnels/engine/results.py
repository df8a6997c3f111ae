"""Result dataclasses of a funnel query; `to_dict()` gives JSON-ready dicts (the CLI/API shape)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _number(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


@dataclass
class StepResult:
    """One step's row: counts, rates (0..1) and seconds from the previous matched step."""

    index: int
    event: str
    optional: bool
    count: int
    conversion_from_previous: float | None
    conversion_from_start: float | None
    drop_off: int
    drop_off_rate: float | None
    median_seconds_from_previous: float | None
    mean_seconds_from_previous: float | None
    p90_seconds_from_previous: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; rates rounded to 4 places, seconds to 3."""
        return {
            "step": self.index + 1,
            "event": self.event,
            "optional": self.optional,
            "count": self.count,
            "conversion_from_previous": _number(self.conversion_from_previous),
            "conversion_from_start": _number(self.conversion_from_start),
            "drop_off": self.drop_off,
            "drop_off_rate": _number(self.drop_off_rate),
            "median_seconds_from_previous": _number(self.median_seconds_from_previous, 3),
            "mean_seconds_from_previous": _number(self.mean_seconds_from_previous, 3),
            "p90_seconds_from_previous": _number(self.p90_seconds_from_previous, 3),
        }


@dataclass
class Histogram:
    """Time to convert (first to last step) of converted contacts/attempts: `len(edges) == len(counts)+1`."""

    bin_edges_seconds: list[float]
    counts: list[int]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "bin_edges_seconds": [round(edge, 3) for edge in self.bin_edges_seconds],
            "counts": self.counts,
        }


@dataclass
class TrendPoint:
    """Entries into step 1 during one day/week (UTC) and how many of them reached the last step."""

    period_start: str
    entered: int
    converted: int
    conversion_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "period_start": self.period_start,
            "entered": self.entered,
            "converted": self.converted,
            "conversion_rate": _number(self.conversion_rate),
        }


@dataclass
class BreakdownResult:
    """The step table of the contacts attributed to one breakdown value (`None` = value missing)."""

    value: str | None
    code: int
    steps: list[StepResult]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"value": self.value, "steps": [step.to_dict() for step in self.steps]}


@dataclass
class FunnelResult:
    """Everything a funnel query returns.

    `converted_contacts[k]` holds the ids of contacts that reached step k+1, `dropped_contacts[k]`
    those that reached the previous required step but not step k+1 (empty for step 1); both are
    sorted int64 arrays, paginated by the caller and left out of `to_dict()`.
    """

    steps: list[StepResult]
    count_mode: str
    order: str
    window_seconds: int
    histogram: Histogram
    trend: list[TrendPoint]
    trend_interval: str
    breakdown: list[BreakdownResult] | None
    warnings: list[str]
    converted_contacts: list[np.ndarray] = field(repr=False)
    dropped_contacts: list[np.ndarray] = field(repr=False)
    engine_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the CLI (`--json`) and the API."""
        return {
            "steps": [step.to_dict() for step in self.steps],
            "count": self.count_mode,
            "order": self.order,
            "window_seconds": self.window_seconds,
            "time_to_convert_histogram": self.histogram.to_dict(),
            "trend": {"interval": self.trend_interval, "points": [point.to_dict() for point in self.trend]},
            "breakdown": None if self.breakdown is None else [item.to_dict() for item in self.breakdown],
            "warnings": list(self.warnings),
            "engine_seconds": round(self.engine_seconds, 4),
        }
