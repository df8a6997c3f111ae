"""Quality figures of DESIGN section 5, JSON-ready (plain floats and lists)."""

from __future__ import annotations

import math

import numpy as np
from sklearn import metrics as skm

_EPS = 1e-7


def _clean(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """Sample-weighted mean |observed rate - mean probability| over equal-width probability bins."""
    labels, probabilities = np.asarray(labels, float), np.asarray(probabilities, float)
    index = np.minimum((probabilities * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = index == b
        if in_bin.any():
            total += in_bin.sum() * abs(labels[in_bin].mean() - probabilities[in_bin].mean())
    return total / max(len(labels), 1)


def lift_at_top(labels: np.ndarray, probabilities: np.ndarray, fraction: float = 0.1) -> float:
    """Positive rate among the top ``fraction`` by score divided by the overall positive rate."""
    labels = np.asarray(labels, float)
    if len(labels) == 0 or labels.mean() == 0:
        return float("nan")
    top = max(1, int(math.ceil(len(labels) * fraction)))
    order = np.argsort(-np.asarray(probabilities), kind="stable")[:top]
    return float(labels[order].mean() / labels.mean())


def best_f1_threshold(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The probability threshold that maximises F1 (used for segments when none is configured)."""
    precision, recall, thresholds = skm.precision_recall_curve(labels, probabilities)
    if len(thresholds) == 0:
        return 0.5
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], _EPS)
    return float(np.clip(thresholds[int(np.argmax(f1))], 1e-6, 1 - 1e-6))


def roc_points(labels: np.ndarray, probabilities: np.ndarray, max_points: int = 101) -> list[dict]:
    """ROC curve as [{fpr, tpr, threshold}], downsampled evenly for plotting."""
    if len(np.unique(labels)) < 2:
        return []
    fpr, tpr, thresholds = skm.roc_curve(labels, probabilities, drop_intermediate=True)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr))).round().astype(int))
    return [
        {
            "fpr": round(float(fpr[i]), 5),
            "tpr": round(float(tpr[i]), 5),
            "threshold": _clean(min(thresholds[i], 1.0)),
        }
        for i in keep
    ]


def reliability_points(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> list[dict]:
    """Reliability diagram: per non-empty bin, mean predicted, observed rate and count."""
    labels, probabilities = np.asarray(labels, float), np.asarray(probabilities, float)
    index = np.minimum((probabilities * bins).astype(int), bins - 1)
    points = []
    for b in range(bins):
        in_bin = index == b
        if in_bin.any():
            points.append(
                {
                    "bin_low": b / bins,
                    "bin_high": (b + 1) / bins,
                    "mean_predicted": round(float(probabilities[in_bin].mean()), 5),
                    "observed_rate": round(float(labels[in_bin].mean()), 5),
                    "count": int(in_bin.sum()),
                }
            )
    return points


def evaluate(
    labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5
) -> dict[str, float | None]:
    """ROC-AUC, PR-AUC, log loss, Brier, ECE, top-decile lift, precision/recall/F1 at ``threshold``."""
    labels = np.asarray(labels).astype(int)
    probabilities = np.clip(np.asarray(probabilities, float), _EPS, 1 - _EPS)
    both = len(np.unique(labels)) == 2
    predicted = probabilities >= threshold
    out = {
        "roc_auc": skm.roc_auc_score(labels, probabilities) if both else float("nan"),
        "pr_auc": skm.average_precision_score(labels, probabilities) if both else float("nan"),
        "log_loss": skm.log_loss(labels, probabilities, labels=[0, 1]),
        "brier": skm.brier_score_loss(labels, probabilities),
        "calibration_error": expected_calibration_error(labels, probabilities),
        "lift_top_decile": lift_at_top(labels, probabilities, 0.1),
        "threshold": threshold,
        "precision": skm.precision_score(labels, predicted, zero_division=0),
        "recall": skm.recall_score(labels, predicted, zero_division=0),
        "f1": skm.f1_score(labels, predicted, zero_division=0),
        "samples": len(labels),
        "positives": int(labels.sum()),
    }
    return {k: (_clean(v) if isinstance(v, float | np.floating) else v) for k, v in out.items()}


def curves(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, list[dict]]:
    """ROC and reliability points for the UI."""
    return {
        "roc": roc_points(labels, probabilities),
        "reliability": reliability_points(labels, probabilities),
    }
