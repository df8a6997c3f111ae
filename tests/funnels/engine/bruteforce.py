"""A deliberately naive funnel evaluator, written from DESIGN section 5's words (not the kernels').

"A contact reaches step k when it has events e1..ek matching steps 1..k, in order, with
t(ek) - t(e1) <= window (inclusive). Each event advances at most one step; events with equal
timestamps are tried in step order within each attempt."

So an attempt is a list of *distinct* events assigned to increasing steps whose timestamps never
decrease: two events of one timestamp may take consecutive steps whichever was stored first. There
are no positions here, only timestamps: "between" two events means strictly between their
timestamps (an event tied with a matched one could be tried on either side of it, so it is not
between). Every attempt is enumerated; the rules are checked on each.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import numpy as np

from funnel_site.funnels.engine import FunnelDefinition


@dataclass
class Event:
    index: int  # into the input columns (its storage order)
    ts: int
    mask: int  # step bits, cleared when hold-constant is on and the value is missing
    excl: int
    hold: int
    breakdown: int


def contact_logs(columns, definition: FunnelDefinition) -> dict[int, list[Event]]:
    """Each contact's events in storage order (by timestamp, then as stored)."""
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
        events.sort(key=lambda e: (e.ts, e.index))
    return logs


def _window(definition: FunnelDefinition) -> int:
    return definition.window_seconds * 1_000_000


def _same_hold(definition: FunnelDefinition, events: list[Event]) -> bool:
    return definition.hold_constant is None or len({e.hold for e in events}) == 1


# --------------------------------------------------------------------------- ordered attempts


def ordered_attempts(definition: FunnelDefinition, log: list[Event], after: float = float("-inf")):
    """Every ordered attempt (a tuple of (step, Event)) of events later than `after`.

    Steps start at step 1 and increase, skipping optional steps only; events are distinct, match
    their step, have non-decreasing timestamps and fit in the window of the first. Void and strict
    rules are not applied here.
    """
    n_steps = definition.step_count
    optional = [step.optional for step in definition.steps]
    window = _window(definition)
    usable = [e for e in log if e.ts > after]

    def extend(attempt):
        yield attempt
        last_step, last_event = attempt[-1]
        for step in range(last_step + 1, n_steps):
            for event in usable:
                if (
                    all(event is not used for _, used in attempt)
                    and (event.mask >> step) & 1
                    and event.ts >= last_event.ts
                    and event.ts - attempt[0][1].ts <= window
                    and _same_hold(definition, [attempt[0][1], event])
                ):
                    yield from extend(attempt + ((step, event),))
            if not optional[step]:
                break  # a required step cannot be skipped

    for event in usable:
        if event.mask & 1:
            yield from extend(((0, event),))


def strict_broken(log: list[Event], events: list[Event]) -> bool:
    """`strict`: another event of the contact strictly between the attempt's first and last events."""
    first, last = events[0].ts, events[-1].ts
    return any(first < e.ts < last and all(e is not used for used in events) for e in log)


def ordered_void(definition: FunnelDefinition, log: list[Event], attempt) -> bool:
    """Exclusion `E:a-b`: an E event after the attempt's step-a event and before its step-b event
    (before the end of the window while step b is not reached) voids it."""
    window = _window(definition)
    first_ts = attempt[0][1].ts
    for j, exclusion in enumerate(definition.exclusions):
        a, b = exclusion.from_step - 1, exclusion.to_step - 1
        entered = next((event for step, event in attempt if step >= a), None)
        left = next((event for step, event in attempt if step >= b), None)
        if entered is None:
            continue
        for x in log:
            if not (x.excl >> j) & 1 or x.ts <= entered.ts:
                continue
            if left is not None and x.ts < left.ts:
                return True
            if left is None and x.ts - first_ts <= window:
                return True
    return False


# --------------------------------------------------------------------------- any-order attempts


def _matches_distinct_steps(definition: FunnelDefinition, events: list[Event]) -> bool:
    return any(
        all((e.mask >> s) & 1 for e, s in zip(events, steps, strict=True))
        for steps in permutations(range(definition.step_count), len(events))
    )


def any_attempts(definition: FunnelDefinition, log: list[Event], after: float = float("-inf")):
    """Every any-order attempt: a set of distinct events (later than `after`) that match distinct
    steps, inside the window of the earliest; as a tuple sorted by (ts, index)."""
    window = _window(definition)
    usable = [e for e in log if e.ts > after and e.mask]
    for size in range(1, definition.step_count + 1):
        for chosen in permutations(usable, size):
            if list(chosen) != sorted(chosen, key=lambda e: (e.ts, e.index)):
                continue  # each set once
            if chosen[-1].ts - chosen[0].ts > window or not _same_hold(definition, list(chosen)):
                continue
            if _matches_distinct_steps(definition, list(chosen)):
                yield chosen


def any_void(definition: FunnelDefinition, log: list[Event], events) -> bool:
    """Any order (exclusions span every step): an exclusion strictly after the first event and
    strictly before the last (complete), or inside the first event's window (partial)."""
    if not definition.exclusions:
        return False
    complete = len(events) == definition.step_count
    first = events[0].ts
    for x in log:
        if not x.excl or x.ts <= first:
            continue
        if complete and x.ts < events[-1].ts:
            return True
        if not complete and x.ts - first <= _window(definition):
            return True
    return False


# --------------------------------------------------------------------------- outcomes


def clean_attempts(definition: FunnelDefinition, log: list[Event], after: float = float("-inf")):
    """(reach, events, steps) of every attempt that is not void (and, in `strict`, not broken)."""
    if definition.order == "any":
        for events in any_attempts(definition, log, after):
            if not any_void(definition, log, events):
                yield len(events), list(events), tuple(range(len(events)))
        return
    for attempt in ordered_attempts(definition, log, after):
        events = [event for _, event in attempt]
        if definition.order == "strict" and strict_broken(log, events):
            continue
        if not ordered_void(definition, log, attempt):
            steps = tuple(step for step, _ in attempt)
            yield steps[-1] + 1, events, steps


@dataclass
class BruteOutcome:
    furthest: int
    optional_reached: dict[int, bool]
    attempts: list[int]
    touch: int


def brute_contact(definition: FunnelDefinition, log: list[Event]) -> BruteOutcome:
    """Furthest step, optional steps some clean attempt includes, totals attempts, touch value.

    totals: the completed attempt finishing first counts, then attempts start over with the events
    strictly after its last timestamp; when none completes, the best remaining attempt counts once.
    """
    attempts = list(clean_attempts(definition, log))
    furthest = max((reach for reach, _, _ in attempts), default=0)
    optional_reached = {
        k: any(k in steps for _, _, steps in attempts) for k, step in enumerate(definition.steps) if step.optional
    }
    totals = []
    after = float("-inf")
    while True:
        found = list(clean_attempts(definition, log, after))
        finished = [events[-1].ts for reach, events, _ in found if reach == definition.step_count]
        if finished:
            totals.append(definition.step_count)
            after = min(finished)
            continue
        best = max((reach for reach, _, _ in found), default=0)
        if best:
            totals.append(best)
        break
    first_bits = -1 if definition.order == "any" else 1
    if definition.breakdown is not None and definition.breakdown.attribution == "last_touch":
        with_value = [e for e in log if e.breakdown >= 0 and e.mask]
        touch = with_value[-1].breakdown if with_value else -1
    else:
        with_value = [e for e in log if e.breakdown >= 0 and e.mask & first_bits]
        touch = with_value[0].breakdown if with_value else -1
    return BruteOutcome(furthest, optional_reached, totals, touch)


def chain_is_clean_attempt(
    definition: FunnelDefinition, log: list[Event], chain: np.ndarray, reach: int
) -> bool:
    """Whether an engine chain (event index per step; any order: the attempt's events) is a clean
    attempt reaching `reach`."""
    by_index = {event.index: event for event in log}
    if any(int(i) >= 0 and int(i) not in by_index for i in chain):
        return False
    if definition.order == "any":
        events = sorted((by_index[int(i)] for i in chain if i >= 0), key=lambda e: (e.ts, e.index))
        return len(events) == reach and any(
            list(events) == found for r, found, _ in clean_attempts(definition, log) if r == reach
        )
    steps = tuple(k for k, i in enumerate(chain) if i >= 0)
    events = [by_index[int(i)] for i in chain if i >= 0]
    return any(
        s == steps and all(a is b for a, b in zip(found, events, strict=True))
        for r, found, s in clean_attempts(definition, log)
        if r == reach and len(found) == len(events)
    )
