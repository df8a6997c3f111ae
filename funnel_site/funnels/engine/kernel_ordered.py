"""The compiled state machine for `sequential` and `strict` funnels.

Per contact, events are visited once in sequence order (see `kernel_common`). For every hold row
(one per held property value; a single row without hold-constant) and every step k it keeps:

- a short list of live attempts at step k (`lst_*`), the last one being the attempt best placed to
  advance — the latest start (sequential), or one made by the immediately preceding event (strict);
- `pend[k]`: only for steps inside an exclusion range, the earliest-start live attempt at k, whose
  reach is confirmed once no exclusion event can void it any more (an exclusion event after its
  window, or the end of the contact).

An event matching step k extends the attempts at k-1 (or at j < k when steps j+1..k-1 are all
optional) within the window. An exclusion event kills every live attempt at the steps its range
exposes, after counting the pending ones already outside their window.

Why a list and not one attempt per step. The latest start is the best attempt to *extend*, but the
earliest start is the best one to *confirm*: an attempt waiting inside an exclusion range survives
only if its window closes before the next exclusion event. The earliest start of the attempts a new
event creates is the earliest start, still inside the window, of the attempts it extends — not the
start of the latest-start one (an older, already confirmable attempt would otherwise be lost).

- `sequential`: an attempt's first event may be replaced by any earlier step-1 event of the same row
  that is still in the window, unless an exclusion whose range starts at step 1 fires in between (that
  event would then lie after the new step 1 and before the attempt left the range). So each list
  entry stands for all attempts sharing its later events: it keeps the latest start `sp` and the
  floor `F` (the last such exclusion event before the attempt left those ranges), and the earliest
  usable start is found in the row's step-1 events by binary search. Entries with a higher floor and
  a later start both survive (neither dominates); without exclusions from step 1 all floors are equal
  and the list has one entry, as it has without any exclusion.
- `strict`: the attempts are runs of consecutive events, so a start cannot be replaced; the list holds
  the attempts ending at the previous event with distinct starts (at most one per step: optional
  steps let runs of several lengths end at the same event) and is rebuilt by every event.

Cost per event O(steps x list length): the list length is 1 without exclusions, at most the number of
steps in strict order, and in sequential order 1 + the exclusion-from-step-1 events still inside the
window. Plus O(steps) to copy the matched positions of a new attempt and O(log events) per binary
search (only with exclusions).
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
def _insert_entry(
    count: np.ndarray,
    floor: np.ndarray,
    start: np.ndarray,
    chain: np.ndarray,
    r: int,
    k: int,
    new_floor: int,
    new_start: int,
    source: np.ndarray,
    sr: int,
    sk: int,
    se: int,
    n_steps: int,
) -> int:
    """Insert an attempt (chain `source[sr, sk, se]`) into the list `[r, k]`; its index, or -1 when
    an entry already covers it. (Whole arrays and indices are passed, not views: cheaper in numba.)

    Entries are kept sorted by floor and by start, both increasing: an entry with a floor no higher
    and a start no earlier covers another (every start the other allows, it allows too). On a tie the
    older entry stays (the representative attempt is the first one found).
    """
    n = count[r, k]
    at = -1
    if n == 0:
        at = 0  # the usual cases first (one entry per list without exclusions from step 1)
    elif n == 1 and floor[r, k, 0] == new_floor:
        if start[r, k, 0] >= new_start:
            return -1
        at = 0
    if at == 0:
        floor[r, k, 0] = new_floor
        start[r, k, 0] = new_start
        for z in range(n_steps):
            chain[r, k, 0, z] = source[sr, sk, se, z]
        count[r, k] = 1
        return 0
    for e in range(n):
        if floor[r, k, e] <= new_floor and start[r, k, e] >= new_start:
            return -1
    kept = 0
    for e in range(n):
        if new_floor <= floor[r, k, e] and new_start >= start[r, k, e]:
            continue  # covered by the new entry
        if kept != e:
            floor[r, k, kept] = floor[r, k, e]
            start[r, k, kept] = start[r, k, e]
            for z in range(n_steps):
                chain[r, k, kept, z] = chain[r, k, e, z]
        kept += 1
    at = kept
    while at > 0 and floor[r, k, at - 1] > new_floor:
        at -= 1
    for e in range(kept, at, -1):
        floor[r, k, e] = floor[r, k, e - 1]
        start[r, k, e] = start[r, k, e - 1]
        for z in range(n_steps):
            chain[r, k, e, z] = chain[r, k, e - 1, z]
    floor[r, k, at] = new_floor
    start[r, k, at] = new_start
    for z in range(n_steps):
        chain[r, k, at, z] = source[sr, sk, se, z]
    count[r, k] = kept + 1
    return at


@njit
def _earliest_start(
    s0_pos: np.ndarray, lo: int, hi: int, at_least: int, threshold: int, ts: np.ndarray, order: np.ndarray
) -> int:
    """The first position in `s0_pos[lo:hi]` (sorted step-1 positions of a row) that is >= `at_least`
    and whose timestamp is >= `threshold`. The caller knows one exists."""
    a, b = lo, hi
    while a < b:
        m = (a + b) // 2
        if s0_pos[m] < at_least:
            a = m + 1
        else:
            b = m
    b = hi
    while a < b:
        m = (a + b) // 2
        if ts[order[s0_pos[m]]] < threshold:
            a = m + 1
        else:
            b = m
    return s0_pos[a]


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
    n_excl = excl_exposed.shape[0]
    exposed_union = 0
    for x in range(n_excl):
        exposed_union |= excl_exposed[x]
    # open_from_1[j]: the exclusions starting at step 1 whose range an attempt at step j is still in.
    open_from_1 = np.zeros(n_steps, dtype=np.int64)
    for x in range(n_excl):
        if excl_from[x] == 0:
            for j in range(n_steps):
                if (excl_exposed[x] >> j) & 1:
                    open_from_1[j] |= 1 << x
    from_1_bits = open_from_1[0]
    replace_starts = n_excl > 0 and not strict  # sequential with exclusions: look for earlier starts

    max_len = 1
    list_cap = 1  # without exclusions only the latest start matters
    for c in range(c_lo, c_hi):
        if offsets[c + 1] - offsets[c] > max_len:
            max_len = offsets[c + 1] - offsets[c]
        if replace_starts and from_1_bits != 0:
            floors = 1
            for i in range(offsets[c], offsets[c + 1]):
                if int(excl_mask[i]) & from_1_bits:
                    floors += 1
            list_cap = max(list_cap, floors)
    if n_excl > 0 and strict:
        list_cap = n_steps
    order = np.empty(max_len, dtype=np.int64)
    scratch = np.empty(max_len, dtype=np.int64)
    tie_counts = np.zeros(34, dtype=np.int64)
    lst_n = np.zeros((max_rows, n_steps), dtype=np.int64)
    lst_floor = np.zeros((max_rows, n_steps, list_cap), dtype=np.int64)
    lst_start = np.zeros((max_rows, n_steps, list_cap), dtype=np.int64)  # timestamp of the first event
    lst_chain = np.zeros((max_rows, n_steps, list_cap, n_steps), dtype=np.int64)
    lst_last = np.zeros((max_rows, n_steps), dtype=np.int64)  # strict: the position that made the list
    pend_has = np.zeros((max_rows, n_steps), dtype=np.bool_)
    pend_s = np.zeros((max_rows, n_steps), dtype=np.int64)
    pend_chain = np.zeros((max_rows, n_steps, n_steps), dtype=np.int64)
    # The attempts made by the current event, per step: a list of the same shape (one row).
    new_n = np.zeros((1, n_steps), dtype=np.int64)
    new_floor = np.zeros((1, n_steps, list_cap), dtype=np.int64)
    new_start = np.zeros((1, n_steps, list_cap), dtype=np.int64)
    new_chain = np.zeros((1, n_steps, list_cap, n_steps), dtype=np.int64)
    one_chain = np.zeros((1, 1, 1, n_steps), dtype=np.int64)
    best_chain = np.zeros(n_steps, dtype=np.int64)
    top_chain = np.zeros(n_steps, dtype=np.int64)
    last_from_1 = np.zeros(n_steps, dtype=np.int64)
    s0_off = np.zeros(max_rows + 1, dtype=np.int64)
    s0_pos = np.zeros(max_len if replace_starts else 1, dtype=np.int64)
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
                lst_n[r, k] = 0
                pend_has[r, k] = False
        for j in range(n_steps):
            last_from_1[j] = -1
        if replace_starts:
            # The row's step-1 events in sequence order (counting sort by row): the candidate starts.
            for r in range(n_rows + 1):
                s0_off[r] = 0
            for q in range(n):
                i = order[q]
                if (step_mask[i] & 1) and not (has_rows and rows[i] < 0):
                    s0_off[(rows[i] if has_rows else 0) + 1] += 1
            for r in range(n_rows):
                s0_off[r + 1] += s0_off[r]
            for q in range(n):
                i = order[q]
                if (step_mask[i] & 1) and not (has_rows and rows[i] < 0):
                    r = rows[i] if has_rows else 0
                    s0_pos[s0_off[r]] = q
                    s0_off[r] += 1
            for r in range(n_rows, 0, -1):
                s0_off[r] = s0_off[r - 1]
            s0_off[0] = 0
        first_allowed = 0  # totals: an attempt starts after the previous completed one
        best_k = 0
        top_k = 0  # the furthest step over all attempts (totals)
        for z in range(n_steps):
            best_chain[z] = -1
            top_chain[z] = -1

        for q in range(n):
            i = order[q]
            t = ts[i]
            threshold = t - window
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
                    new_n[0, k] = 0
                    if ((mask >> k) & 1) == 0:
                        continue
                    if k == 0:
                        for z in range(n_steps):
                            one_chain[0, 0, 0, z] = -1
                        one_chain[0, 0, 0, 0] = i
                        floor = -1
                        if strict and n_excl > 0:
                            floor = q  # a strict run keeps its own start
                        elif from_1_bits != 0:
                            floor = q if excl & from_1_bits else last_from_1[0]
                        _insert_entry(
                            new_n, new_floor, new_start, new_chain, 0, 0, floor, t, one_chain, 0, 0, 0, n_steps
                        )
                        continue
                    j = k - 1
                    while True:
                        usable = lst_n[row, j] > 0 and (not strict or lst_last[row, j] == q - 1)
                        if usable and excl != 0:
                            # An excluded event may not extend an attempt that entered the range earlier:
                            # an attempt at j entered the range of x iff j >= its first step.
                            for x in range(n_excl):
                                if (excl >> x) & 1 and (excl_exposed[x] >> k) & 1 and j >= excl_from[x]:
                                    usable = False
                        if usable:
                            if not strict:
                                # Entries whose latest start left the window are of no further use.
                                gone = 0
                                while gone < lst_n[row, j] and lst_start[row, j, gone] < threshold:
                                    gone += 1
                                if gone > 0:
                                    for e in range(gone, lst_n[row, j]):
                                        lst_floor[row, j, e - gone] = lst_floor[row, j, e]
                                        lst_start[row, j, e - gone] = lst_start[row, j, e]
                                        for z in range(n_steps):
                                            lst_chain[row, j, e - gone, z] = lst_chain[row, j, e, z]
                                    lst_n[row, j] -= gone
                            for e in range(lst_n[row, j]):
                                start = lst_start[row, j, e]
                                if start < threshold:
                                    continue
                                floor = lst_floor[row, j, e]
                                if not strict and last_from_1[j] > floor:
                                    # Leaving (or staying in) a step-1 range: a start before its last
                                    # exclusion event would be voided by it.
                                    floor = last_from_1[j]
                                at = _insert_entry(
                                    new_n, new_floor, new_start, new_chain, 0, k, floor, start,
                                    lst_chain, row, j, e, n_steps,
                                )
                                if at >= 0:
                                    new_chain[0, k, at, k] = i
                        if j > 0 and (optional_mask >> j) & 1:
                            j -= 1  # step j is optional: it may be skipped
                        else:
                            break

            # 2. An exclusion event voids live attempts inside its ranges (those past their window count).
            if excl != 0:
                killed = 0
                for x in range(n_excl):
                    if (excl >> x) & 1:
                        killed |= excl_exposed[x]
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
                            lst_n[r, k] = 0
                for j in range(n_steps):
                    if excl & open_from_1[j]:
                        last_from_1[j] = q

            # 3. Merge the new attempts.
            if mask != 0:
                for k in range(n_steps):
                    made = new_n[0, k]
                    if made == 0:
                        continue
                    if strict:
                        # The attempts made by this event replace the ones made by the previous event.
                        lst_n[row, k] = made
                        lst_last[row, k] = q
                        for e in range(made):
                            lst_floor[row, k, e] = new_floor[0, k, e]
                            lst_start[row, k, e] = new_start[0, k, e]
                            for z in range(n_steps):
                                lst_chain[row, k, e, z] = new_chain[0, k, e, z]
                    else:
                        for e in range(made):
                            _insert_entry(
                                lst_n, lst_floor, lst_start, lst_chain, row, k,
                                new_floor[0, k, e], new_start[0, k, e], new_chain, 0, k, e, n_steps,
                            )
                    if (exposed_union >> k) & 1:
                        # Pending: the earliest start among the attempts this event made (entry 0 has
                        # the lowest floor), replacing the first event in sequential order.
                        first = new_chain[0, k, 0, 0]
                        if replace_starts:
                            first = order[
                                _earliest_start(
                                    s0_pos, s0_off[row], s0_off[row + 1], max(new_floor[0, k, 0], first_allowed),
                                    threshold, ts, order,
                                )
                            ]
                        if not pend_has[row, k] or ts[first] < pend_s[row, k]:
                            pend_has[row, k] = True
                            pend_s[row, k] = ts[first]
                            for z in range(n_steps):
                                pend_chain[row, k, z] = new_chain[0, k, 0, z]
                            pend_chain[row, k, 0] = first
                    elif k + 1 > best_k:  # a non-void attempt reached a new furthest step
                        best_k = k + 1
                        last = made - 1  # the latest start
                        for z in range(n_steps):
                            best_chain[z] = new_chain[0, k, last, z]

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
                        lst_n[r, k] = 0
                        pend_has[r, k] = False
                first_allowed = q + 1
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
                lo, hi, step_mask, rows, has_rows, breakdown, -1 if last_touch else 1, last_touch
            )
    return n_att
