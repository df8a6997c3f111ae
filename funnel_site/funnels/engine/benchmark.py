"""Time the engine on synthetic columns: `python -m funnel_site.funnels.engine.benchmark --help`.

Generates `--events` events of `--contacts` contacts (names drawn with a funnel-like skew), runs a
sequential funnel of `--steps` steps, and, with `--duckdb`, checks the counts against DuckDB.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from .columns import EventColumns
from .compute import funnel_compute
from .parsing import funnel_definition_from_strings

NAMES = [f"e{k}" for k in range(24)]


def synthetic_columns(
    *, events: int, contacts: int, steps: int, seed: int = 7
) -> tuple[EventColumns, np.ndarray]:
    """Sorted synthetic columns and the name code of each event (step k = name k)."""
    rng = np.random.default_rng(seed)
    contact = np.sort(rng.integers(0, contacts, size=events, dtype=np.int64))
    weights = np.array([0.5**k for k in range(steps)] + [0.3] * (len(NAMES) - steps))
    name = rng.choice(len(NAMES), size=events, p=weights / weights.sum()).astype(np.int64)
    # each contact is active over ~10 days from its own start; later steps tend to come later
    start = rng.integers(0, 50 * 86_400, size=contacts, dtype=np.int64)[contact]
    offset = (
        rng.integers(0, 10 * 86_400, size=events, dtype=np.int64) + np.where(name < steps, name, 0) * 86_400
    )
    ts = (start + offset) * 1_000_000 + 1_700_000_000_000_000
    order = np.lexsort((ts, contact))
    contact, ts, name = contact[order], ts[order], name[order]
    lookup = np.zeros(len(NAMES), dtype=np.uint32)
    lookup[:steps] = 1 << np.arange(steps, dtype=np.uint32)
    return EventColumns(contact=contact, ts=ts, step_mask=lookup[name]), name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duckdb", action="store_true", help="also run the DuckDB reference and compare")
    args = parser.parse_args()
    columns, name = synthetic_columns(events=args.events, contacts=args.contacts, steps=args.steps)
    definition = funnel_definition_from_strings(steps=NAMES[: args.steps], window="14d")
    funnel_compute(definition=definition, columns=columns)  # compile / warm up
    engine, total = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        result = funnel_compute(definition=definition, columns=columns)
        total.append(time.perf_counter() - started)
        engine.append(result.engine_seconds)
    report = {
        "events": args.events,
        "contacts": args.contacts,
        "steps": args.steps,
        "counts": [step.count for step in result.steps],
        "engine_seconds_median": float(np.median(engine)),
        "with_result_tables_seconds_median": float(np.median(total)),
    }
    if args.duckdb:
        import duckdb
        import pandas as pd

        frame = pd.DataFrame({"contact": columns.contact, "ts": columns.ts, "name": np.array(NAMES)[name]})
        connection = duckdb.connect()
        connection.register("events", frame)
        from .duckdb_reference import duckdb_sequential_counts

        started = time.perf_counter()
        reference = duckdb_sequential_counts(
            connection, "events", [[n] for n in NAMES[: args.steps]], 14 * 86_400
        )
        report["duckdb_seconds"] = time.perf_counter() - started
        report["duckdb_counts"] = reference
        report["same_counts"] = reference == report["counts"]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
