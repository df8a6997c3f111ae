"""A DuckDB reference for unique, sequential funnels: the SQL an expert would write.

For each step-1 event as a start, step k is the earliest step-k event at or after the event that
matched step k-1 — one ASOF JOIN per step (a sort-merge, not a join of every start with every
later event) — kept when it lies within the window of the start. A contact reaches k when some
start does. With steps of disjoint event names this greedy choice is optimal for a fixed start,
and `>=` lets an event tied with step k-1's take step k, as DESIGN's tie rule says. Steps must use
disjoint event names (an ASOF join cannot keep one event from serving two steps of one attempt);
exclusions, hold-constant and optional steps are out of its scope.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _quote_list(names: Sequence[str]) -> str:
    return ", ".join("'" + name.replace("'", "''") + "'" for name in names)


def duckdb_sequential_counts(
    connection: Any,
    table: str,
    steps: Sequence[Sequence[str]],
    window_seconds: int,
    *,
    since_us: int | None = None,
    until_us: int | None = None,
) -> list[int]:
    """Unique per-step counts of a sequential funnel over `table(contact BIGINT, ts BIGINT µs, name VARCHAR)`."""
    flat = [name for names in steps for name in names]
    if len(flat) != len(set(flat)):
        raise ValueError("the DuckDB reference needs steps with disjoint event names")
    if len(steps) < 2:
        raise ValueError("a funnel has at least two steps")
    window = int(window_seconds) * 1_000_000
    where = [f"name IN ({_quote_list(flat)})"]
    if since_us is not None:
        where.append(f"ts >= {int(since_us)}")
    if until_us is not None:
        where.append(f"ts < {int(until_us)}")
    step_case = " ".join(f"WHEN name IN ({_quote_list(names)}) THEN {k}" for k, names in enumerate(steps))
    ctes = [
        f"e AS (SELECT contact, ts, CASE {step_case} END AS step FROM {table} WHERE {' AND '.join(where)})",
        "s0 AS (SELECT contact, ts AS t0, ts AS t FROM e WHERE step = 0)",
    ]
    for k in range(1, len(steps)):
        ctes.append(f"e{k} AS (SELECT contact, ts FROM e WHERE step = {k})")
        # the earliest step-k event at or after step k-1's (ASOF picks the nearest ts >= p.t)
        ctes.append(
            f"s{k} AS (SELECT p.contact, p.t0, x.ts AS t FROM s{k - 1} p ASOF JOIN e{k} x "
            f"ON x.contact = p.contact AND x.ts >= p.t WHERE x.ts <= p.t0 + {window})"
        )
    counts = ", ".join(f"(SELECT count(DISTINCT contact) FROM s{k})" for k in range(len(steps)))
    sql = f"WITH {', '.join(ctes)} SELECT {counts}"
    return [int(value) for value in connection.execute(sql).fetchone()]
