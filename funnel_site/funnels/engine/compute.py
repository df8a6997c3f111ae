"""The engine's entry points: `funnel_evaluate` (raw per-contact outcomes) and `funnel_compute`."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .columns import EventColumns
from .definition import FunnelDefinition
from .errors import FunnelTimeoutError
from .kernel_any import any_kernel
from .kernel_common import gap_seconds_into
from .kernel_lean import lean_kernel
from .kernel_ordered import ordered_kernel
from .kernel_ties import tie_hard_flags, ties_kernel
from .results import BreakdownResult, FunnelResult
from .stats import MICROS, conversion_trend, step_table, time_histogram

ORDER_MODES = {"sequential": 0, "strict": 1, "any": 2}
DEFAULT_BREAKDOWN_LIMIT = 100
MIN_CONTACTS_PER_THREAD = 20_000
DEADLINE_CHUNK_CONTACTS = 100_000  # with a deadline, it is checked before each chunk this size


@dataclass
class ContactOutcomes:
    """Raw engine output, per contact (rows align with `contact_ids`) and per attempt (totals).

    `chain[c, k]` is the index (into the input columns) of the event the contact's representative
    attempt matched at step k+1, -1 when unmatched; `furthest[c]` is the furthest step (0 = none).
    `optional_reached[k]` (0-based optional steps) is True when some non-void attempt of the contact
    includes step k+1. In `totals` mode the `attempt_*` arrays list every attempt.
    """

    contact_ids: np.ndarray
    furthest: np.ndarray
    chain: np.ndarray
    touch: np.ndarray | None
    optional_reached: dict[int, np.ndarray]
    attempt_contact: np.ndarray | None = None
    attempt_furthest: np.ndarray | None = None
    attempt_chain: np.ndarray | None = None
    seen_steps: int = 0  # bit k: some event matched step k+1


def _exclusion_arrays(definition: FunnelDefinition) -> tuple[np.ndarray, np.ndarray]:
    """Per exclusion: the bits of the 0-based steps k with a <= k+1 < b, and a-1."""
    exposed = np.zeros(len(definition.exclusions), dtype=np.int64)
    start = np.zeros(len(definition.exclusions), dtype=np.int64)
    for j, exclusion in enumerate(definition.exclusions):
        for k in range(exclusion.from_step - 1, exclusion.to_step - 1):
            exposed[j] |= 1 << k
        start[j] = exclusion.from_step - 1
    return exposed, start


def _thread_count(n_contacts: int) -> int:
    wanted = int(os.environ.get("FUNNEL_ENGINE_THREADS", os.cpu_count() or 1))
    return max(1, min(wanted, n_contacts // MIN_CONTACTS_PER_THREAD, 16))


def _run_kernel(
    definition: FunnelDefinition,
    columns: EventColumns,
    offsets: np.ndarray,
    rows: np.ndarray,
    max_rows: int,
    optional_mask: int,
    with_outputs: bool,
    deadline: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Run the kernel over contiguous chunks of contacts, one thread each (the kernels release the GIL).

    With a `deadline` (a `time.monotonic()` value) chunks are at most `DEADLINE_CHUNK_CONTACTS`
    contacts and each checks it first, raising `FunnelTimeoutError` once it has passed.
    """
    n_steps = definition.step_count
    n_contacts = offsets.shape[0] - 1
    totals = definition.count == "totals" and with_outputs
    has_breakdown = columns.breakdown_value is not None and definition.breakdown is not None and with_outputs
    last_touch = definition.breakdown is not None and definition.breakdown.attribution == "last_touch"
    out_best = np.zeros(n_contacts, dtype=np.int64)
    out_chain = np.full((n_contacts, n_steps), -1, dtype=np.int64)
    out_touch = np.full(n_contacts, -1, dtype=np.int64) if has_breakdown else np.zeros(1, dtype=np.int64)
    breakdown = columns.breakdown_value if has_breakdown else np.zeros(1, dtype=np.int64)
    window = definition.window_seconds * MICROS
    has_rows = definition.hold_constant is not None
    exposed, start = _exclusion_arrays(definition)
    entry_bits = np.uint32(0xFFFFFFFF if definition.order == "any" else 1)
    # the common query gets the lean state machine (no exclusions, holds or attempt lists)
    lean = definition.order == "sequential" and not definition.exclusions and not has_rows and not totals
    out_hard = np.zeros(n_contacts if lean else 1, dtype=np.bool_)
    threads = _thread_count(n_contacts)
    n_chunks = threads if deadline is None else max(threads, -(-n_contacts // DEADLINE_CHUNK_CONTACTS))
    chunks = np.linspace(0, n_contacts, n_chunks + 1).astype(np.int64)

    def run_chunk(c_lo: int, c_hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if deadline is not None and time.monotonic() > deadline:
            raise FunnelTimeoutError("the funnel query passed its deadline in the engine")
        capacity = 1
        if totals:
            events = slice(offsets[c_lo], offsets[c_hi])
            capacity += int(np.count_nonzero(columns.step_mask[events] & entry_bits))
        att_contact = np.zeros(capacity, dtype=np.int64)
        att_step = np.zeros(capacity, dtype=np.int64)
        att_chain = np.full((capacity, n_steps), -1, dtype=np.int64)
        touch = out_touch[c_lo:c_hi] if has_breakdown else out_touch
        if lean:
            lean_kernel(
                offsets, c_lo, c_hi, columns.ts, columns.step_mask, n_steps, window, optional_mask,
                breakdown, has_breakdown, last_touch, out_best[c_lo:c_hi], out_chain[c_lo:c_hi], touch,
                out_hard[c_lo:c_hi],
            )
            n_att = 0
        elif definition.order == "any":
            n_att = any_kernel(
                offsets,
                c_lo,
                c_hi,
                columns.ts,
                columns.step_mask,
                columns.exclusion_mask,
                rows,
                has_rows,
                max_rows,
                n_steps,
                window,
                totals,
                breakdown,
                has_breakdown,
                last_touch,
                out_best[c_lo:c_hi],
                out_chain[c_lo:c_hi],
                touch,
                att_contact,
                att_step,
                att_chain,
            )
        else:
            n_att = ordered_kernel(
                offsets,
                c_lo,
                c_hi,
                columns.ts,
                columns.step_mask,
                columns.exclusion_mask,
                rows,
                has_rows,
                max_rows,
                n_steps,
                window,
                definition.order == "strict",
                optional_mask,
                exposed,
                start,
                totals,
                breakdown,
                has_breakdown,
                last_touch,
                out_best[c_lo:c_hi],
                out_chain[c_lo:c_hi],
                touch,
                att_contact,
                att_step,
                att_chain,
            )
        return att_contact[:n_att], att_step[:n_att], att_chain[:n_att]

    bounds = [(int(chunks[x]), int(chunks[x + 1])) for x in range(len(chunks) - 1)]
    if len(bounds) == 1 or threads == 1:
        parts = [run_chunk(*bound) for bound in bounds]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            parts = list(pool.map(lambda bound: run_chunk(*bound), bounds))
    attempts = tuple(np.concatenate([part[x] for part in parts]) for x in range(3))
    mode = ORDER_MODES[definition.order]
    if lean:
        hard = np.flatnonzero(out_hard)
    else:
        hard = np.flatnonzero(
            tie_hard_flags(offsets, columns.ts, columns.step_mask, columns.exclusion_mask, mode, totals)
        )
    if hard.size:
        if deadline is not None and time.monotonic() > deadline:
            raise FunnelTimeoutError("the funnel query passed its deadline in the engine")
        # Contacts whose ties the fast kernels cannot order once for all attempts: the exact kernel.
        capacity = 1
        if totals:
            lengths = offsets[hard + 1] - offsets[hard]
            capacity += int(lengths.sum())
        att_contact = np.zeros(capacity, dtype=np.int64)
        att_step = np.zeros(capacity, dtype=np.int64)
        att_chain = np.full((capacity, n_steps), -1, dtype=np.int64)
        hard_best = np.zeros(hard.size, dtype=np.int64)
        hard_chain = np.full((hard.size, n_steps), -1, dtype=np.int64)
        hard_touch = np.full(hard.size, -1, dtype=np.int64) if has_breakdown else np.zeros(1, dtype=np.int64)
        n_att = ties_kernel(
            offsets, hard, columns.ts, columns.step_mask, columns.exclusion_mask, rows, has_rows, n_steps,
            window, mode, optional_mask, exposed, start, totals, breakdown, has_breakdown, last_touch,
            hard_best, hard_chain, hard_touch, att_contact, att_step, att_chain,
        )
        out_best[hard] = hard_best
        out_chain[hard] = hard_chain
        if has_breakdown:
            out_touch[hard] = hard_touch
        if totals:
            keep = ~np.isin(attempts[0], hard)
            merged = [np.concatenate((part[keep], extra[:n_att])) for part, extra in zip(
                attempts, (att_contact, att_step, att_chain), strict=True)]
            by_contact = np.argsort(merged[0], kind="stable")
            attempts = tuple(part[by_contact] for part in merged)
    return out_best, out_chain, (out_touch if has_breakdown else None), attempts


def funnel_evaluate(
    *,
    definition: FunnelDefinition,
    columns: EventColumns,
    check_sorted: bool = True,
    deadline: float | None = None,
) -> ContactOutcomes:
    """Validate, then run the compiled state machine over `columns`; per-contact and per-attempt outcomes."""
    definition.validate()
    columns = columns.normalised(check_sorted=check_sorted)
    n_steps = definition.step_count
    step_bits = np.uint32((1 << n_steps) - 1)
    seen = int(np.bitwise_or.reduce(columns.step_mask)) if columns.size else 0
    if seen & ~int(step_bits):
        columns = EventColumns(**{**columns.__dict__, "step_mask": columns.step_mask & step_bits})
    offsets = columns.contact_offsets()
    if definition.hold_constant is not None:
        rows, max_rows = columns.hold_rows(offsets)
    else:
        rows, max_rows = np.zeros(1, dtype=np.int64), 1
    optional_mask = sum(1 << k for k, step in enumerate(definition.steps) if step.optional)
    best, chain, touch, (att_contact, att_step, att_chain) = _run_kernel(
        definition, columns, offsets, rows, max_rows, optional_mask, True, deadline
    )
    optional_reached = {}
    for k, step in enumerate(definition.steps):
        if step.optional:
            # Some non-void attempt includes step k iff the funnel with step k required reaches it.
            forced_best, *_ = _run_kernel(
                definition, columns, offsets, rows, max_rows, optional_mask & ~(1 << k), False, deadline
            )
            optional_reached[k] = forced_best >= k + 1
    contact_ids = columns.contact[offsets[:-1]] if columns.size else np.zeros(0, dtype=np.int64)
    totals = definition.count == "totals"
    return ContactOutcomes(
        contact_ids=contact_ids,
        furthest=best,
        chain=chain,
        touch=touch,
        optional_reached=optional_reached,
        attempt_contact=att_contact if totals else None,
        attempt_furthest=att_step if totals else None,
        attempt_chain=att_chain if totals else None,
        seen_steps=seen & int(step_bits),
    )


def _reached_matrix(
    furthest: np.ndarray,
    chain: np.ndarray,
    definition: FunnelDefinition,
    optional_reached: dict[int, np.ndarray] | None,
) -> np.ndarray:
    steps = np.arange(1, definition.step_count + 1)
    reached = furthest[:, None] >= steps[None, :]
    for k, step in enumerate(definition.steps):
        if step.optional:
            # unique: any clean attempt including it; totals: the attempt itself matched it.
            reached[:, k] = optional_reached[k] if optional_reached is not None else chain[:, k] >= 0
    return reached


def _gap_seconds(chain: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Seconds from the previous matched step to step k of each entity's chain (NaN where unmatched)."""
    entities, n_steps = chain.shape
    gaps = np.empty((n_steps, entities)).T  # column-major: the step table reads whole columns
    if entities:
        gap_seconds_into(chain, ts, gaps)
    return gaps


def _breakdown_tables(
    codes: np.ndarray,
    reached: np.ndarray,
    gaps: np.ndarray,
    labels: Sequence[str],
    optional: Sequence[bool],
    value_labels: Sequence[str] | None,
    limit: int,
    warnings: list[str],
) -> list[BreakdownResult]:
    entering = reached[:, 0]
    codes, reached, gaps = codes[entering], reached[entering], gaps[entering]
    values, inverse, sizes = np.unique(codes, return_inverse=True, return_counts=True)
    ranked = np.argsort(-sizes, kind="stable")
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    tables = []
    for position in ranked[:limit]:
        members = order[bounds[position] : bounds[position + 1]]
        code = int(values[position])
        if code < 0:
            label = None
        elif value_labels is not None and code < len(value_labels):
            label = str(value_labels[code])
        else:
            label = str(code)
        tables.append(
            BreakdownResult(
                value=label,
                code=code,
                steps=step_table(
                    reached=reached[members], gap_seconds=gaps[members], labels=labels, optional=optional
                ),
            )
        )
    if len(values) > limit:
        rest = np.isin(inverse, ranked[limit:])
        warnings.append(
            f"breakdown has {len(values)} values; the smallest {len(values) - limit} are grouped as (other)"
        )
        tables.append(
            BreakdownResult(
                value="(other)",
                code=-2,
                steps=step_table(
                    reached=reached[rest], gap_seconds=gaps[rest], labels=labels, optional=optional
                ),
            )
        )
    return tables


def funnel_compute(
    *,
    definition: FunnelDefinition,
    columns: EventColumns,
    step_labels: Sequence[str] | None = None,
    check_sorted: bool = True,
    breakdown_limit: int = DEFAULT_BREAKDOWN_LIMIT,
    deadline: float | None = None,
) -> FunnelResult:
    """Run a funnel query over `columns` and build the full result (tables, histogram, trend, lists).

    `deadline` (a `time.monotonic()` value): stop with `FunnelTimeoutError` once it has passed.
    """
    started = time.perf_counter()
    outcomes = funnel_evaluate(
        definition=definition, columns=columns, check_sorted=check_sorted, deadline=deadline
    )
    engine_seconds = time.perf_counter() - started
    labels = list(step_labels) if step_labels is not None else [step.label for step in definition.steps]
    optional = [step.optional for step in definition.steps]
    n_steps = definition.step_count
    ts = np.asarray(columns.ts, dtype=np.int64)
    warnings = _input_warnings(definition, columns, labels, outcomes.seen_steps)

    contact_reached = _reached_matrix(
        outcomes.furthest, outcomes.chain, definition, outcomes.optional_reached
    )
    if definition.count == "totals":
        chain = outcomes.attempt_chain
        reached = _reached_matrix(outcomes.attempt_furthest, chain, definition, None)
        furthest = outcomes.attempt_furthest
        touch = None if outcomes.touch is None else outcomes.touch[outcomes.attempt_contact]
    else:
        chain, reached, furthest, touch = outcomes.chain, contact_reached, outcomes.furthest, outcomes.touch
    gaps = _gap_seconds(chain, ts)
    steps = step_table(reached=reached, gap_seconds=gaps, labels=labels, optional=optional)

    converted = furthest >= n_steps
    entered = chain[:, 0] >= 0
    if converted.any():
        total_seconds = (ts[chain[converted, n_steps - 1]] - ts[chain[converted, 0]]) / MICROS
    else:
        total_seconds = np.empty(0)
    histogram = time_histogram(total_seconds, definition.histogram_bins)
    trend = conversion_trend(ts[chain[entered, 0]], converted[entered], definition.trend_interval)

    breakdown = None
    if definition.breakdown is not None and touch is not None:
        breakdown = _breakdown_tables(
            touch, reached, gaps, labels, optional, columns.breakdown_labels, breakdown_limit, warnings
        )

    ids = outcomes.contact_ids
    converted_contacts = [ids[contact_reached[:, k]] for k in range(n_steps)]
    dropped_contacts = [np.zeros(0, dtype=np.int64)]
    previous_required = 0
    for k in range(1, n_steps):
        dropped_contacts.append(ids[contact_reached[:, previous_required] & ~contact_reached[:, k]])
        if not optional[k]:
            previous_required = k
    return FunnelResult(
        steps=steps,
        count_mode=definition.count,
        order=definition.order,
        window_seconds=definition.window_seconds,
        histogram=histogram,
        trend=trend,
        trend_interval=definition.trend_interval,
        breakdown=breakdown,
        warnings=warnings,
        converted_contacts=converted_contacts,
        dropped_contacts=dropped_contacts,
        engine_seconds=engine_seconds,
    )


def _input_warnings(
    definition: FunnelDefinition, columns: EventColumns, labels: Sequence[str], seen: int
) -> list[str]:
    warnings = []
    for k, label in enumerate(labels):
        if not (seen >> k) & 1:
            warnings.append(f"step {k + 1} ({label}) matched no events")
    if definition.hold_constant is not None and columns.hold_value is not None and columns.size:
        missing = int(
            np.count_nonzero((np.asarray(columns.step_mask) != 0) & (np.asarray(columns.hold_value) < 0))
        )
        if missing:
            warnings.append(
                f"{missing} step events lack {definition.hold_constant!r} and were ignored (hold-constant)"
            )
    if definition.breakdown is not None and columns.breakdown_value is None:
        warnings.append("breakdown requested but no breakdown values were provided")
    return warnings
