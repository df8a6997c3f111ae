"""A sequence network's expected-gradient values in a marketer's words, shared by both explainers.

The network's attributions come either from SHAP's GradientExplainer on the Keras ``core``
(``networks.Network.explain``, TensorFlow) or from the same estimator evaluated on the numpy forward
pass (``predictions.serving``, no TensorFlow). Both give per-step and per-aggregate values in the
network's output (probability) units; this module turns them into an Attribution in score (logit)
units: rescaled so they add up exactly (efficiency), summed per event name, the padded steps as one
"history length" factor, and the aggregates merged by their words.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logit

from .candidates import Attribution, ExplainContext, Inputs, RawFactor, _aggregate_factors
from .words import event_phrase, humanize_seconds


def network_attribution(inputs: Inputs, context: ExplainContext, step_values: np.ndarray,
                        aggregate_values: np.ndarray, p: np.ndarray, p0: float) -> tuple[Attribution, np.ndarray]:
    """(Attribution in logit units, |sampled sum - (p - p0)| per sample) from expected-gradient values.

    ``step_values`` (S, steps) are summed over each step's vector already; ``p`` is the network's
    output per sample and ``p0`` its mean output on the background.
    """
    n = len(inputs)
    total = step_values.sum(axis=1) + aggregate_values.sum(axis=1)
    # efficiency: rescale the sampled estimate so it adds up to p - p0, then map probability
    # points to score (logit) points by the secant of the logit between p0 and p
    score, base = logit(np.clip(p, 1e-7, 1 - 1e-7)), float(logit(np.clip(p0, 1e-7, 1 - 1e-7)))
    with np.errstate(divide="ignore", invalid="ignore"):
        fix = np.where(np.abs(total) > 1e-9, (p - p0) / total, 1.0)
        secant = np.where(np.abs(p - p0) > 1e-9, (score - base) / (p - p0), 1 / max(p0 * (1 - p0), 1e-6))
    gap = np.abs(total - (p - p0))
    scale = fix * secant
    lookback = humanize_seconds(context.lookback_seconds)
    rows = inputs.batch.event_rows
    factors = []
    for i in range(n):
        cutoff = int(inputs.cutoffs[i])
        by_name: dict[str, list] = {}
        for step in np.flatnonzero(rows[i] >= 0):
            row = rows[i, step]
            entry = by_name.setdefault(str(context.frame.name[row]), [0.0, 0, 0])
            entry[0] += float(step_values[i, step]) * scale[i]
            entry[1] += 1
            entry[2] = max(entry[2], int(context.frame.ts[row]))
        parts = []
        for name, (contribution, count, newest) in by_name.items():
            ago = humanize_seconds(cutoff - newest)
            text = (f"{event_phrase(name)} {ago} ago" if count == 1
                    else f"{event_phrase(name)} {count} times, last {ago} ago")
            parts.append(RawFactor(text, contribution, "event", name, float(cutoff - newest)))
        padded = rows[i] < 0
        if padded.any():
            # empty steps carry attribution too (a short history differs from the background's)
            real = int((~padded).sum())
            parts.append(RawFactor(f"Only {real} event{'s' if real != 1 else ''} on record",
                                   float(step_values[i, padded].sum()) * scale[i], "history", "history length"))
        parts += _aggregate_factors(i, inputs.batch, aggregate_values[i] * scale[i], lookback)
        factors.append(parts)
    return Attribution(np.full(n, base), score, factors), gap
