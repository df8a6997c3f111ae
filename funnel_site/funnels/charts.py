"""The funnel pages' chart specs (drawn by Chart.js, see funnel_site/dashboard/charts.py): the
time-to-convert histogram and the conversion trend; and the duration and rate texts of the tables."""

from __future__ import annotations

from typing import Any


def human_seconds(seconds: float | None) -> str:
    """`93784` -> `1d 2h`, `150` -> `2m 30s`; '–' for none."""
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def percent(rate: float | None) -> str:
    """0.4567 -> '45.7%'; '–' for none."""
    return "–" if rate is None else f"{rate * 100:.1f}%"


def histogram_spec(histogram: dict[str, Any]) -> dict[str, Any] | None:
    """The time-to-convert histogram as Chart.js bars, each labelled with its range of durations."""
    from funnel_site.dashboard.charts import bar_spec

    counts, edges = histogram.get("counts") or [], histogram.get("bin_edges_seconds") or []
    if not counts or not any(counts):
        return None
    labels = [f"{human_seconds(edges[i])}–{human_seconds(edges[i + 1])}" for i in range(len(counts))]
    return bar_spec(labels, counts, x_title="time from the first to the last step", y_title="conversions",
                    series_label="conversions")


def trend_spec(trend: dict[str, Any]) -> dict[str, Any] | None:
    """The conversion rate per period of entry as a Chart.js line (periods without entries are gaps)."""
    from funnel_site.dashboard.charts import line_spec

    points = trend.get("points") or []
    if not any(p["conversion_rate"] is not None for p in points):
        return None
    return line_spec([str(p["period_start"])[:10] for p in points], [p["conversion_rate"] for p in points],
                     x_title=f"{trend.get('interval', 'day')} of entry", y_title="converted", series_label="conversion",
                     percent=True)
