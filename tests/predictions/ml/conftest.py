"""Small event frames built in the tests (the product's synthetic generator lives elsewhere)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from predictions.ml.data import EventFrame

DAY = 86400
HORIZON = 7 * DAY
T0 = 1_699_833_600  # a Monday 00:00 UTC
STAGE_OF = {"pv": "interest", "cart": "consideration", "email_open": "awareness", "buy": "purchase"}


def order_frame(n_contacts: int = 600, periods: int = 5, seed: int = 0) -> EventFrame:
    """Weekly periods where only ORDER carries signal.

    Each contact and week has one cart, one email_open and four page views; a purchase follows in the
    next week (p=0.95) iff the email_open came within 2 days after the cart, else p=0.05. Counts,
    recency and values are identical in both cases, so aggregates cannot see it; a sequence model can.
    A sentinel event makes the newest event end exactly at a week boundary so cut-offs align.
    """
    rng = np.random.default_rng(seed)
    contact, ts, name = [], [], []

    def add(c: int, t: float, n: str) -> None:
        contact.append(c), ts.append(int(t)), name.append(n)

    for c in range(n_contacts):
        buys_next = False
        for p in range(periods):
            start = T0 + p * HORIZON
            if buys_next:
                add(c, start + rng.uniform(0.2, 2.0) * DAY, "buy")
            cart = start + rng.uniform(1.5, 3.5) * DAY
            follows = rng.random() < 0.5
            add(c, cart, "cart")
            add(
                c,
                cart + rng.uniform(0.1, 1.5) * DAY if follows else cart - rng.uniform(0.1, 1.4) * DAY,
                "email_open",
            )
            for _ in range(3):
                add(c, start + rng.uniform(0.05, 6.5) * DAY, "pv")
            add(c, start + HORIZON - rng.uniform(0.05, 0.3) * DAY, "pv")
            buys_next = rng.random() < (0.95 if follows else 0.05)
    add(0, T0 + periods * HORIZON - 1, "pv")
    stage = [STAGE_OF[n] for n in name]
    value = [49.0 if n == "buy" else np.nan for n in name]
    channel = ["email" if n == "email_open" else "web" for n in name]
    return EventFrame.from_arrays(contact, ts, name, stage, None, None, channel, value)


def random_frame(n_contacts: int = 400, days: int = 42, seed: int = 1) -> EventFrame:
    """Random activity where purchase chances rise with recent carts (an aggregate signal)."""
    rng = np.random.default_rng(seed)
    records = []
    for c in range(n_contacts):
        activity = rng.uniform(0.3, 3.0)
        for t in np.sort(rng.uniform(0, days * DAY, rng.poisson(activity * days / 2) + 1)):
            n = rng.choice(["pv", "cart", "email_open", "buy"], p=[0.5, 0.2, 0.2, 0.1])
            records.append(
                {
                    "contact": c,
                    "ts": T0 + int(t),
                    "name": str(n),
                    "stage": STAGE_OF[str(n)],
                    "campaign": rng.choice(["", "spring", "summer"]),
                    "channel": "web",
                    "value": float(rng.uniform(5, 90)) if n == "buy" else None,
                }
            )
    return EventFrame.from_records(records)


@pytest.fixture(scope="session")
def small_frame() -> EventFrame:
    return random_frame()


def order_config(**changes):
    """A small, fast configuration for the weekly order frame."""
    from predictions.ml.config import TrainConfig

    base = dict(
        arch="lstm",  # the network and the baselines: the order frame is where sequences must win
        unit_choices=(32,),
        horizon_seconds=HORIZON,
        lookback_seconds=HORIZON,
        n_cutoffs=3,
        max_events=16,
        units=32,
        epochs=6,
        batch_size=64,
        patience=2,
        learning_rate=0.005,
        seed=7,
    )
    base.update(changes)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def trained_order_model(tmp_path_factory):
    """One LSTM trained on the order frame, shared by the trainer/scorer/explain tests."""
    from predictions.ml.trainer import train_model

    frame = order_frame()
    epochs = []
    directory = tmp_path_factory.mktemp("artifacts") / "order-lstm"
    result = train_model(
        frame, order_config(), artifact_dir=directory, progress=lambda e, m: epochs.append((e, m))
    )
    return frame, result, directory, epochs
