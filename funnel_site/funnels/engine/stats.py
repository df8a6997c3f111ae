"""Vectorised result statistics: step tables, time-to-convert histogram, conversion trend."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from .results import Histogram, StepResult, TrendPoint

MICROS = 1_000_000
DAY_MICROS = 86_400 * MICROS
MAX_BINS = 60


def auto_bin_count(n: int) -> int:
    """clamp(ceil(cbrt(n)), 1, 60), computed exactly on integers."""
    if n <= 1:
        return 1
    root = int(round(n ** (1 / 3)))
    while root**3 < n:
        root += 1
    while root > 1 and (root - 1) ** 3 >= n:
        root -= 1
    return max(1, min(MAX_BINS, root))


def step_table(
    *,
    reached: np.ndarray,
    labels: Sequence[str],
    optional: Sequence[bool],
    gap_seconds: np.ndarray | None = None,
    gap_columns: Sequence[np.ndarray] | None = None,
) -> list[StepResult]:
    """Rows of the step table; `reached` is bool [entities, steps]; the gaps either as
    `gap_seconds` float [entities, steps] (NaN = none) or as `gap_columns`, per step the gaps
    that exist (what `compute._gap_columns` packs without the NaN matrix).

    Rates of a step are relative to the previous *required* step, so an optional step never
    inflates or hides the conversion of the step after it.
    """
    counts = reached.sum(axis=0).astype(np.int64) if reached.size else np.zeros(len(labels), dtype=np.int64)
    start = int(counts[0]) if len(counts) else 0
    rows: list[StepResult] = []
    previous_required = None
    for k, label in enumerate(labels):
        count = int(counts[k])
        base = start if previous_required is None else int(counts[previous_required])
        from_previous = (1.0 if count else None) if k == 0 else (count / base if base else None)
        if k == 0:
            gaps = np.empty(0)
        elif gap_columns is not None:
            gaps = gap_columns[k]
        else:
            gaps = gap_seconds[:, k] if gap_seconds.size else np.empty(0)
            gaps = gaps[~np.isnan(gaps)]
        # one selection for both (np.median is the linear 50th percentile)
        median, p90 = (float(v) for v in np.percentile(gaps, [50, 90])) if gaps.size else (None, None)
        rows.append(
            StepResult(
                index=k,
                event=label,
                optional=bool(optional[k]),
                count=count,
                conversion_from_previous=from_previous,
                conversion_from_start=(count / start) if start else None,
                drop_off=0 if k == 0 else max(base - count, 0),
                drop_off_rate=None if from_previous is None or k == 0 else 1.0 - from_previous,
                median_seconds_from_previous=median,
                mean_seconds_from_previous=float(gaps.mean()) if gaps.size else None,
                p90_seconds_from_previous=p90,
            )
        )
        if not optional[k]:
            previous_required = k
    return rows


def time_histogram(seconds: np.ndarray, bins: int | None = None) -> Histogram:
    """Equal-width bins from the fastest to the slowest conversion; `bins` or the automatic count."""
    if seconds.size == 0:
        return Histogram(bin_edges_seconds=[], counts=[])
    count = bins or auto_bin_count(int(seconds.size))
    low, high = float(seconds.min()), float(seconds.max())
    if high <= low:
        high = low + count  # all equal: 1-second bins starting at that value
    edges = np.linspace(low, high, count + 1)
    counts, _ = np.histogram(seconds, bins=edges)
    return Histogram(bin_edges_seconds=[float(edge) for edge in edges], counts=[int(c) for c in counts])


def _period_index(ts_micros: np.ndarray, interval: str) -> np.ndarray:
    days = np.floor_divide(ts_micros, DAY_MICROS)
    if interval == "week":
        return days - (days + 3) % 7  # the Monday starting the week (1970-01-01 was a Thursday)
    return days


def conversion_trend(entry_ts: np.ndarray, converted: np.ndarray, interval: str) -> list[TrendPoint]:
    """Per day/week of step-1 entry (UTC): entries, conversions to the last step, rate; gaps filled."""
    if entry_ts.size == 0:
        return []
    period = _period_index(entry_ts, interval)
    first, last = int(period.min()), int(period.max())
    step = 7 if interval == "week" else 1
    slot = (period - first) // step
    entered = np.bincount(slot)
    done = np.bincount(slot, weights=converted.astype(np.float64), minlength=entered.size)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    points = []
    for index in range((last - first) // step + 1):
        total = int(entered[index])
        won = int(done[index])
        points.append(
            TrendPoint(
                period_start=(epoch + timedelta(days=first + index * step)).date().isoformat(),
                entered=total,
                converted=won,
                conversion_rate=(won / total) if total else None,
            )
        )
    return points
