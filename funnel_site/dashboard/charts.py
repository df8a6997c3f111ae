"""Chart specs for static/dashboard/charts.js (Chart.js): plain dicts a template passes to json_script.

Every page builds its charts here, so axes, titles, number formats and colours are the same everywhere.
"""

from __future__ import annotations

from typing import Any


def _thousands(n: float) -> str:
    return f"{int(n):,}" if float(n).is_integer() else f"{n:,.1f}"


def bar_spec(labels: list[str], values: list[float], *, x_title: str, y_title: str,
             series_label: str = "", percent: bool = False) -> dict[str, Any]:
    """Vertical bars with titled axes (values 0..1 as percentages when `percent`)."""
    return {"type": "bar", "labels": labels, "series": [{"label": series_label, "data": values}],
            "x_title": x_title, "y_title": y_title, "percent": percent}


def funnel_spec(labels: list[str], counts: list[int], rates: list[float | None], *,
                y_title: str = "contacts") -> dict[str, Any]:
    """Funnel bars: one per step, its count and its rate from the first step written above it."""
    value_labels = [f"{_thousands(c)} · {'–' if r is None else f'{r * 100:.1f}%'}" for c, r in zip(counts, rates, strict=True)]
    return {"type": "funnel", "labels": labels, "series": [{"label": y_title, "data": counts}],
            "x_title": "", "y_title": y_title, "value_labels": value_labels}


def line_spec(labels: list[str], values: list[float | None], *, x_title: str, y_title: str,
              series_label: str = "", percent: bool = False) -> dict[str, Any]:
    """A line over categories (None leaves a gap that the line spans)."""
    return {"type": "line", "labels": labels, "series": [{"label": series_label, "data": values}],
            "x_title": x_title, "y_title": y_title, "percent": percent}


def xy_spec(kind: str, points: list[dict[str, Any]], *, x_title: str, y_title: str, series_label: str) -> dict[str, Any]:
    """ROC (`kind="roc"`) or reliability (`"reliability"`) plot on the unit square, with the diagonal."""
    return {"type": kind, "series": [{"label": series_label, "data": points}], "x_title": x_title, "y_title": y_title}
