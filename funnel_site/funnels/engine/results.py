"""Result dataclasses of a funnel query; `to_dict()` gives JSON-ready dicts (the CLI/API shape)."""

from __future__ import annotations

from collections.abc import Sequence
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


class StepContacts(Sequence):
    """Per step, the sorted ids of the contacts that reached it (`dropped=False`), or that reached
    the previous required step but not this one (`dropped=True`; empty for step 1).

    Computed when a step is first read and then kept: most queries never list contacts, and the
    lists of a 10-million-event funnel took a tenth of its time. Pickles small (the ids and the
    reached matrix) for the results cache.
    """

    def __init__(self, ids: np.ndarray, reached: np.ndarray, optional: Sequence[bool], *, dropped: bool) -> None:
        self._ids = ids
        self._reached = reached
        self._optional = tuple(optional)
        self._dropped = dropped
        self._memo: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._optional)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(len(self)))]
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(f"step index {k} out of range")
        if k not in self._memo:
            self._memo[k] = self._compute(k)
        return self._memo[k]

    def _compute(self, k: int) -> np.ndarray:
        if not self._dropped:
            return self._ids[self._reached[:, k]]
        if k == 0:
            return np.zeros(0, dtype=np.int64)
        previous = max([0] + [j for j in range(1, k) if not self._optional[j]])
        return self._ids[self._reached[:, previous] & ~self._reached[:, k]]


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
    converted_contacts: Sequence[np.ndarray] = field(repr=False)  # a `StepContacts`
    dropped_contacts: Sequence[np.ndarray] = field(repr=False)
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
