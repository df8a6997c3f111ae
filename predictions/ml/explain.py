"""Explanations in a marketer's words, in probability units of the served model: ``explain_contacts``.

Each candidate explains its own score additively (``Candidate.explain``: base + sum == score; SHAP
GradientExplainer for the networks, TreeExplainer for the trees, exact linear / Shapley terms for
the others, the parts combined by their weights for the stack). The calibration map is then folded
in by its secant: with b the base score, s the contact's score, B = cal(b) and P = cal(s), every
contribution is multiplied by (P - B) / (s - b) (the derivative of the map at s when s == b). So
``base_value + sum(all contributions) == probability`` to float rounding (1e-9), each factor keeps
its sign, and they read as probability points of the calibrated model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .candidates import ExplainContext
from .data import EventFrame
from .scorer import Scorer
from .words import EVENT_PHRASES, event_phrase, humanize_seconds, recency_bucket

__all__ = ["EVENT_PHRASES", "Explanation", "Factor", "event_phrase", "explain_contacts", "global_importance",
           "humanize_seconds"]


@dataclass(frozen=True)
class Factor:
    """One reason behind a score; ``contribution`` is signed, in probability points of the served model."""

    text: str
    contribution: float
    kind: str  # event | aggregate | state | history


@dataclass(frozen=True)
class Explanation:
    """A contact's calibrated probability, the base value and its top factors, strongest first.

    ``base_value`` + the contributions of *all* factors (not only the top ones) == ``probability``.
    """

    contact: int
    probability: float
    factors: list[Factor]
    base_value: float = 0.0
    all_factors: list[Factor] = field(default_factory=list, repr=False, compare=False)

    @property
    def other(self) -> float:
        """The contributions of the factors left out of ``factors`` (so the parts add up)."""
        return self.probability - self.base_value - sum(f.contribution for f in self.factors)

    def to_dict(self) -> dict:
        out = asdict(self)
        del out["all_factors"]
        out["other"] = self.other
        return out


def _attribute(scorer: Scorer, frame: EventFrame, contacts, cutoff, nsamples: int, seed: int):
    cutoff = frame.end_ts if cutoff is None else int(cutoff)
    samples = scorer.samples(frame, cutoff, contacts)
    inputs = scorer.inputs(frame, samples)
    context = ExplainContext(scorer.background, frame, scorer.config.lookback_seconds, scorer.state_names,
                             nsamples, seed)
    attribution = scorer.candidate.explain(inputs, context)
    probability = scorer.calibrator(attribution.value)
    base_probability = scorer.calibrator(attribution.base)
    step = 1e-4
    derivative = (scorer.calibrator(attribution.value + step) - scorer.calibrator(attribution.value - step)) / (2 * step)
    gap = attribution.value - attribution.base
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(np.abs(gap) > 1e-9, (probability - base_probability) / gap, derivative)
    return samples, attribution, probability, base_probability, scale


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

    One Explanation per contact with its ``top_k`` factors by absolute contribution.
    """
    samples, attribution, probability, base, scale = _attribute(scorer, frame, contacts, cutoff, nsamples, seed)
    out = []
    for i, contact in enumerate(samples.contacts):
        factors = sorted((Factor(f.text, float(f.contribution * scale[i]), f.kind) for f in attribution.factors[i]),
                         key=lambda f: -abs(f.contribution))
        top = [Factor(f.text, round(f.contribution, 5), f.kind) for f in factors[:top_k]]
        out.append(Explanation(int(contact), float(probability[i]), top, float(base[i]), factors))
    return out


def global_importance(scorer: Scorer, frame: EventFrame, contacts, *, cutoff: int | None = None,
                      nsamples: int = 50) -> dict:
    """Mean |contribution| (probability points) of the served model by event type and by recency bucket."""
    if len(contacts) == 0:
        return {}
    samples, attribution, _, _, scale = _attribute(scorer, frame, contacts, cutoff, nsamples, 0)
    by_type: dict[str, float] = {}
    by_recency: dict[str, float] = {}
    for i in range(len(samples)):
        for f in attribution.factors[i]:
            size = abs(f.contribution * scale[i]) / len(samples)
            by_type[f.key] = by_type.get(f.key, 0.0) + size
            if f.age is not None:
                bucket = recency_bucket(f.age)
            else:
                bucket = "lookback window" if f.kind == "aggregate" else "whole history"
            by_recency[bucket] = by_recency.get(bucket, 0.0) + size

    def ranked(table: dict[str, float]) -> list[dict]:
        return [{"name": k, "importance": round(v, 5)} for k, v in sorted(table.items(), key=lambda kv: -kv[1])]

    return {"by_event_type": ranked(by_type)[:20], "by_recency": ranked(by_recency), "contacts": int(len(samples)),
            "unit": "mean absolute contribution, probability points"}
