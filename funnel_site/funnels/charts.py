"""Geometry of the funnel page's inline SVG charts (no JavaScript): step bars, the time-to-convert
histogram and the conversion trend line. Templates only place the shapes computed here."""

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


def step_bars(steps: list[dict[str, Any]], *, width: int = 720, height: int = 220) -> dict[str, Any]:
    """One vertical bar per step, its height the share of step 1, labelled with count and rate."""
    top = max((s["count"] for s in steps), default=0) or 1
    slot = width / max(len(steps), 1)
    plot = height - 50
    bars = []
    for i, step in enumerate(steps):
        h = round(step["count"] / top * plot, 1)
        x = round(i * slot + slot * 0.15, 1)
        bars.append({
            "x": x, "w": round(slot * 0.7, 1), "y": round(20 + plot - h, 1), "h": h,
            "cx": round(x + slot * 0.35, 1), "label_y": round(20 + plot - h - 5, 1),
            "count": step["count"], "event": step["event"], "rate": percent(step["conversion_from_start"]),
        })
    return {"bars": bars, "width": width, "height": height, "axis_y": height - 30, "name_y": height - 12}


def histogram_bars(histogram: dict[str, Any], *, width: int = 720, height: int = 160) -> dict[str, Any]:
    """Bars of the time-to-convert histogram with the edges as readable durations."""
    counts, edges = histogram.get("counts") or [], histogram.get("bin_edges_seconds") or []
    top = max(counts, default=0) or 1
    slot = width / max(len(counts), 1)
    bars = []
    for i, count in enumerate(counts):
        h = round(count / top * (height - 20), 1)
        bars.append({
            "x": round(i * slot, 1), "w": max(round(slot - 2, 1), 1), "y": round(height - h, 1), "h": h,
            "count": count, "range": f"{human_seconds(edges[i])} – {human_seconds(edges[i + 1])}",
        })
    return {"bars": bars, "width": width, "height": height,
            "low": human_seconds(edges[0]) if edges else "", "high": human_seconds(edges[-1]) if edges else ""}


def trend_line(points: list[dict[str, Any]], *, width: int = 720, height: int = 160) -> dict[str, Any]:
    """A polyline of the conversion rate per period (periods without entries are skipped)."""
    usable = [p for p in points if p["conversion_rate"] is not None]
    top = max((p["conversion_rate"] for p in usable), default=0) or 1
    step = width / max(len(points) - 1, 1)
    dots = []
    for i, point in enumerate(points):
        if point["conversion_rate"] is None:
            continue
        dots.append({
            "x": round(i * step if len(points) > 1 else width / 2, 1),
            "y": round(height - 10 - point["conversion_rate"] / top * (height - 30), 1),
            "label": f"{point['period_start']}: {percent(point['conversion_rate'])} of {point['entered']}",
        })
    return {"dots": dots, "path": " ".join(f"{d['x']},{d['y']}" for d in dots), "width": width, "height": height,
            "top": percent(top), "first": points[0]["period_start"] if points else "",
            "last": points[-1]["period_start"] if points else ""}
