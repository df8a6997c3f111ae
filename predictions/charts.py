"""The model pages' charts (ROC, reliability: Chart.js specs), metric columns with a plain-language
note on each, and the sample counts with readable labels."""

from __future__ import annotations


def roc_spec(points: list[dict]) -> dict | None:
    """The ROC curve ({fpr, tpr} points) as a Chart.js plot with the chance diagonal."""
    from funnel_site.dashboard.charts import xy_spec

    if not points:
        return None
    return xy_spec("roc", [{"x": p["fpr"], "y": p["tpr"]} for p in points], x_title="false positive rate",
                   y_title="true positive rate", series_label="this model")


def reliability_spec(points: list[dict]) -> dict | None:
    """Mean predicted vs observed rate per bin; each point's size grows with the contacts in its bin."""
    from funnel_site.dashboard.charts import xy_spec

    if not points:
        return None
    largest = max(p["count"] for p in points) or 1
    dots = [{"x": p["mean_predicted"], "y": p["observed_rate"], "r": round(3 + 7 * (p["count"] / largest) ** 0.5, 1),
             "title": f"predicted {p['mean_predicted']:.2f}, observed {p['observed_rate']:.2f} ({p['count']:,} contacts)"}
            for p in points]
    spec = xy_spec("reliability", dots, x_title="mean predicted probability", y_title="observed rate",
                   series_label="this model")
    spec["series"][0]["radius"] = [d["r"] for d in dots]
    return spec


METRIC_COLUMNS = (
    ("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("log_loss", "log loss"), ("brier", "Brier"),
    ("calibration_error", "calibration error"), ("lift_top_decile", "lift top 10 %"), ("precision", "precision"),
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


# What each figure means, for people who do not read ROC curves every day.
METRIC_NOTES = (
    ("ROC-AUC", "The chance that a random contact who did it is ranked above a random one who did not: "
                "0.5 is guessing, 1 is perfect. It ignores how rare the outcome is."),
    ("PR-AUC", "Average precision over all thresholds: how clean the top of the list stays. Compare it with "
               "the prevalence (the share who did it), which is what guessing gets."),
    ("log loss", "How surprised the model is by what happened, on average; lower is better. It punishes "
                 "confident mistakes hard."),
    ("Brier", "The mean squared gap between the probability and what happened (0 or 1); lower is better."),
    ("calibration error", "How far the probabilities are from the observed rates (a 0.3 should come true "
                          "3 times in 10); lower is better. The reliability plot shows it per bin."),
    ("lift top 10 %", "How many times more often the top tenth of the list does it than the average contact."),
    ("precision / recall / F1", "At the segment threshold: the share of flagged contacts who did it, the share "
                                "of those who did it that were flagged, and their harmonic mean."),
)

COUNT_LABELS = {
    "train_positives": "training samples that did it", "train_negatives": "training samples that did not",
    "validation_positives": "validation contacts that did it", "validation_negatives": "validation contacts that did not",
    "selection_contacts": "validation contacts used to choose the network, epochs and threshold",
    "report_contacts": "validation contacts the figures are measured on",
}


def count_rows(counts: dict) -> list[tuple[str, int]]:
    """Sample counts as (plain label, number); internal flags such as `validation_halved` are left out."""
    return [(COUNT_LABELS[k], counts[k]) for k in COUNT_LABELS if k in counts]
