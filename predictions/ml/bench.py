"""Training benchmark on random sequences: ``python -m predictions.ml.bench --contacts 100000 --events 64``.

Generates contacts with ``--events`` events each before the training cut-off, runs one full
``train_model`` (features, baselines, network, calibration, artifact) and prints wall time,
training throughput and peak memory as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time

import numpy as np

from .config import TrainConfig
from .data import EventFrame

DAY = 86400
NAMES = np.array(["pv", "cart", "email_open", "email_click", "checkout", "buy"], dtype=object)
STAGES = np.array(
    ["interest", "consideration", "awareness", "awareness", "consideration", "purchase"], dtype=object
)


def random_frame(contacts: int, events: int, seed: int = 0) -> EventFrame:
    """``events`` events per contact in the 8 weeks before the training cut-off, plus two more weeks."""
    rng = np.random.default_rng(seed)
    per_contact = int(events * 10 / 8)  # 8 weeks of history + 2 weeks for training/validation horizons
    total = contacts * per_contact
    contact = np.repeat(np.arange(contacts, dtype=np.int64), per_contact)
    propensity = rng.beta(1, 25, contacts)  # chance that an event is a purchase
    is_buy = rng.random(total) < np.repeat(propensity, per_contact)
    kind = np.where(is_buy, 5, rng.choice(5, total, p=[0.5, 0.2, 0.15, 0.1, 0.05]))
    start = 1_700_000_000
    ts = start + np.sort(rng.integers(0, 70 * DAY, (contacts, per_contact)), axis=1).reshape(-1)
    value = np.where(kind == 5, rng.gamma(2.0, 30.0, total), np.nan)
    channel = np.where(kind >= 2, "email", "web").astype(object)
    return EventFrame(
        contact, ts, NAMES[kind], STAGES[kind], kind == 5, np.full(total, "", object), channel, value
    )


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=64)
    parser.add_argument("--arch", default="lstm", help="a candidate, or auto (the whole tournament)")
    parser.add_argument("--epochs", type=int, default=None, help="default: TrainConfig's")
    parser.add_argument("--units", type=int, default=None, help="default: TrainConfig's")
    parser.add_argument("--batch-size", type=int, default=None, help="default: TrainConfig's")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from .trainer import train_model  # imported late: TensorFlow start-up is not data generation

    started = time.monotonic()
    frame = random_frame(args.contacts, args.events, args.seed)
    generated = time.monotonic() - started
    overrides = {
        k: v
        for k, v in {"epochs": args.epochs, "units": args.units, "batch_size": args.batch_size}.items()
        if v
    }
    config = TrainConfig(
        arch=args.arch,
        max_events=args.events,
        horizon_seconds=7 * DAY,
        lookback_seconds=28 * DAY,
        n_cutoffs=1,
        seed=args.seed,
        time_limit_seconds=None,
        **overrides,
    )
    with tempfile.TemporaryDirectory() as directory:
        started = time.monotonic()
        result = train_model(frame, config, artifact_dir=os.path.join(directory, "model"))
        wall = time.monotonic() - started
    train_samples = result.counts["train_positives"] + result.counts["train_negatives"]
    figures = {
        "contacts": args.contacts,
        "events_in_frame": len(frame),
        "max_events": args.events,
        "arch": result.arch,
        "units": config.units,
        "batch_size": config.batch_size,
        "train_sequences": train_samples,
        "validation_sequences": result.counts["validation_positives"] + result.counts["validation_negatives"],
        "epochs_trained": result.epochs_trained,
        "stopped_reason": result.stopped_reason,
        "generate_seconds": round(generated, 1),
        "train_wall_seconds": round(wall, 1),
        "phase_seconds": result.timings,
        "candidate_seconds": result.timings["candidates"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "roc_auc": {c["name"]: c.get("roc_auc") for c in result.scoreboard["candidates"]},
        "served": result.arch,
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
