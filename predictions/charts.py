"""Geometry of the model pages' inline SVG plots (no JavaScript): ROC curve and reliability diagram."""

from __future__ import annotations

SIZE = 240  # square plot area in SVG units
PAD = 30


def _xy(x: float, y: float) -> tuple[float, float]:
    """Unit square (0..1, y up) -> SVG coordinates (y down), inside the padding."""
    return round(PAD + x * SIZE, 1), round(PAD + (1 - y) * SIZE, 1)


def _axes(x_label: str, y_label: str) -> dict:
    ticks = [{"v": t / 4, "label": f"{t / 4:g}", "x": _xy(t / 4, 0)[0], "y": _xy(0, t / 4)[1]} for t in range(5)]
    return {"size": SIZE + 2 * PAD, "x0": PAD, "y0": PAD + SIZE, "x1": PAD + SIZE, "y1": PAD, "ticks": ticks,
            "x_label": x_label, "y_label": y_label, "mid": PAD + SIZE // 2, "diagonal": f"{PAD},{PAD + SIZE} {PAD + SIZE},{PAD}"}


def roc_plot(points: list[dict]) -> dict | None:
    """A polyline of the ROC curve ({fpr, tpr} points) with the chance diagonal."""
    if not points:
        return None
    line = " ".join("{},{}".format(*_xy(p["fpr"], p["tpr"])) for p in points)
    return {**_axes("false positive rate", "true positive rate"), "line": line}


def reliability_plot(points: list[dict]) -> dict | None:
    """Mean predicted vs observed rate per bin, circles sized by how many samples fall in the bin."""
    if not points:
        return None
    largest = max(p["count"] for p in points) or 1
    dots = []
    for p in points:
        x, y = _xy(p["mean_predicted"], p["observed_rate"])
        dots.append({"x": x, "y": y, "r": round(2.5 + 6 * (p["count"] / largest) ** 0.5, 1),
                     "title": f"predicted {p['mean_predicted']:.2f}, observed {p['observed_rate']:.2f} "
                              f"({p['count']} contacts)"})
    line = " ".join(f"{d['x']},{d['y']}" for d in dots)
    return {**_axes("mean predicted probability", "observed rate"), "dots": dots, "line": line}


METRIC_COLUMNS = (
    ("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("log_loss", "log loss"), ("brier", "Brier"),
    ("calibration_error", "calib. error"), ("lift_top_decile", "lift top 10 %"), ("precision", "precision"),
    ("recall", "recall"), ("f1", "F1"),
)
BASELINE_NAMES = {"prevalence": "prevalence", "logistic_regression": "logistic regression (RFM)",
                  "gradient_boosting": "gradient-boosted trees (RFM)", "recency": "recency alone",
                  "logreg": "logistic regression (RFM)", "bgnbd": "BG/NBD", "gbt": "gradient-boosted trees (RFM)"}


def metrics_rows(model_name: str, metrics: dict, baselines: dict) -> list[dict]:
    """Rows of the metrics-vs-baselines table: the model first, then each baseline."""
    rows = [{"name": model_name, "is_model": True, "cells": [metrics.get(k) for k, _ in METRIC_COLUMNS]}]
    for key, figures in baselines.items():
        rows.append({"name": BASELINE_NAMES.get(key, key), "is_model": False,
                     "cells": [figures.get(k) for k, _ in METRIC_COLUMNS]})
    return rows
