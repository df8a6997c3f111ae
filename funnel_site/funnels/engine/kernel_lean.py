"""The lean state machine: `sequential`, no exclusions, no hold-constant, unique counts.

The common query, and the one that has to be fast. Per contact and step k it keeps only the
attempt at k with the latest start (`start[k]`, its first timestamp) and that attempt's matched
events: a later start dominates for every future extension when nothing can void an attempt. An
event matching step k extends the latest-start attempt among steps k-1 (and lower ones across
optional steps) when that start is inside the window. A single event is applied from the highest
step it matches down, so it advances one step; a tie group (events of one timestamp) is applied
step by step upwards, so a tied event may take the next step of an attempt made inside the group —
exact here because `kernel_ties` takes every contact whose tie group holds an event matching
several steps.

An attempt's matched events are a linked list of records (event, step, parent record), so an
extension costs O(1) whatever the step, and only the chain of the contact's best attempt is
written out, once, when the contact is done. Cost O(events x matched steps).
"""

from __future__ import annotations

import numpy as np

from ._jit import njit
from .kernel_common import touch_value

NONE = -(1 << 62)  # "no live attempt at this step"


@njit(inline=True)
def _extend(i, k, t, window, optional_mask, start, head, rec_event, rec_step, rec_parent, n_rec):
    """Extend the best attempt below step k with event i as record `n_rec`; True when it did."""
    if k == 0:
        start[0] = t
        parent = -1
    else:
        source = -1
        best = NONE
        j = k - 1
        while True:
            if start[j] > best:
                best = start[j]
                source = j
            if j > 0 and (optional_mask >> j) & 1:
                j -= 1  # step j is optional: an attempt below it may skip it
            else:
                break
        if source < 0 or best < t - window or best <= start[k]:
            return False  # nothing in the window, or the attempt already at k starts no earlier
        start[k] = best
        parent = head[source]
    rec_event[n_rec] = i
    rec_step[n_rec] = k
    rec_parent[n_rec] = parent
    head[k] = n_rec
    return True


@njit
def lean_kernel(
    offsets: np.ndarray,
    c_lo: int,
    c_hi: int,
    ts: np.ndarray,
    step_mask: np.ndarray,
    n_steps: int,
    window: int,
    optional_mask: int,
    breakdown: np.ndarray,
    has_breakdown: bool,
    last_touch: bool,
    out_best: np.ndarray,
    out_chain: np.ndarray,
    out_touch: np.ndarray,
    out_hard: np.ndarray,
) -> int:
    """Evaluate contacts `c_lo..c_hi-1`: the per-contact outputs of `ordered_kernel` (no attempts).

    `out_hard[c]` is set when a tie group of the contact holds an event matching several steps:
    such a contact needs `kernel_ties` (its outputs here are then overwritten); returns how many.
    """
    start = np.empty(n_steps, dtype=np.int64)
    head = np.empty(n_steps, dtype=np.int64)
    widest = 1
    for c in range(c_lo, c_hi):
        widest = max(widest, offsets[c + 1] - offsets[c])
    capacity = widest * n_steps  # at most one record per (event, step) pair
    rec_event = np.empty(capacity, dtype=np.int64)
    rec_step = np.empty(capacity, dtype=np.int64)
    rec_parent = np.empty(capacity, dtype=np.int64)
    no_rows = np.zeros(1, dtype=np.int64)
    n_hard = 0
    for c in range(c_lo, c_hi):
        lo = offsets[c]
        hi = offsets[c + 1]
        for k in range(n_steps):
            start[k] = NONE
        n_rec = 0
        best = 0
        best_rec = -1
        i = lo
        while i < hi:
            m = np.int64(step_mask[i])
            t = ts[i]
            g = i + 1
            while g < hi and ts[g] == t:
                g += 1
            if g == i + 1:
                if m == 0:
                    i = g
                    continue
                if m & (m - 1) == 0:  # one step (the usual case): its index directly
                    k = 0
                    while (m >> k) > 1:
                        k += 1
                    if _extend(i, k, t, window, optional_mask, start, head, rec_event, rec_step, rec_parent, n_rec):
                        if k + 1 > best:
                            best = k + 1
                            best_rec = n_rec
                        n_rec += 1
                    i = g
                    continue
                k = n_steps - 1
                while m != 0 and k >= 0:
                    if (m >> k) & 1:
                        m ^= np.int64(1) << k
                        if _extend(i, k, t, window, optional_mask, start, head, rec_event, rec_step, rec_parent,
                                   n_rec):
                            if k + 1 > best:
                                best = k + 1
                                best_rec = n_rec
                            n_rec += 1
                    k -= 1
            else:
                union = np.int64(0)
                for e in range(i, g):
                    m = np.int64(step_mask[e])
                    if m & (m - 1):
                        out_hard[c - c_lo] = True
                    union |= m
                for k in range(n_steps):
                    if ((union >> k) & 1) == 0:
                        continue
                    for e in range(i, g):
                        if (np.int64(step_mask[e]) >> k) & 1 and _extend(
                            e, k, t, window, optional_mask, start, head, rec_event, rec_step, rec_parent, n_rec
                        ):
                            if k + 1 > best:
                                best = k + 1
                                best_rec = n_rec
                            n_rec += 1
            i = g
        out_best[c - c_lo] = best
        if out_hard[c - c_lo]:
            n_hard += 1
        for z in range(n_steps):
            out_chain[c - c_lo, z] = -1
        r = best_rec
        while r >= 0:
            out_chain[c - c_lo, rec_step[r]] = rec_event[r]
            r = rec_parent[r]
        if has_breakdown:
            out_touch[c - c_lo] = touch_value(
                lo, hi, step_mask, no_rows, False, breakdown, -1 if last_touch else 1, last_touch
            )
    return n_hard
