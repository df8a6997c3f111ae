"""SHAP explanations in a marketer's words, behind one function: ``explain_contacts``.

GradientExplainer (expected gradients) runs on the model's float ``core`` (step vectors +
aggregates); DeepExplainer breaks on TF2 LSTMs. Step attributions are summed per event, events of the
same name are grouped, and aggregates become sentences such as "No activity for 19 days".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import shap
import tensorflow as tf

from .data import EventFrame
from .features import AGGREGATE_FEATURES, FeatureBatch
from .scorer import Scorer

EVENT_PHRASES = {
    "pv": "Viewed a product",
    "product viewed": "Viewed a product",
    "page": "Viewed a page",
    "page viewed": "Viewed a page",
    "cart": "Added to cart",
    "product added": "Added to cart",
    "checkout started": "Started checkout",
    "buy": "Purchased",
    "order completed": "Purchased",
    "fav": "Added to favourites",
    "product added to wishlist": "Added to wishlist",
    "email_open": "Opened an email",
    "email opened": "Opened an email",
    "email_click": "Clicked an email",
    "email clicked": "Clicked an email",
    "promotion viewed": "Saw a promotion",
    "promotion clicked": "Clicked a promotion",
    "review": "Wrote a review",
    "product reviewed": "Wrote a review",
    "referral": "Referred someone",
    "signup": "Signed up",
    "signed up": "Signed up",
}


@dataclass(frozen=True)
class Factor:
    """One reason behind a score; ``contribution`` is signed (probability points of the network)."""

    text: str
    contribution: float
    kind: str  # event | aggregate


@dataclass(frozen=True)
class Explanation:
    """A contact's calibrated probability and its top factors, strongest first."""

    contact: int
    probability: float
    factors: list[Factor]
    # The probability with no information about the contact (the calibrated mean output on the
    # background); base_value + every contribution (the top factors + `other`) = probability.
    base_value: float = 0.0
    other: float = 0.0  # the contributions of the factors left out of `factors`

    def to_dict(self) -> dict:
        return asdict(self)


def humanize_seconds(seconds: float) -> str:
    """'3 minutes', '5 hours', '19 days', '10 weeks' (rounded down)."""
    seconds = max(float(seconds), 0.0)
    # Days up to eight weeks read best ("19 days", "28 days"); weeks beyond that.
    for unit, size, minimum in (
        ("week", 7 * 86400, 8),
        ("day", 86400, 1),
        ("hour", 3600, 1),
        ("minute", 60, 1),
    ):
        if seconds >= size * minimum:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "less than a minute"


def event_phrase(name: str) -> str:
    """Plain words for an event name ('cart' -> 'Added to cart'); unknown names are quoted."""
    return EVENT_PHRASES.get(name.strip().lower(), f'Did "{name}"')


def _aggregate_text(name: str, raw: np.ndarray, lookback: str) -> str | None:
    index = {n: i for i, n in enumerate(AGGREGATE_FEATURES)}

    def value(key: str) -> float:
        return float(raw[index[key]])

    count = int(value(name)) if name.endswith(("_in_lookback", "_total")) else 0
    plural = "s" if count != 1 else ""
    amount = str(count) if count else "No"
    if name == "seconds_since_last_event":
        return f"No activity for {humanize_seconds(value(name))}"
    if name == "events_in_lookback":
        return f"{amount} event{plural} in the last {lookback}"
    if name == "events_total":
        return f"{amount} event{plural} in total"
    if name == "purchases_in_lookback":
        return f"{amount} purchase{plural} in the last {lookback}"
    if name == "purchases_total":
        return f"{amount} purchase{plural} in total"
    if name == "value_in_lookback":
        spent = value(name)
        return (
            f"Spent {spent:,.2f} in the last {lookback}"
            if spent > 0
            else f"Spent nothing in the last {lookback}"
        )
    if name in ("seconds_since_last_purchase", "has_purchased"):
        if value("has_purchased") < 0.5:
            return "Has never purchased"
        return f"Last purchase {humanize_seconds(value('seconds_since_last_purchase'))} ago"
    if name == "tenure_seconds":
        return f"First seen {humanize_seconds(value(name))} ago"
    if name.endswith("_events_in_lookback"):
        stage = name.removesuffix("_events_in_lookback")
        return f"{amount} {stage}-stage event{plural} in the last {lookback}"
    return None


def _factors_for(i, batch, step_values, aggregate_values, frame, cutoff, lookback) -> list[Factor]:
    by_name: dict[str, list] = {}
    for step in np.flatnonzero(batch.event_rows[i] >= 0):
        row = batch.event_rows[i, step]
        entry = by_name.setdefault(str(frame.name[row]), [0.0, 0, 0])
        entry[0] += float(step_values[i, step])
        entry[1] += 1
        entry[2] = max(entry[2], int(frame.ts[row]))
    factors = []
    for name, (contribution, count, newest) in by_name.items():
        ago = humanize_seconds(cutoff - newest)
        text = (
            f"{event_phrase(name)} {ago} ago"
            if count == 1
            else f"{event_phrase(name)} {count} times, last {ago} ago"
        )
        factors.append(Factor(text, contribution, "event"))
    merged: dict[str, float] = {}
    for j, name in enumerate(AGGREGATE_FEATURES):
        text = _aggregate_text(name, batch.raw_aggregates[i], lookback)
        if text is not None:
            merged[text] = merged.get(text, 0.0) + float(aggregate_values[i, j])
    factors.extend(Factor(text, value, "aggregate") for text, value in merged.items())
    return factors


def _per_input(values, n_inputs: int) -> list[np.ndarray]:
    """Normalise shap's return value to one array per input (single output squeezed)."""
    if isinstance(values, list) and len(values) == 1 and isinstance(values[0], list):
        values = values[0]
    out = []
    for array in values[:n_inputs]:
        array = np.asarray(array)
        out.append(array[..., 0] if array.shape[-1] == 1 and array.ndim >= 3 else array)
    return out


def explain_contacts(
    scorer: Scorer,
    frame: EventFrame,
    contacts,
    *,
    cutoff: int | None = None,
    top_k: int = 3,
    nsamples: int = 100,
    seed: int = 0,
) -> list[Explanation]:
    """Explain the scores of ``contacts`` as of ``cutoff`` (default: just after the newest event).

    Returns one Explanation per contact with its ``top_k`` factors by absolute contribution.
    """
    cutoff = frame.end_ts if cutoff is None else int(cutoff)
    samples = scorer.samples(frame, cutoff, contacts)
    batch: FeatureBatch = scorer.preprocessor.transform(frame, samples)
    raw = scorer.raw_scores(batch)
    probabilities = scorer.calibrator(raw)
    encoder, core = scorer.model.get_layer("encoder"), scorer.model.get_layer("core")
    sequence_names = [name for name in encoder.input]

    def encode(inputs: dict) -> np.ndarray:
        return encoder({k: tf.constant(inputs[k]) for k in sequence_names}, training=False).numpy()

    background = [encode(scorer.background), scorer.background["aggregates"]]
    inputs = batch.inputs()
    explainer = shap.GradientExplainer(core, background)
    values = explainer.shap_values([encode(inputs), inputs["aggregates"]], nsamples=nsamples, rseed=seed)
    step_values, aggregate_values = _per_input(values, 2)
    step_values = step_values.reshape(len(batch), batch.event_rows.shape[1], -1).sum(axis=-1)
    lookback = humanize_seconds(scorer.config.lookback_seconds)
    base_raw, base_value = _base(scorer)
    explanations = []
    for i, contact in enumerate(samples.contacts):
        factors = _factors_for(
            i, batch, step_values, aggregate_values.reshape(len(batch), -1), frame, cutoff, lookback
        )
        # SHAP values are in network-output units and add up to raw - base_raw (expected
        # gradients: in expectation). The calibrator's secant slope between the two puts them in
        # probability units; whatever SHAP's sampling leaves unexplained goes into `other`, so the
        # parts always add up to the served probability.
        probability = float(probabilities[i])
        span = float(raw[i]) - base_raw
        slope = (probability - base_value) / span if abs(span) > 1e-9 else _slope(scorer, base_raw)
        factors = [Factor(f.text, f.contribution * slope, f.kind) for f in factors]
        factors.sort(key=lambda f: -abs(f.contribution))
        top = [Factor(f.text, round(f.contribution, 5), f.kind) for f in factors[:top_k]]
        other = probability - base_value - sum(f.contribution for f in top)
        explanations.append(Explanation(int(contact), probability, top, base_value, other))
    return explanations


def _base(scorer: Scorer) -> tuple[float, float]:
    """(mean raw output on the background samples, its calibrated probability)."""
    cached = getattr(scorer, "_explain_base", None)
    if cached is None:
        inputs = {k: tf.constant(v) for k, v in scorer.background.items()}
        base_raw = float(np.mean(scorer._predict(inputs).numpy()))
        cached = (base_raw, float(scorer.calibrator(np.array([base_raw]))[0]))
        scorer._explain_base = cached
    return cached


def _slope(scorer: Scorer, at: float, step: float = 1e-4) -> float:
    """The calibrator's derivative at a raw score (a central difference)."""
    lo, hi = scorer.calibrator(np.array([max(at - step, 0.0), min(at + step, 1.0)]))
    return float((hi - lo) / (min(at + step, 1.0) - max(at - step, 0.0)))
