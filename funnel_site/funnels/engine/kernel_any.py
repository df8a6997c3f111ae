"""The compiled kernel for `any`-order funnels (PostHog's unordered funnels).

Reaching "step k" means matching k *distinct* steps with k distinct events inside one window. Two
sliding windows over each contact's sequence give, in O(events) window moves:

- the earliest completion: the first event c such that the events in [L(c), c] match all steps,
  L(c) being the later of the window start and the last exclusion event before c (an exclusion
  may not fall strictly between the first and last matched events of a complete attempt);
- otherwise the best partial attempt: the largest matching in [q, end of q's window] over start
  events q with no exclusion event after q inside q's window.

The matching size is the number of distinct steps present when every event matches at most one
step (the usual case, O(1) per move); events matching several steps fall back to a max-flow over
the distinct step masks present in the window.
"""

from __future__ import annotations

import numpy as np

from ._jit import njit
from .kernel_common import effective_mask, sequence_order, touch_value


@njit
def _flow_size(gm: np.ndarray, cnt: np.ndarray, n_groups: int, n_steps: int, work: np.ndarray) -> int:
    """Max number of distinct steps matched by distinct events, events grouped by identical masks."""
    assign = work[0]
    used = work[1]
    prev = work[2]
    queue = work[3]
    seen = work[4]
    for z in range(n_steps):
        assign[z] = -1
    for g in range(n_groups):
        used[g] = 0
    size = 0
    for b in range(n_steps):
        for z in range(n_steps):
            seen[z] = 0
        head = 0
        tail = 1
        queue[0] = b
        seen[b] = 1
        prev[b] = -1
        found_group = -1
        end_step = -1
        while head < tail and found_group < 0:
            s = queue[head]
            head += 1
            for g in range(n_groups):
                if cnt[g] == 0 or ((gm[g] >> s) & 1) == 0 or assign[s] == g:
                    continue
                if used[g] < cnt[g]:
                    found_group = g
                    end_step = s
                    break
                for s2 in range(n_steps):
                    if assign[s2] == g and seen[s2] == 0:
                        seen[s2] = 1
                        prev[s2] = s
                        queue[tail] = s2
                        tail += 1
        if found_group >= 0:
            s = end_step
            g = found_group
            while s != -1:
                old = assign[s]
                assign[s] = g
                g = old
                s = prev[s]
            used[found_group] += 1
            size += 1
    return size


@njit
def _window_size(
    single: bool, nonzero: int, gm: np.ndarray, cnt: np.ndarray, n_groups: int, n_steps: int, work: np.ndarray
) -> int:
    if single:
        return nonzero
    return _flow_size(gm, cnt, n_groups, n_steps, work)


@njit
def _earliest_completion(
    start: int,
    limit: int,
    tq: np.ndarray,
    mq: np.ndarray,
    xq: np.ndarray,
    gid: np.ndarray,
    gm: np.ndarray,
    cnt: np.ndarray,
    n_groups: int,
    single: bool,
    n_steps: int,
    window: int,
    work: np.ndarray,
) -> tuple[int, int]:
    """(c, L(c)) of the first complete attempt in [start, limit), or (-1, -1)."""
    cnt[:n_groups] = 0
    nonzero = 0
    left = start
    last_x = -1
    for c in range(start, limit):
        target = max(last_x, left)
        while left < c and (tq[left] < tq[c] - window or left < target):
            if mq[left] != 0:
                cnt[gid[left]] -= 1
                if cnt[gid[left]] == 0:
                    nonzero -= 1
            left += 1
        if mq[c] != 0:
            if cnt[gid[c]] == 0:
                nonzero += 1
            cnt[gid[c]] += 1
            if _window_size(single, nonzero, gm, cnt, n_groups, n_steps, work) == n_steps:
                return c, left
        if xq[c]:
            last_x = c
    return -1, -1


@njit
def _best_partial(
    start: int,
    end: int,
    tq: np.ndarray,
    mq: np.ndarray,
    nx: np.ndarray,
    gid: np.ndarray,
    gm: np.ndarray,
    cnt: np.ndarray,
    n_groups: int,
    single: bool,
    n_steps: int,
    window: int,
    work: np.ndarray,
) -> tuple[int, int, int]:
    """(size, q, window end) of the largest clean partial attempt starting in [start, end)."""
    cnt[:n_groups] = 0
    nonzero = 0
    right = start
    best = 0
    best_q = -1
    best_end = -1
    for q in range(start, end):
        while right < end and tq[right] <= tq[q] + window:
            if mq[right] != 0:
                if cnt[gid[right]] == 0:
                    nonzero += 1
                cnt[gid[right]] += 1
            right += 1
        if mq[q] != 0 and (nx[q] >= end or tq[nx[q]] > tq[q] + window):
            size = _window_size(single, nonzero, gm, cnt, n_groups, n_steps, work)
            if size > best:
                best = size
                best_q = q
                best_end = right - 1
        if mq[q] != 0:
            cnt[gid[q]] -= 1
            if cnt[gid[q]] == 0:
                nonzero -= 1
    return best, best_q, best_end


@njit
def _explicit_chain(
    a: int,
    b: int,
    first: int,
    target: int,
    mq: np.ndarray,
    order: np.ndarray,
    n_steps: int,
    chain: np.ndarray,
    work: np.ndarray,
) -> None:
    """Write into `chain` the event indices of a `target`-sized matching of [a, b] that includes `first`."""
    match = work[0]  # step -> sequence position
    prev = work[2]
    queue = work[3]
    seen = work[4]
    via = work[5]
    for z in range(n_steps):
        match[z] = -1
        chain[z] = -1
    size = 0
    q = first
    while size < target and q <= b:
        if q >= a and mq[q] != 0:
            # BFS from event q over steps; `via[s]` is the event that would take step s.
            for z in range(n_steps):
                seen[z] = 0
            head = 0
            tail = 0
            for s in range(n_steps):
                if (mq[q] >> s) & 1:
                    seen[s] = 1
                    prev[s] = -1
                    via[s] = q
                    queue[tail] = s
                    tail += 1
            end_step = -1
            while head < tail:
                s = queue[head]
                head += 1
                if match[s] < 0:
                    end_step = s
                    break
                holder = match[s]
                for s2 in range(n_steps):
                    if (mq[holder] >> s2) & 1 and seen[s2] == 0:
                        seen[s2] = 1
                        prev[s2] = s
                        via[s2] = holder
                        queue[tail] = s2
                        tail += 1
            if end_step >= 0:
                s = end_step
                while s != -1:
                    match[s] = via[s]
                    s = prev[s]
                size += 1
        # visit `first`, then the rest of [a, b] in order
        if q == first:
            q = a if a != first else a + 1
        else:
            q += 1
            if q == first:
                q += 1
    # the matched sequence positions, ascending, become the chain (k-th matched event = "step" k)
    count = 0
    for s in range(n_steps):
        if match[s] >= 0:
            chain[count] = match[s]
            count += 1
    for x in range(1, count):
        value = chain[x]
        y = x - 1
        while y >= 0 and chain[y] > value:
            chain[y + 1] = chain[y]
            y -= 1
        chain[y + 1] = value
    for x in range(count):
        chain[x] = order[chain[x]]


@njit
def _prepare_row(
    n: int,
    row: int,
    order: np.ndarray,
    step_mask: np.ndarray,
    rows: np.ndarray,
    has_rows: bool,
    mq: np.ndarray,
    gid: np.ndarray,
    gm: np.ndarray,
) -> tuple[int, bool, bool]:
    """Fill the row's masks and mask groups; returns (groups, all single-bit, any step event)."""
    n_groups = 0
    single = True
    any_step = False
    for q in range(n):
        i = order[q]
        mask = effective_mask(i, step_mask, rows, has_rows)
        if has_rows and mask != 0 and rows[i] != row:
            mask = 0
        mq[q] = mask
        if mask == 0:
            continue
        any_step = True
        g = 0
        while g < n_groups and gm[g] != mask:
            g += 1
        if g == n_groups:
            gm[g] = mask
            n_groups += 1
            if mask & (mask - 1):
                single = False
        gid[q] = g
    return n_groups, single, any_step


@njit
def any_kernel(
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
    """Evaluate contacts `c_lo..c_hi-1` in any order; same outputs as `ordered_kernel`."""
    max_len = 1
    for c in range(c_lo, c_hi):
        if offsets[c + 1] - offsets[c] > max_len:
            max_len = offsets[c + 1] - offsets[c]
    order = np.empty(max_len, dtype=np.int64)
    scratch = np.empty(max_len, dtype=np.int64)
    tie_counts = np.zeros(34, dtype=np.int64)
    tq = np.empty(max_len, dtype=np.int64)
    xq = np.zeros(max_len, dtype=np.bool_)
    nx = np.empty(max_len, dtype=np.int64)
    mq = np.zeros(max_len, dtype=np.int64)
    gid = np.zeros(max_len, dtype=np.int64)
    gm = np.zeros(max_len, dtype=np.int64)
    cnt = np.zeros(max_len, dtype=np.int64)
    work = np.zeros((6, max(max_len, n_steps) + 1), dtype=np.int64)
    chain = np.full(n_steps, -1, dtype=np.int64)
    best_chain = np.full(n_steps, -1, dtype=np.int64)
    n_att = 0
    for c in range(c_lo, c_hi):
        lo = offsets[c]
        hi = offsets[c + 1]
        n = hi - lo
        sequence_order(lo, hi, ts, step_mask, rows, has_rows, order, scratch, tie_counts)
        n_rows = 1
        if has_rows:
            for i in range(lo, hi):
                if rows[i] + 1 > n_rows:
                    n_rows = rows[i] + 1
        for q in range(n):
            tq[q] = ts[order[q]]
            xq[q] = excl_mask[order[q]] != 0
        following = n
        for q in range(n - 1, -1, -1):
            nx[q] = following
            if xq[q]:
                following = q
        best = 0
        top = 0
        for z in range(n_steps):
            best_chain[z] = -1
        cursor = 0
        while True:
            # earliest completion over all hold rows, from the cursor
            done_at = n
            done_row = -1
            done_left = -1
            for row in range(n_rows):
                n_groups, single, any_step = _prepare_row(
                    n, row, order, step_mask, rows, has_rows, mq, gid, gm
                )
                if not any_step:
                    continue
                at, left = _earliest_completion(
                    cursor, done_at, tq, mq, xq, gid, gm, cnt, n_groups, single, n_steps, window, work
                )
                if at >= 0 and at < done_at:
                    done_at, done_row, done_left = at, row, left
            if done_row >= 0:
                _prepare_row(n, done_row, order, step_mask, rows, has_rows, mq, gid, gm)
                _explicit_chain(done_left, done_at, done_at, n_steps, mq, order, n_steps, chain, work)
                if top < n_steps:
                    top = n_steps
                    for z in range(n_steps):
                        best_chain[z] = chain[z]
                if not totals:
                    break
                att_contact[n_att] = c
                att_step[n_att] = n_steps
                for z in range(n_steps):
                    att_chain[n_att, z] = chain[z]
                n_att += 1
                cursor = done_at + 1
                continue
            # no completion left: the best clean partial attempt from the cursor
            best = 0
            best_row = -1
            best_q = -1
            best_end = -1
            for row in range(n_rows):
                n_groups, single, any_step = _prepare_row(
                    n, row, order, step_mask, rows, has_rows, mq, gid, gm
                )
                if not any_step:
                    continue
                size, q, end = _best_partial(
                    cursor, n, tq, mq, nx, gid, gm, cnt, n_groups, single, n_steps, window, work
                )
                if size > best:
                    best, best_row, best_q, best_end = size, row, q, end
            if best > 0:
                _prepare_row(n, best_row, order, step_mask, rows, has_rows, mq, gid, gm)
                _explicit_chain(best_q, best_end, best_q, best, mq, order, n_steps, chain, work)
                if best > top:
                    top = best
                    for z in range(n_steps):
                        best_chain[z] = chain[z]
                if totals:
                    att_contact[n_att] = c
                    att_step[n_att] = best
                    for z in range(n_steps):
                        att_chain[n_att, z] = chain[z]
                    n_att += 1
            break
        out_best[c - c_lo] = top
        for z in range(n_steps):
            out_chain[c - c_lo, z] = best_chain[z]
        if has_breakdown:
            out_touch[c - c_lo] = touch_value(lo, hi, step_mask, rows, has_rows, breakdown, -1, last_touch)
    return n_att
