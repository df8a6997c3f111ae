"""Targets and time splits exactly as DESIGN section 5 defines them.

For a cut-off c: eligible contacts have any event in [c - lookback, c). Purchase label is 1 when an
``is_purchase`` event falls in [c, c + horizon); churn label is 1 when no event at all falls there.
The latest complete cut-off (its whole horizon observed) is the validation set; the training
cut-offs step back from it by the horizon. Never a random split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import TrainConfig
from .data import EventFrame
from .errors import NotEnoughData


@dataclass(frozen=True)
class Samples:
    """One row per (contact, cut-off): the unit a model scores."""

    contacts: np.ndarray  # int64 contact ids
    cutoffs: np.ndarray  # int64 unix seconds
    labels: np.ndarray  # int8 0/1 (all zero when unlabelled, e.g. for scoring)

    def __len__(self) -> int:
        return len(self.contacts)

    @property
    def positives(self) -> int:
        return int(self.labels.sum())

    @property
    def negatives(self) -> int:
        return len(self) - self.positives

    @staticmethod
    def concat(parts: list[Samples]) -> Samples:
        """Concatenate sample sets in order."""
        if not parts:
            return Samples(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8))
        return Samples(
            np.concatenate([p.contacts for p in parts]),
            np.concatenate([p.cutoffs for p in parts]),
            np.concatenate([p.labels for p in parts]),
        )


@dataclass(frozen=True)
class Split:
    """Training samples (earlier cut-offs) and validation samples (the latest complete cut-off)."""

    train: Samples
    validation: Samples
    train_cutoffs: list[int]
    validation_cutoff: int

    def counts(self) -> dict[str, int]:
        """Positives and negatives per split, for messages and the model record."""
        return {
            "train_positives": self.train.positives,
            "train_negatives": self.train.negatives,
            "validation_positives": self.validation.positives,
            "validation_negatives": self.validation.negatives,
        }


def latest_complete_cutoff(frame: EventFrame, horizon_seconds: int) -> int:
    """The newest cut-off whose horizon [c, c + horizon) lies inside the observed data."""
    return frame.end_ts - int(horizon_seconds)


def cutoff_schedule(frame: EventFrame, config: TrainConfig) -> tuple[list[int], int]:
    """(training cut-offs oldest first, validation cut-off); cut-offs before the first event are dropped."""
    validation_cutoff = latest_complete_cutoff(frame, config.horizon_seconds)
    first_ts = int(frame.ts.min())
    train = [validation_cutoff - k * config.horizon_seconds for k in range(config.n_cutoffs, 0, -1)]
    return [c for c in train if c > first_ts], validation_cutoff


def eligible_contacts(frame: EventFrame, cutoff: int, lookback_seconds: int) -> np.ndarray:
    """Contact ids (sorted) with any event in [cutoff - lookback, cutoff)."""
    mask = (frame.ts >= cutoff - lookback_seconds) & (frame.ts < cutoff)
    return np.unique(frame.contact[mask])


def label_cutoff(frame: EventFrame, cutoff: int, config: TrainConfig) -> Samples:
    """Eligible contacts at ``cutoff`` and their labels for ``config.target``."""
    ids, _, _, index = frame.groups()
    n_contacts = len(ids)
    in_lookback = (frame.ts >= cutoff - config.lookback_seconds) & (frame.ts < cutoff)
    eligible = np.zeros(n_contacts, dtype=bool)
    eligible[index[in_lookback]] = True
    in_horizon = (frame.ts >= cutoff) & (frame.ts < cutoff + config.horizon_seconds)
    if config.target == "purchase":
        hit = np.zeros(n_contacts, dtype=bool)
        hit[index[in_horizon & frame.is_purchase]] = True
        labels = hit
    else:
        active = np.zeros(n_contacts, dtype=bool)
        active[index[in_horizon]] = True
        labels = ~active
    chosen = np.flatnonzero(eligible)
    return Samples(
        contacts=ids[chosen].astype(np.int64),
        cutoffs=np.full(len(chosen), cutoff, dtype=np.int64),
        labels=labels[chosen].astype(np.int8),
    )


def build_split(frame: EventFrame, config: TrainConfig) -> Split:
    """Label every cut-off and split by time; raise NotEnoughData when a class is too small."""
    if len(frame) == 0:
        raise NotEnoughData("no events to train on", {"events": 0})
    train_cutoffs, validation_cutoff = cutoff_schedule(frame, config)
    train = Samples.concat([label_cutoff(frame, c, config) for c in train_cutoffs])
    validation = label_cutoff(frame, validation_cutoff, config)
    split = Split(train, validation, train_cutoffs, validation_cutoff)
    counts = split.counts()
    positives = counts["train_positives"] + counts["validation_positives"]
    negatives = counts["train_negatives"] + counts["validation_negatives"]
    problems = []
    if positives < config.min_positives:
        problems.append(f"{positives} positives (need {config.min_positives})")
    if negatives < config.min_negatives:
        problems.append(f"{negatives} negatives (need {config.min_negatives})")
    for cls_name in ("positives", "negatives"):
        for part in ("train", "validation"):
            if counts[f"{part}_{cls_name}"] < config.min_validation_per_class:
                problems.append(
                    f"{counts[f'{part}_{cls_name}']} {part} {cls_name} (need {config.min_validation_per_class})"
                )
    if problems:
        detail = ", ".join(f"{k}={v}" for k, v in counts.items())
        raise NotEnoughData(
            f"not enough data to train a {config.target} model: {'; '.join(problems)} [{detail}; "
            f"{len(train_cutoffs)} training cut-off(s)]",
            counts,
        )
    return split
