"""The fair baselines `benchmarks.funnel` prints beside the product: a bare compiled state machine
and DuckDB, both on exactly the rows the engine reads for the 5-step funnel.

The bare state machine is the speed limit of any exact funnel over contact-sorted arrays: per
contact and step only the latest start that reached the step, no chain, no outputs beyond the
counts, no breakdown, no ties beyond visiting a tie group step by step (right for single-step
masks, which the benchmark's funnel has); an untied single-step event goes straight to its step,
and it runs one thread per core over chunks of contacts, like the engine. DuckDB runs `duckdb_reference`'s ASOF-join query, the
way an expert would write the funnel in SQL.
"""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

NONE = -(1 << 62)


@njit(cache=True, nogil=True)
def bare_state_machine(offsets, ts, step_mask, n_steps, window, furthest_counts):
    """furthest_counts[k] += contacts whose furthest step is k (unique, sequential, no extras)."""
    start = np.empty(n_steps, dtype=np.int64)
    for c in range(offsets.shape[0] - 1):
        lo = offsets[c]
        hi = offsets[c + 1]
        for k in range(n_steps):
            start[k] = NONE
        best = 0
        i = lo
        while i < hi:
            g = i + 1
            while g < hi and ts[g] == ts[i]:
                g += 1
            t = ts[i]
            m = np.int64(step_mask[i])
            if g == i + 1 and m & (m - 1) == 0:  # one event of one step (or none): straight to it
                if m != 0:
                    k = 0
                    while (m >> k) > 1:
                        k += 1
                    if k == 0:
                        start[0] = t
                        best = max(best, 1)
                    elif start[k - 1] != NONE and t - start[k - 1] <= window and start[k - 1] > start[k]:
                        start[k] = start[k - 1]
                        best = max(best, k + 1)
                i = g
                continue
            for k in range(n_steps):
                for e in range(i, g):
                    if (np.int64(step_mask[e]) >> k) & 1:
                        if k == 0:
                            start[0] = t
                            best = max(best, 1)
                        elif start[k - 1] != NONE and t - start[k - 1] <= window and start[k - 1] > start[k]:
                            start[k] = start[k - 1]
                            best = max(best, k + 1)
            i = g
        furthest_counts[best] += 1


def bare_counts(offsets: np.ndarray, ts: np.ndarray, step_mask: np.ndarray, n_steps: int, window_us: int):
    """Per-step unique counts of the bare state machine, its wall seconds and CPU seconds.

    Run over contiguous chunks of contacts in one thread per core, as the engine runs (the same
    concurrency: a single-threaded limit would flatter the engine's ratio on a multi-core machine).
    """
    threads = max(1, min(os.cpu_count() or 1, 16, (offsets.shape[0] - 1) // 20_000))
    bounds = np.linspace(0, offsets.shape[0] - 1, threads + 1).astype(np.int64)
    parts = np.zeros((threads, n_steps + 1), dtype=np.int64)

    def run(x: int) -> None:
        bare_state_machine(offsets[bounds[x] : bounds[x + 1] + 1], ts, step_mask, n_steps, window_us, parts[x])

    started, cpu_started = time.perf_counter(), time.process_time()
    if threads == 1:
        run(0)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(run, range(threads)))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    furthest = parts.sum(axis=0)
    return [int(x) for x in np.cumsum(furthest[::-1])[::-1][1:]], seconds, cpu


def bare_median(columns, n_steps: int, window_us: int, repeat: int) -> dict:
    """The bare state machine over the engine's input (`EventColumns`), compiled first; median of runs."""
    offsets = columns.contact_offsets()
    bare_counts(offsets[:2], columns.ts, columns.step_mask, n_steps, window_us)  # compile / load
    runs = [bare_counts(offsets, columns.ts, columns.step_mask, n_steps, window_us) for _ in range(repeat)]
    return {"seconds": statistics.median(run[1] for run in runs), "min_seconds": min(run[1] for run in runs),
            "cpu_seconds": statistics.median(run[2] for run in runs), "counts": runs[-1][0]}


def duckdb_median(contact: np.ndarray, ts: np.ndarray, names: np.ndarray, steps: list[str], window_s: int,
                  repeat: int) -> dict:
    """DuckDB's ASOF-join funnel over (contact, ts, name) rows; median seconds of the query alone."""
    import duckdb
    import pandas as pd

    from funnel_site.funnels.engine.duckdb_reference import duckdb_sequential_counts

    connection = duckdb.connect()
    connection.execute(f"SET threads TO {os.cpu_count() or 1}")
    connection.execute("SET enable_progress_bar = false")
    connection.register("frame", pd.DataFrame({"contact": contact, "ts": ts, "name": names}))
    connection.execute("CREATE TABLE events AS SELECT contact, ts, CAST(name AS VARCHAR) AS name FROM frame")
    times = []
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        counts = duckdb_sequential_counts(connection, "events", [[n] for n in steps], window_s)
        times.append(time.perf_counter() - started)
    connection.close()
    return {"seconds": statistics.median(times), "counts": counts}
