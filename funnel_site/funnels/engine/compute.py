"""The engine's entry points: `funnel_evaluate` (raw per-contact outcomes) and `funnel_compute`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .columns import EventColumns, frozen
from .definition import FunnelDefinition
from .dispatch import run_kernels
from .kernel_common import gap_seconds_into, gaps_by_step
from .results import BreakdownResult, FunnelResult, StepContacts
from .stats import MICROS, conversion_trend, step_table, time_histogram

DEFAULT_BREAKDOWN_LIMIT = 100
PARALLEL_RESULT_ENTITIES = 100_000  # below this, a thread costs more than it saves


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
        columns = EventColumns(**{**columns.__dict__, "step_mask": frozen(columns.step_mask & step_bits)})
    offsets = columns.contact_offsets()
    if definition.hold_constant is not None:
        rows, max_rows = columns.hold_rows(offsets)
    else:
        rows, max_rows = frozen(np.zeros(1, dtype=np.int64)), 1
    optional_mask = sum(1 << k for k, step in enumerate(definition.steps) if step.optional)
    best, chain, touch, (att_contact, att_step, att_chain) = run_kernels(
        definition, columns, offsets, rows, max_rows, optional_mask, True, deadline
    )
    optional_reached = {}
    for k, step in enumerate(definition.steps):
        if step.optional:
            # Some non-void attempt includes step k iff the funnel with step k required reaches it.
            forced_best, *_ = run_kernels(
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
    # column-major: every later use (counts, contact lists, breakdown members) reads whole columns
    reached = np.empty((furthest.shape[0], definition.step_count), dtype=bool, order="F")
    for k, step in enumerate(definition.steps):
        if step.optional:
            # unique: any clean attempt including it; totals: the attempt itself matched it.
            reached[:, k] = optional_reached[k] if optional_reached is not None else chain[:, k] >= 0
        else:
            np.greater_equal(furthest, k + 1, out=reached[:, k])
    return reached


def _gap_columns(chain: np.ndarray, ts: np.ndarray) -> list[np.ndarray]:
    """Per step, the gaps (seconds from the previous matched step) of the chains matching it."""
    n_steps = chain.shape[1]
    offsets = np.zeros(n_steps + 1, dtype=np.int64)
    gaps_by_step(chain, ts, offsets, np.empty(0))
    offsets = np.cumsum(offsets)
    values = np.empty(int(offsets[-1]))
    if values.size:
        gaps_by_step(chain, ts, offsets, values)
    return [values[offsets[k] : offsets[k + 1]] for k in range(n_steps)]


def _gap_seconds(chain: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Seconds from the previous matched step to step k of each entity's chain (NaN where unmatched)."""
    entities, n_steps = chain.shape
    by_column = np.empty((n_steps, entities))  # its transpose is column-major: the step table reads columns
    if entities:
        gap_seconds_into(chain, ts, by_column)
    return by_column.T


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
    ts = frozen(np.ascontiguousarray(columns.ts, dtype=np.int64))  # as the kernels saw it: one specialisation
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
    def step_rows() -> list:
        return step_table(reached=reached, gap_columns=_gap_columns(chain, ts), labels=labels, optional=optional)

    # The step table (compiled gaps, percentiles: the GIL is released) runs beside the histogram
    # and trend: on 10 M events each is ~40 ms in one thread, the largest costs after the kernels.
    pool = ThreadPoolExecutor(max_workers=1) if chain.shape[0] >= PARALLEL_RESULT_ENTITIES else None
    steps_later = pool.submit(step_rows) if pool is not None else None

    converted = furthest >= n_steps
    entered = np.flatnonzero(furthest > 0)  # every entity with a step-1 event in its chain
    # a column of the chain, then `take`: 2-d fancy indexing was ~40 % slower at 1 M entities
    first_events = chain[:, 0]
    if converted.any():
        total_seconds = (ts.take(chain[:, n_steps - 1][converted]) - ts.take(first_events[converted])) / MICROS
    else:
        total_seconds = np.empty(0)
    histogram = time_histogram(total_seconds, definition.histogram_bins)
    trend = conversion_trend(ts.take(first_events.take(entered)), converted[entered], definition.trend_interval)
    if pool is not None:
        steps = steps_later.result()
        pool.shutdown()
    else:
        steps = step_rows()

    breakdown = None
    if definition.breakdown is not None and touch is not None:
        gaps = _gap_seconds(chain, ts)
        breakdown = _breakdown_tables(
            touch, reached, gaps, labels, optional, columns.breakdown_labels, breakdown_limit, warnings
        )

    ids = outcomes.contact_ids
    converted_contacts = StepContacts(ids, contact_reached, optional, dropped=False)
    dropped_contacts = StepContacts(ids, contact_reached, optional, dropped=True)
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
