"""The start-up warm-up reaches every kernel with the argument types queries use, so no query compiles."""

from __future__ import annotations

import numpy as np

from funnel_site.funnels.engine import (
    Breakdown,
    EventColumns,
    EventMatcher,
    Exclusion,
    FunnelDefinition,
    FunnelStep,
    funnel_compute,
    kernel_any,
    kernel_common,
    kernel_lean,
    kernel_matching,
    kernel_ordered,
    kernel_ties,
)
from funnel_site.funnels.engine.warmup import warm_kernels

SECOND = 1_000_000
ENTRY_KERNELS = (
    "kernel_lean.lean_kernel", "kernel_ordered.ordered_kernel", "kernel_any.any_kernel", "kernel_ties.ties_kernel",
    "kernel_ties.tie_hard_flags", "kernel_common.hold_rows_into", "kernel_common.gaps_by_step",
    "kernel_common.gap_seconds_into",
)


def _dispatchers() -> dict[str, object]:
    found = {}
    for module in (kernel_any, kernel_common, kernel_lean, kernel_matching, kernel_ordered, kernel_ties):
        for name, value in vars(module).items():
            if hasattr(value, "signatures") and hasattr(value, "py_func"):
                found[f"{module.__name__}.{name}"] = value
    return found


def _queries(readonly: bool):
    rng = np.random.default_rng(3)
    n = 400
    contact = np.sort(rng.integers(0, 40, n)).astype(np.int64)
    ts = (rng.integers(0, 30, n) * SECOND).astype(np.int64)
    order = np.lexsort((ts, contact))
    contact, ts = contact[order], ts[order]
    if readonly:  # what a memory-mapped read model would hand out
        contact.setflags(write=False)
        ts.setflags(write=False)
    names = rng.integers(0, 6, n)
    table = np.array([1, 2, 4, 8, 5, 0], dtype=np.uint32)  # name 4 matches steps 1 and 3
    steps = tuple(FunnelStep(matcher=EventMatcher(events=(f"s{k}",))) for k in range(4))
    optional = (steps[0], FunnelStep(matcher=steps[1].matcher, optional=True), *steps[2:])
    exclusion = (Exclusion(matcher=EventMatcher(events=("x",)), from_step=1, to_step=4),)
    columns = EventColumns(
        contact=contact, ts=ts, step_mask=table[names], exclusion_mask=(names == 5).astype(np.uint32),
        hold_value=rng.integers(-1, 3, n), breakdown_value=rng.integers(-1, 3, n), breakdown_labels=["a", "b", "c"],
    )
    for order_name in ("sequential", "strict", "any"):
        for count in ("unique", "totals"):
            for exclusions in ((), exclusion):
                for hold in (None, "product"):
                    yield FunnelDefinition(
                        steps=optional if order_name != "any" else steps, order=order_name, count=count,
                        exclusions=exclusions, hold_constant=hold, breakdown=Breakdown(field="campaign"),
                    ), columns


def test_no_query_compiles_after_the_warm_up():
    warm_kernels()
    dispatchers = _dispatchers()
    assert "funnel_site.funnels.engine.kernel_ties.ties_kernel" in dispatchers
    before = {name: len(d.signatures) for name, d in dispatchers.items()}
    for readonly in (False, True):
        for definition, columns in _queries(readonly):
            funnel_compute(definition=definition, columns=columns)
    after = {name: len(d.signatures) for name, d in dispatchers.items()}
    assert after == before
    # writable and read-only inputs share one specialisation of each kernel called from Python
    # (what a process loads from the disk cache; helpers compiled into them may have several)
    entry = {f"funnel_site.funnels.engine.{name}" for name in ENTRY_KERNELS}
    assert entry <= set(after)
    assert {name: n for name, n in after.items() if name in entry and n != 1} == {}
