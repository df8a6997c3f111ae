"""Compiled helpers shared by the kernels.

`sequence_order` is the fast kernels' order of a contact's events: by timestamp, and within one
timestamp by the lowest step the event matches (events matching no step last), then by storage
order. That one order serves every attempt only when each tied event matches a single step and
nothing else in the tie group depends on the order; the other contacts are evaluated by
`kernel_ties`, which gives each attempt its own order of a tie group (DESIGN: "tried in step order
within each attempt").
"""

from __future__ import annotations

import numpy as np

from ._jit import njit

NO_STEP_KEY = 32  # the tie key of an event that matches no step


@njit
def effective_mask(i: int, step_mask: np.ndarray, rows: np.ndarray, has_rows: bool) -> int:
    """The step bits of event `i`, dropped when hold-constant is on and the event lacks the value."""
    if has_rows and rows[i] < 0:
        return 0
    return int(step_mask[i])


@njit
def lowest_bit(mask: int) -> int:
    """The index of the lowest set bit, or `NO_STEP_KEY` for 0."""
    if mask == 0:
        return NO_STEP_KEY
    k = 0
    while ((mask >> k) & 1) == 0:
        k += 1
    return k


@njit
def sequence_order(
    lo: int,
    hi: int,
    ts: np.ndarray,
    step_mask: np.ndarray,
    rows: np.ndarray,
    has_rows: bool,
    order: np.ndarray,
    scratch: np.ndarray,
    counts: np.ndarray,
) -> None:
    """Fill `order[:hi-lo]` with the contact's events in sequence order (stable counting sort of ties).

    `counts` is scratch space of `NO_STEP_KEY + 2` entries.
    """
    n = hi - lo
    for q in range(n):
        order[q] = lo + q
    start = 0
    while start < n:
        end = start + 1
        while end < n and ts[lo + end] == ts[lo + start]:
            end += 1
        if end - start > 1:
            counts[:] = 0
            for q in range(start, end):
                counts[lowest_bit(effective_mask(lo + q, step_mask, rows, has_rows)) + 1] += 1
            for key in range(1, NO_STEP_KEY + 2):
                counts[key] += counts[key - 1]
            for q in range(start, end):
                key = lowest_bit(effective_mask(lo + q, step_mask, rows, has_rows))
                scratch[counts[key]] = lo + q
                counts[key] += 1
            for q in range(end - start):
                order[start + q] = scratch[q]
        start = end


@njit
def touch_value(
    lo: int,
    hi: int,
    step_mask: np.ndarray,
    rows: np.ndarray,
    has_rows: bool,
    breakdown: np.ndarray,
    required_bits: int,
    last: bool,
) -> int:
    """The breakdown value of the contact's first (or `last`) event matching `required_bits`, -1 if none.

    "First" and "last" are by (timestamp, storage order), the order of the input. Events without a
    value are skipped, like PostHog's `argMinIf(prop, timestamp, isNotNull(prop))`.
    """
    value = -1
    for i in range(lo, hi):
        if breakdown[i] < 0 or (effective_mask(i, step_mask, rows, has_rows) & required_bits) == 0:
            continue
        value = breakdown[i]
        if not last:
            return value
    return value


@njit
def gap_seconds_into(chain: np.ndarray, ts: np.ndarray, gaps_by_column: np.ndarray) -> None:
    """gaps_by_column[k, e] = seconds from the previous matched step to step k of chain e (NaN where
    unmatched). Step-major and C-ordered (the caller reads its transpose): a column-major
    [entities, steps] array of one row is also C-contiguous, a second type for numba to compile."""
    entities, n_steps = chain.shape
    for e in range(entities):
        for k in range(n_steps):
            gaps_by_column[k, e] = np.nan
        if chain[e, 0] < 0:
            continue
        last = ts[chain[e, 0]]
        for k in range(1, n_steps):
            if chain[e, k] >= 0:
                here = ts[chain[e, k]]
                gaps_by_column[k, e] = (here - last) / 1_000_000
                last = here


@njit
def gaps_by_step(chain: np.ndarray, ts: np.ndarray, offsets: np.ndarray, values: np.ndarray) -> None:
    """Step k's gaps (seconds from the previous matched step) of every chain matching it, packed:
    `values[offsets[k]:offsets[k+1]]`, in entity order. Call with `values` empty to count: then
    only `offsets[k+1]` is filled with step k's count."""
    entities, n_steps = chain.shape
    counting = values.shape[0] == 0
    fill = offsets[:n_steps].copy()
    for e in range(entities):
        if chain[e, 0] < 0:
            continue
        if counting:  # no timestamps read: they are random accesses into the whole column
            for k in range(1, n_steps):
                if chain[e, k] >= 0:
                    offsets[k + 1] += 1
            continue
        last = ts[chain[e, 0]]
        for k in range(1, n_steps):
            if chain[e, k] >= 0:
                here = ts[chain[e, k]]
                values[fill[k]] = (here - last) / 1_000_000
                fill[k] += 1
                last = here


@njit
def hold_rows_into(offsets: np.ndarray, hold: np.ndarray, rows: np.ndarray) -> int:
    """rows[i] = dense index of event i's hold value within its contact (by value; -1 missing);
    returns the largest number of distinct values of one contact (at least 1)."""
    widest = 1
    small = np.empty(32, dtype=np.int64)
    for c in range(offsets.shape[0] - 1):
        lo = offsets[c]
        hi = offsets[c + 1]
        if hi - lo <= 32:
            # the usual contact: an insertion sort in place, no allocation
            order = small
            for q in range(hi - lo):
                value = hold[lo + q]
                y = q - 1
                while y >= 0 and hold[lo + order[y]] > value:
                    order[y + 1] = order[y]
                    y -= 1
                order[y + 1] = q
        else:
            order = np.argsort(hold[lo:hi])  # O(n log n) on the contact's own events
        rank = -1
        previous = -1
        for q in range(hi - lo):
            i = lo + order[q]
            value = hold[i]
            if value < 0:
                rows[i] = -1
                continue
            if rank < 0 or value != previous:
                rank += 1
                previous = value
            rows[i] = rank
        if rank + 1 > widest:
            widest = rank + 1
    return widest
