"""The compiled state machine for `sequential` and `strict` funnels.

Per contact, events are visited once in sequence order (see `kernel_common`). For every hold row
(one per held property value; a single row without hold-constant) and every step k it keeps:

- `ext[k]`: the attempt at step k best placed to advance — the latest start (sequential), or the
  attempt made by the immediately preceding event (strict);
- `pend[k]`: only for steps inside an exclusion range, the earliest-start live attempt at k, whose
  reach is confirmed once no exclusion event can void it any more.

An event matching step k extends `ext[k-1]` (or `ext[j]` for j < k when steps j+1..k-1 are all
optional) when within the window. An exclusion event kills every live attempt at the steps its
range exposes, after counting the ones already outside their window. Each event costs O(steps),
plus O(steps) to copy the matched event positions of a new attempt.
"""

from __future__ import annotations

import numpy as np

from ._jit import njit
from .kernel_common import sequence_order, touch_value


@njit
def _record_attempt(
    contact_index: int,
    best_k: int,
    best_chain: np.ndarray,
    n_att: int,
    att_contact: np.ndarray,
    att_step: np.ndarray,
    att_chain: np.ndarray,
    n_steps: int,
) -> int:
    att_contact[n_att] = contact_index
    att_step[n_att] = best_k
    for z in range(n_steps):
        att_chain[n_att, z] = best_chain[z]
    return n_att + 1


@njit
def ordered_kernel(
    offsets: np.ndarray,
    c_lo: int,
    c_hi: int,
    ts: np.ndarray,
    step_mask: np.ndarray,
    excl_mask: np.ndarray,
    rows: np.ndarray,
    has_rows: bool,
    max_rows: int,
    n_steps: int,
    window: int,
    strict: bool,
    optional_mask: int,
    excl_exposed: np.ndarray,
    excl_from: np.ndarray,
    totals: bool,
    breakdown: np.ndarray,
    has_breakdown: bool,
    last_touch: bool,
    out_best: np.ndarray,
    out_chain: np.ndarray,
    out_touch: np.ndarray,
    att_contact: np.ndarray,
    att_step: np.ndarray,
    att_chain: np.ndarray,
) -> int:
    """Evaluate contacts `c_lo..c_hi-1`; fills the per-contact outputs, returns the attempts written.

    `out_best[c]`: furthest step (1-based, 0 = not in the funnel); `out_chain[c, k]`: the event index
    matched at step k by the representative attempt (-1 unmatched); `out_touch[c]`: breakdown value.
    Per-contact outputs are indexed from `c_lo`; `att_contact` holds absolute contact indices.
    """
    max_len = 1
    for c in range(c_lo, c_hi):
        if offsets[c + 1] - offsets[c] > max_len:
            max_len = offsets[c + 1] - offsets[c]
    order = np.empty(max_len, dtype=np.int64)
    scratch = np.empty(max_len, dtype=np.int64)
    tie_counts = np.zeros(34, dtype=np.int64)
    ext_has = np.zeros((max_rows, n_steps), dtype=np.bool_)
    ext_s = np.zeros((max_rows, n_steps), dtype=np.int64)
    ext_last = np.zeros((max_rows, n_steps), dtype=np.int64)
    ext_chain = np.zeros((max_rows, n_steps, n_steps), dtype=np.int64)
    pend_has = np.zeros((max_rows, n_steps), dtype=np.bool_)
    pend_s = np.zeros((max_rows, n_steps), dtype=np.int64)
    pend_chain = np.zeros((max_rows, n_steps, n_steps), dtype=np.int64)
    new_has = np.zeros(n_steps, dtype=np.bool_)
    new_s = np.zeros(n_steps, dtype=np.int64)
    new_chain = np.zeros((n_steps, n_steps), dtype=np.int64)
    best_chain = np.zeros(n_steps, dtype=np.int64)
    top_chain = np.zeros(n_steps, dtype=np.int64)
    exposed_union = 0
    for j in range(excl_exposed.shape[0]):
        exposed_union |= excl_exposed[j]
    n_excl = excl_exposed.shape[0]
    n_att = 0
    for contact_index in range(c_lo, c_hi):
        lo = offsets[contact_index]
        hi = offsets[contact_index + 1]
        n = hi - lo
        ties = False
        for i in range(lo + 1, hi):
            if ts[i] == ts[i - 1]:
                ties = True
                break
        if ties:
            sequence_order(lo, hi, ts, step_mask, rows, has_rows, order, scratch, tie_counts)
        else:
            for q in range(n):
                order[q] = lo + q
        n_rows = 1
        if has_rows:
            for i in range(lo, hi):
                if rows[i] + 1 > n_rows:
                    n_rows = rows[i] + 1
        for r in range(n_rows):
            for k in range(n_steps):
                ext_has[r, k] = False
                pend_has[r, k] = False
        best_k = 0
        top_k = 0  # the furthest step over all attempts (totals)
        for z in range(n_steps):
            best_chain[z] = -1
            top_chain[z] = -1

        for q in range(n):
            i = order[q]
            t = ts[i]
            mask = int(step_mask[i])
            if has_rows and rows[i] < 0:
                mask = 0
            row = 0
            if has_rows and mask != 0:
                row = rows[i]
            excl = int(excl_mask[i])

            # 1. New attempts from the state before this event (an event advances one step only).
            if mask != 0:
                for k in range(n_steps):
                    new_has[k] = False
                    if ((mask >> k) & 1) == 0:
                        continue
                    if k == 0:
                        new_has[0] = True
                        new_s[0] = t
                        for z in range(n_steps):
                            new_chain[0, z] = -1
                        new_chain[0, 0] = i
                        continue
                    best_j = -1
                    best_s = 0
                    j = k - 1
                    while True:
                        if (
                            ext_has[row, j]
                            and t - ext_s[row, j] <= window
                            and (not strict or ext_last[row, j] == q - 1)
                            and (best_j < 0 or ext_s[row, j] > best_s)
                        ):
                            # An excluded event may not extend an attempt that entered the range earlier.
                            void = False
                            if excl != 0:
                                for x in range(n_excl):
                                    if (excl >> x) & 1 and (excl_exposed[x] >> k) & 1:
                                        for z in range(excl_from[x], k):
                                            if ext_chain[row, j, z] >= 0:
                                                void = True
                            if not void:
                                best_j = j
                                best_s = ext_s[row, j]
                        if j > 0 and (optional_mask >> j) & 1:
                            j -= 1  # step j is optional: it may be skipped
                        else:
                            break
                    if best_j >= 0:
                        new_has[k] = True
                        new_s[k] = best_s
                        for z in range(n_steps):
                            new_chain[k, z] = ext_chain[row, best_j, z]
                        new_chain[k, k] = i

            # 2. An exclusion event voids live attempts inside its ranges (those past their window count).
            if excl != 0:
                killed = 0
                for j in range(n_excl):
                    if (excl >> j) & 1:
                        killed |= excl_exposed[j]
                if killed != 0:
                    for r in range(n_rows):
                        for k in range(n_steps):
                            if ((killed >> k) & 1) == 0:
                                continue
                            # past its window, a pending attempt can no longer be voided: it counts
                            if pend_has[r, k] and t - pend_s[r, k] > window and k + 1 > best_k:
                                best_k = k + 1
                                for z in range(n_steps):
                                    best_chain[z] = pend_chain[r, k][z]
                            pend_has[r, k] = False
                            ext_has[r, k] = False

            # 3. Merge the new attempts.
            if mask != 0:
                for k in range(n_steps):
                    if not new_has[k]:
                        continue
                    if excl != 0:
                        # The event is itself excluded: void if the attempt entered the range earlier.
                        void = False
                        for j in range(n_excl):
                            if (excl >> j) & 1 and (excl_exposed[j] >> k) & 1:
                                for z in range(excl_from[j], k):
                                    if new_chain[k, z] >= 0:
                                        void = True
                        if void:
                            continue
                    if strict or not ext_has[row, k] or new_s[k] > ext_s[row, k]:
                        ext_has[row, k] = True
                        ext_s[row, k] = new_s[k]
                        ext_last[row, k] = q
                        for z in range(n_steps):
                            ext_chain[row, k, z] = new_chain[k, z]
                    if (exposed_union >> k) & 1:
                        if not pend_has[row, k] or new_s[k] < pend_s[row, k]:
                            pend_has[row, k] = True
                            pend_s[row, k] = new_s[k]
                            for z in range(n_steps):
                                pend_chain[row, k, z] = new_chain[k, z]
                    else:
                        if k + 1 > best_k:  # a non-void attempt reached a new furthest step
                            best_k = k + 1
                            for z in range(n_steps):
                                best_chain[z] = new_chain[k][z]

            if best_k == n_steps:
                if not totals:
                    break
                # Totals: a completed attempt closes; the next one starts with the next event.
                n_att = _record_attempt(
                    contact_index, best_k, best_chain, n_att, att_contact, att_step, att_chain, n_steps
                )
                if top_k < best_k:
                    top_k = best_k
                    for z in range(n_steps):
                        top_chain[z] = best_chain[z]
                for r in range(n_rows):
                    for k in range(n_steps):
                        ext_has[r, k] = False
                        pend_has[r, k] = False
                best_k = 0
                for z in range(n_steps):
                    best_chain[z] = -1

        # End of the contact: no exclusion can void what is still pending.
        for r in range(n_rows):
            for k in range(n_steps):
                if pend_has[r, k] and k + 1 > best_k:
                    best_k = k + 1
                    for z in range(n_steps):
                        best_chain[z] = pend_chain[r, k][z]
        if totals:
            if best_k > 0:
                n_att = _record_attempt(
                    contact_index, best_k, best_chain, n_att, att_contact, att_step, att_chain, n_steps
                )
            if top_k > best_k:
                best_k = top_k
                for z in range(n_steps):
                    best_chain[z] = top_chain[z]
        out_best[contact_index - c_lo] = best_k
        for z in range(n_steps):
            out_chain[contact_index - c_lo, z] = best_chain[z] if best_k > 0 else -1
        if has_breakdown:
            out_touch[contact_index - c_lo] = touch_value(
                n, order, step_mask, rows, has_rows, breakdown, -1 if last_touch else 1, last_touch
            )
    return n_att
