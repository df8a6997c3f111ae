"""An obviously-correct, exponential funnel evaluator: enumerate every candidate attempt.

It restates the rules of the engine's README directly on tuples of sequence positions, with no
state machine, so the property tests can compare the two on small random logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import numpy as np

from funnel_site.funnels.engine import FunnelDefinition


@dataclass
class Event:
    index: int  # into the input columns
    ts: int
    mask: int  # step bits, already cleared when hold-constant is on and the value is missing
    excl: int
    hold: int
    breakdown: int


def _lowest(mask: int) -> int:
    return (mask & -mask).bit_length() - 1 if mask else 32


def contact_logs(columns, definition: FunnelDefinition) -> dict[int, list[Event]]:
    """Each contact's events in sequence order: ts, then the lowest matched step, then input order."""
    hold_on = definition.hold_constant is not None
    logs: dict[int, list[Event]] = {}
    for i in range(len(columns.contact)):
        hold = int(columns.hold_value[i]) if columns.hold_value is not None else 0
        mask = int(columns.step_mask[i]) & ((1 << definition.step_count) - 1)
        if hold_on and hold < 0:
            mask = 0
        excl = int(columns.exclusion_mask[i]) if columns.exclusion_mask is not None else 0
        breakdown = int(columns.breakdown_value[i]) if columns.breakdown_value is not None else -1
        logs.setdefault(int(columns.contact[i]), []).append(
            Event(i, int(columns.ts[i]), mask, excl, hold, breakdown)
        )
    for events in logs.values():
        events.sort(key=lambda e: (e.ts, _lowest(e.mask), e.index))
    return logs


def _window(definition: FunnelDefinition) -> int:
    return definition.window_seconds * 1_000_000


def _same_hold(definition: FunnelDefinition, log: list[Event], positions) -> bool:
    if definition.hold_constant is None:
        return True
    return len({log[q].hold for q in positions}) == 1


def ordered_tuples(definition: FunnelDefinition, log: list[Event], start: int = 0):
    """Every candidate attempt as a tuple of (step, position), steps increasing, from `start` on."""
    n_steps = definition.step_count
    optional = [step.optional for step in definition.steps]
    strict = definition.order == "strict"
    window = _window(definition)

    def extend(attempt):
        yield attempt
        last_step, last_q = attempt[-1]
        first_ts = log[attempt[0][1]].ts
        for step in range(last_step + 1, n_steps):
            if any(not optional[s] for s in range(last_step + 1, step)):
                break
            for q in range(last_q + 1, len(log)):
                if strict and q != last_q + 1:
                    break
                if (
                    (log[q].mask >> step) & 1
                    and log[q].ts - first_ts <= window
                    and _same_hold(definition, log, [attempt[0][1], q])
                ):
                    yield from extend(attempt + ((step, q),))

    for q in range(start, len(log)):
        if log[q].mask & 1:
            yield from extend(((0, q),))


def ordered_void(definition: FunnelDefinition, log: list[Event], attempt) -> bool:
    """The exclusion rule on one ordered attempt."""
    first_ts = log[attempt[0][1]].ts
    for j, exclusion in enumerate(definition.exclusions):
        a0, b0 = exclusion.from_step - 1, exclusion.to_step - 1
        entered = next((q for step, q in attempt if step >= a0), None)
        left = next((q for step, q in attempt if step >= b0), None)
        if entered is None:
            continue
        for p, event in enumerate(log):
            if not (event.excl >> j) & 1 or p <= entered:
                continue
            if left is not None and p < left:
                return True
            if left is None and event.ts - first_ts <= _window(definition):
                return True
    return False


def _injective(definition: FunnelDefinition, log: list[Event], positions) -> bool:
    steps = range(definition.step_count)
    for chosen in permutations(steps, len(positions)):
        if all((log[q].mask >> s) & 1 for q, s in zip(positions, chosen, strict=True)):
            return True
    return False


def any_tuples(definition: FunnelDefinition, log: list[Event], start: int = 0):
    """Every candidate any-order attempt as increasing positions matching distinct steps."""
    window = _window(definition)
    n_steps = definition.step_count

    def extend(positions):
        yield positions
        if len(positions) == n_steps:
            return
        for q in range(positions[-1] + 1, len(log)):
            if log[q].mask and log[q].ts - log[positions[0]].ts <= window:
                candidate = positions + (q,)
                if _same_hold(definition, log, candidate) and _injective(definition, log, candidate):
                    yield from extend(candidate)

    for q in range(start, len(log)):
        if log[q].mask:
            yield from extend((q,))


def any_void(definition: FunnelDefinition, log: list[Event], positions) -> bool:
    """Any order: exclusions span all steps; between first and last, or after the first if partial."""
    if not definition.exclusions:
        return False
    complete = len(positions) == definition.step_count
    first = positions[0]
    for p, event in enumerate(log):
        if not event.excl or p <= first:
            continue
        if complete and p < positions[-1]:
            return True
        if not complete and event.ts - log[first].ts <= _window(definition):
            return True
    return False


def clean_attempts(definition: FunnelDefinition, log: list[Event], start: int = 0):
    """(reach, positions, steps) of every non-void attempt from `start` on."""
    if definition.order == "any":
        for positions in any_tuples(definition, log, start):
            if not any_void(definition, log, positions):
                yield len(positions), positions, tuple(range(len(positions)))
    else:
        for attempt in ordered_tuples(definition, log, start):
            if not ordered_void(definition, log, attempt):
                steps = tuple(step for step, _ in attempt)
                yield steps[-1] + 1, tuple(q for _, q in attempt), steps


@dataclass
class BruteOutcome:
    furthest: int
    optional_reached: dict[int, bool]
    attempts: list[int]
    touch: int


def brute_contact(definition: FunnelDefinition, log: list[Event]) -> BruteOutcome:
    """The furthest step, optional steps included by some clean attempt, totals attempts, touch value."""
    attempts = list(clean_attempts(definition, log))
    furthest = max((reach for reach, _, _ in attempts), default=0)
    optional_reached = {
        k: any(k in steps for _, _, steps in attempts)
        for k, step in enumerate(definition.steps)
        if step.optional
    }
    totals = []
    cursor = 0
    while True:
        found = list(clean_attempts(definition, log, cursor))
        complete = [positions[-1] for reach, positions, _ in found if reach == definition.step_count]
        if complete:
            totals.append(definition.step_count)
            cursor = min(complete) + 1
            continue
        best = max((reach for reach, _, _ in found), default=0)
        if best:
            totals.append(best)
        break
    first_bits = -1 if definition.order == "any" else 1
    with_value = [e for e in log if e.breakdown >= 0 and e.mask & first_bits]
    if definition.breakdown is not None and definition.breakdown.attribution == "last_touch":
        with_value = [e for e in log if e.breakdown >= 0 and e.mask]
        touch = with_value[-1].breakdown if with_value else -1
    else:
        touch = with_value[0].breakdown if with_value else -1
    return BruteOutcome(furthest, optional_reached, totals, touch)


def chain_is_clean_attempt(
    definition: FunnelDefinition, log: list[Event], chain: np.ndarray, reach: int
) -> bool:
    """Whether the engine's representative chain (event indices per step) is a clean attempt of `reach`."""
    position_of = {event.index: q for q, event in enumerate(log)}
    if definition.order == "any":
        positions = tuple(position_of[int(i)] for i in chain if i >= 0)
        candidates = {p for p in any_tuples(definition, log)}
        return (
            len(positions) == reach and positions in candidates and not any_void(definition, log, positions)
        )
    attempt = tuple((k, position_of[int(i)]) for k, i in enumerate(chain) if i >= 0)
    if not attempt or attempt[-1][0] + 1 != reach:
        return False
    return attempt in set(ordered_tuples(definition, log)) and not ordered_void(definition, log, attempt)
