"""Compile (or load from numba's on-disk cache) every kernel before a user's first query.

`warm_kernels()` runs a few tiny funnels that reach every compiled function with the argument
types production uses: the lean, ordered, any-order and tie kernels. Every input array reaches
them read-only (`columns.frozen`: a mapped read model hands out read-only arrays, other callers
writable ones, and numba would compile and load each kind separately), so one specialisation per
kernel is all there is to load. With the kernels cached on disk (`NUMBA_CACHE_DIR`, shared by every
process) this takes about a second; the first time, it compiles them (tens of seconds) — which is
why processes do it at start, off the request path (`funnels.apps.FunnelsConfig.ready`).
"""

from __future__ import annotations

import time

import numpy as np

from .columns import EventColumns
from .compute import funnel_compute
from .definition import Breakdown, EventMatcher, Exclusion, FunnelDefinition, FunnelStep

SECOND = 1_000_000


def _definitions() -> list[FunnelDefinition]:
    steps = tuple(FunnelStep(matcher=EventMatcher(events=(f"s{k}",))) for k in range(3))
    optional = (steps[0], FunnelStep(matcher=steps[1].matcher, optional=True), steps[2])
    exclusion = (Exclusion(matcher=EventMatcher(events=("x",)), from_step=1, to_step=3),)
    breakdown = Breakdown(field="campaign")
    return [
        FunnelDefinition(steps=optional, breakdown=breakdown),  # lean
        FunnelDefinition(steps=steps, order="strict", exclusions=exclusion, count="totals", breakdown=breakdown),
        FunnelDefinition(steps=steps, order="any", exclusions=exclusion, breakdown=breakdown),
        FunnelDefinition(steps=steps, hold_constant="product"),  # the per-contact value rows
    ]


def _columns() -> EventColumns:
    """Two contacts with equal timestamps, an event matching two steps and an exclusion event."""
    contact = np.array([1, 1, 1, 1, 2, 2, 2], dtype=np.int64)
    ts = np.array([0, 1, 1, 2, 0, 0, 3], dtype=np.int64) * SECOND
    step_mask = np.array([1, 2, 5, 4, 1, 2, 4], dtype=np.uint32)
    exclusion_mask = np.array([0, 0, 0, 0, 0, 1, 0], dtype=np.uint32)
    ts.setflags(write=False)  # as the read model hands it out (the engine freezes the others)
    return EventColumns(
        contact=contact,
        ts=ts,
        step_mask=step_mask,
        exclusion_mask=exclusion_mask,
        hold_value=np.array([0, 0, 1, 0, -1, 2, 2], dtype=np.int64),
        breakdown_value=np.array([0, -1, 1, 0, 1, 0, -1], dtype=np.int64),
        breakdown_labels=["a", "b"],
    )


def warm_kernels() -> float:
    """Run every kernel once; the seconds it took (compiling or loading the disk cache)."""
    started = time.perf_counter()
    # the lean kernel (the first definition) is what a first query most likely waits for
    columns = _columns()
    for definition in _definitions():
        funnel_compute(definition=definition, columns=columns)
    return time.perf_counter() - started
