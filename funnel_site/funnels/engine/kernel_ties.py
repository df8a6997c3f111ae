"""The exact kernel for contacts whose equal timestamps the fast kernels cannot order once for all.

DESIGN: "events with equal timestamps are tried in step order within each attempt (an event tied
with the one that matched step k may match step k+1 of that attempt)". One fixed order of a tie
group serves every attempt only when each tied event matches a single step and nothing else in the
group depends on the order (no exclusion event, no strictness, no totals re-entry): then the fast
kernels' order (by step) is right. Every other contact comes here (`tie_hard_contacts` picks them).

Here a tie group (the events of one timestamp) is an unordered set, as the definition makes it:
an attempt passing through it uses distinct events of the group for increasing steps, in any
order, which is a bipartite matching between the steps it takes and the group's events. Per start
event `s` (a step-1 event; any step event in `any` order) a dynamic programme runs over the groups
inside `s`'s window, keeping per step k whether a non-void attempt from `s` is at k (and, in
`strict`, whether it may still be extended). After a group every live attempt at step k from the
same start has the same future (same window, every event used so far is earlier than the next
group), so one representative per step suffices. Cost per contact O(starts x groups in a window x
steps^2 x matching); the fast kernels handle every other contact in O(events x steps).
"""

from __future__ import annotations

import numpy as np

from ._jit import njit
from .kernel_common import touch_value
from .kernel_matching import augment_event, match_steps


@njit
def tie_hard_flags(
    offsets: np.ndarray,
    ts: np.ndarray,
    step_mask: np.ndarray,
    excl_mask: np.ndarray,
    order_mode: int,
    totals: bool,
) -> np.ndarray:
    """Per contact, True when it needs this kernel (order_mode 0 sequential, 1 strict, 2 any).

    A contact is "hard" when one of its tie groups holds a step event and another event, and the
    group's order matters: always in strict order or totals (which tied event is "after" the
    conversion); otherwise when the group holds an exclusion event, or (ordered modes) an event
    matching two or more steps. Groups of events matching no step never matter.
    """
    n_contacts = offsets.shape[0] - 1
    hard = np.zeros(n_contacts, dtype=np.bool_)
    for c in range(n_contacts):
        i = offsets[c]
        hi = offsets[c + 1]
        while i < hi and not hard[c]:
            g = i + 1
            while g < hi and ts[g] == ts[i]:
                g += 1
            if g - i > 1:
                has_step = False
                has_excl = False
                has_multi = False
                for e in range(i, g):
                    m = np.int64(step_mask[e])
                    if m != 0:
                        has_step = True
                    if m & (m - 1):
                        has_multi = True
                    if excl_mask[e] != 0:
                        has_excl = True
                if has_step and (order_mode == 1 or totals or has_excl or (has_multi and order_mode != 2)):
                    hard[c] = True
            i = g
    return hard


@njit
def _start_dp(
    lo, hi, s, row, ts, step_mask, excl_mask, rows, has_rows, n_steps, window, strict, optional_mask,
    excl_exposed, excl_from, live, live_chain, term, term_chain, new_live, new_chain, new_term, new_term_chain,
    done_at, ev_idx, ev_mask, step_of_event, event_of_step, seen_step, par_step, queue,
):
    """Run the attempts starting with event `s` (index) through the groups of its window.

    Leaves `live[k]` / `term[k]` (strict: may not be extended) with their chains, and returns the
    group timestamp at which the last step was first reached (-1 if never; totals picks the
    earliest). Only events at or after `s`'s timestamp are read.
    """
    n_excl = excl_exposed.shape[0]
    t0 = ts[s]
    for k in range(n_steps):
        live[k] = False
        term[k] = False
    for z in range(n_steps):
        live_chain[0, z] = -1
    live_chain[0, 0] = s
    live[0] = True
    done = -1
    if n_steps == 1:
        done = t0
    # the group of s: find its bounds (events are sorted by ts)
    g_lo = s
    while g_lo > lo and ts[g_lo - 1] == t0:
        g_lo -= 1
    first_group = True
    while g_lo < hi and ts[g_lo] - t0 <= window:
        t = ts[g_lo]
        g_hi = g_lo
        while g_hi < hi and ts[g_hi] == t:
            g_hi += 1
        n_ev = 0
        group_excl = 0
        usable_all = True
        for i in range(g_lo, g_hi):
            group_excl |= int(excl_mask[i])
            if first_group and i == s:
                continue
            m = int(step_mask[i])
            if has_rows and rows[i] != row:
                m = 0
            if m == 0:
                usable_all = False
                continue
            ev_idx[n_ev] = i
            ev_mask[n_ev] = m
            n_ev += 1
        for k in range(n_steps):
            new_live[k] = False
            new_term[k] = False
        for k in range(n_steps):
            # stay at k: no event of this group used
            stay_killed = False
            if not first_group:
                for x in range(n_excl):
                    if (group_excl >> x) & 1 and (excl_exposed[x] >> k) & 1:
                        stay_killed = True
            if not stay_killed:
                if live[k]:
                    if strict and not first_group:
                        if not new_term[k]:
                            new_term[k] = True
                            for z in range(n_steps):
                                new_term_chain[k, z] = live_chain[k, z]
                    elif not new_live[k]:
                        new_live[k] = True
                        for z in range(n_steps):
                            new_chain[k, z] = live_chain[k, z]
                if term[k] and not new_term[k]:
                    new_term[k] = True
                    for z in range(n_steps):
                        new_term_chain[k, z] = term_chain[k, z]
            if n_ev == 0:
                continue
            # extend a live attempt at j < k through this group
            # (steps j+1..k-1 are taken by other events of this group, or skipped when optional)
            for j in range(k - 1, -1, -1):
                if not live[j]:
                    continue
                killed = False
                if not first_group:
                    for x in range(n_excl):
                        if (group_excl >> x) & 1 and (excl_exposed[x] >> k) & 1 and j >= excl_from[x]:
                            killed = True
                if killed:
                    continue
                required = np.int64(1) << k
                extra = np.int64(0)
                for m in range(j + 1, k):
                    if (optional_mask >> m) & 1:
                        extra |= np.int64(1) << m
                    else:
                        required |= np.int64(1) << m
                passing = strict and not first_group
                if new_live[k] and not passing:
                    break
                ok, size = match_steps(
                    ev_mask, n_ev, required, extra if passing else np.int64(0),
                    step_of_event, event_of_step, seen_step, par_step, queue,
                )
                if not ok:
                    continue
                through = (not passing) or (usable_all and size == n_ev)
                if through and not new_live[k]:
                    new_live[k] = True
                    for z in range(n_steps):
                        new_chain[k, z] = live_chain[j, z]
                    for m in range(j + 1, k + 1):
                        if event_of_step[m] >= 0:
                            new_chain[k, m] = ev_idx[event_of_step[m]]
                elif not through and not new_term[k]:
                    # strict: group events left unused after the attempt's last event end it here
                    new_term[k] = True
                    for z in range(n_steps):
                        new_term_chain[k, z] = live_chain[j, z]
                    for m in range(j + 1, k + 1):
                        if event_of_step[m] >= 0 and ((required >> m) & 1):
                            new_term_chain[k, m] = ev_idx[event_of_step[m]]
        for k in range(n_steps):
            live[k] = new_live[k]
            term[k] = new_term[k]
            for z in range(n_steps):
                live_chain[k, z] = new_chain[k, z]
                term_chain[k, z] = new_term_chain[k, z]
        if done < 0 and (live[n_steps - 1] or term[n_steps - 1]):
            done = t
        first_group = False
        g_lo = g_hi
    done_at[0] = done
    return done


@njit
def _any_start(
    lo, hi, s, row, ts, step_mask, excl_mask, rows, has_rows, n_steps, window, chain,
    ev_idx, ev_mask, step_of_event, event_of_step, seen_step, par_step, queue,
):
    """Any order from start `s`: (reach, completion timestamp or -1); `chain` gets the attempt.

    The attempt's events are distinct events matching distinct steps in [t(s), t(s) + window]; a
    complete one is void when an exclusion event lies strictly between its first and last
    timestamps, a partial one when one lies strictly after its first timestamp inside its window.
    """
    t0 = ts[s]
    cutoff = t0 + window
    x_seen = False
    for i in range(s, hi):
        if ts[i] - t0 > window:
            break
        if ts[i] > t0 and excl_mask[i] != 0:
            cutoff = ts[i]  # a complete attempt must finish by the first exclusion after its start
            x_seen = True
            break
    for z in range(n_steps):
        event_of_step[z] = -1
    g_lo = s
    while g_lo > lo and ts[g_lo - 1] == t0:
        g_lo -= 1
    size = 0
    done = -1
    n_ev = 0
    i = g_lo - 1
    while size < n_steps:
        if n_ev == 0:
            e_index = s  # s first: an event once matched stays matched, so s stays in the attempt
        else:
            i += 1
            if i == s:
                i += 1
            if i >= hi or ts[i] > cutoff:
                break
            e_index = i
        m = int(step_mask[e_index])
        if has_rows and rows[e_index] != row:
            m = 0
        if m == 0:
            if n_ev == 0:
                break
            continue
        ev_idx[n_ev] = e_index
        ev_mask[n_ev] = m
        step_of_event[n_ev] = -1
        n_ev += 1
        if augment_event(n_ev - 1, ev_mask, event_of_step, step_of_event, seen_step, par_step, queue, -1):
            size += 1
            if size == n_steps:
                done = ts[e_index]
    reach = size
    if done < 0 and x_seen:
        reach = 0  # a partial attempt with an exclusion after its start inside its window is void
    for u in range(n_steps):
        chain[u] = -1
    if reach > 0:
        count = 0
        for u in range(n_steps):
            if event_of_step[u] >= 0:
                chain[count] = ev_idx[event_of_step[u]]
                count += 1
        for x in range(1, count):  # chain order: by timestamp, then index
            value = chain[x]
            y = x - 1
            while y >= 0 and (ts[chain[y]] > ts[value] or (ts[chain[y]] == ts[value] and chain[y] > value)):
                chain[y + 1] = chain[y]
                y -= 1
            chain[y + 1] = value
    return reach, done


@njit
def ties_kernel(
    offsets: np.ndarray,
    contacts: np.ndarray,
    ts: np.ndarray,
    step_mask: np.ndarray,
    excl_mask: np.ndarray,
    rows: np.ndarray,
    has_rows: bool,
    n_steps: int,
    window: int,
    order_mode: int,
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
    """Evaluate the contacts listed in `contacts` (indices); outputs are indexed like `contacts`.

    Same outputs as `ordered_kernel` / `any_kernel`: `att_contact` holds absolute contact indices.
    """
    strict = order_mode == 1
    max_len = 1
    for c in contacts:
        if offsets[c + 1] - offsets[c] > max_len:
            max_len = offsets[c + 1] - offsets[c]
    live = np.zeros(n_steps, dtype=np.bool_)
    term = np.zeros(n_steps, dtype=np.bool_)
    new_live = np.zeros(n_steps, dtype=np.bool_)
    new_term = np.zeros(n_steps, dtype=np.bool_)
    live_chain = np.full((n_steps, n_steps), -1, dtype=np.int64)
    term_chain = np.full((n_steps, n_steps), -1, dtype=np.int64)
    new_chain = np.full((n_steps, n_steps), -1, dtype=np.int64)
    new_term_chain = np.full((n_steps, n_steps), -1, dtype=np.int64)
    ev_idx = np.zeros(max_len + 1, dtype=np.int64)
    ev_mask = np.zeros(max_len + 1, dtype=np.int64)
    step_of_event = np.full(max_len + 1, -1, dtype=np.int64)
    event_of_step = np.full(n_steps, -1, dtype=np.int64)
    seen_step = np.zeros(n_steps, dtype=np.int64)
    par_step = np.zeros(n_steps, dtype=np.int64)
    queue = np.zeros(n_steps + 1, dtype=np.int64)
    done_at = np.zeros(1, dtype=np.int64)
    chain = np.full(n_steps, -1, dtype=np.int64)
    pick_chain = np.full(n_steps, -1, dtype=np.int64)
    top_chain = np.full(n_steps, -1, dtype=np.int64)
    first_bits = -1 if order_mode == 2 else 1
    n_att = 0
    for out_index in range(contacts.shape[0]):
        c = contacts[out_index]
        lo = offsets[c]
        hi = offsets[c + 1]
        cursor = np.int64(-(1 << 62))  # totals: the next attempt uses events strictly after this time
        top = 0
        for z in range(n_steps):
            top_chain[z] = -1
        while True:
            best = 0
            best_done = np.int64(1 << 62)
            best_start_ts = np.int64(-(1 << 62))
            for s in range(lo, hi):
                if ts[s] <= cursor:
                    continue
                if best == n_steps and ts[s] > best_done:
                    break  # a later start cannot finish a conversion earlier
                m = int(step_mask[s])
                if has_rows and rows[s] < 0:
                    m = 0
                if (m & first_bits) == 0:
                    continue
                row = rows[s] if has_rows else 0
                # an equal start (same group, mask and row) gives the same outcomes
                duplicate = False
                y = s - 1
                while y >= lo and ts[y] == ts[s]:
                    if int(step_mask[y]) == int(step_mask[s]) and (not has_rows or rows[y] == rows[s]):
                        duplicate = True
                        break
                    y -= 1
                if duplicate:
                    continue
                if order_mode == 2:
                    reach, done = _any_start(
                        lo, hi, s, row, ts, step_mask, excl_mask, rows, has_rows, n_steps, window, chain,
                        ev_idx, ev_mask, step_of_event, event_of_step, seen_step, par_step, queue,
                    )
                else:
                    done = _start_dp(
                        lo, hi, s, row, ts, step_mask, excl_mask, rows, has_rows, n_steps, window, strict,
                        optional_mask, excl_exposed, excl_from, live, live_chain, term, term_chain, new_live,
                        new_chain, new_term, new_term_chain, done_at, ev_idx, ev_mask, step_of_event,
                        event_of_step, seen_step, par_step, queue,
                    )
                    reach = 0
                    for k in range(n_steps - 1, -1, -1):
                        if live[k]:
                            reach = k + 1
                            for z in range(n_steps):
                                chain[z] = live_chain[k, z]
                            break
                        if term[k]:
                            reach = k + 1
                            for z in range(n_steps):
                                chain[z] = term_chain[k, z]
                            break
                if reach == 0:
                    continue
                # the representative: furthest reach, then the earliest completion, then the latest start
                finish = ts[chain[0]]
                for z in range(n_steps):
                    if chain[z] >= 0:
                        finish = ts[chain[z]]
                if reach == n_steps:
                    finish = done
                better = reach > best or (
                    reach == best
                    and (finish < best_done or (finish == best_done and ts[s] >= best_start_ts))
                )
                if better:
                    best = reach
                    best_done = finish
                    best_start_ts = ts[s]
                    for z in range(n_steps):
                        pick_chain[z] = chain[z]
            if best == 0:
                break
            if best > top:
                top = best
                for z in range(n_steps):
                    top_chain[z] = pick_chain[z]
            if not totals:
                break
            att_contact[n_att] = c
            att_step[n_att] = best
            for z in range(n_steps):
                att_chain[n_att, z] = pick_chain[z]
            n_att += 1
            if best < n_steps:
                break
            cursor = best_done  # re-entry: the next attempt starts after the conversion's instant
        out_best[out_index] = top
        for z in range(n_steps):
            out_chain[out_index, z] = top_chain[z] if top > 0 else -1
        if has_breakdown:
            out_touch[out_index] = touch_value(
                lo, hi, step_mask, rows, has_rows, breakdown,
                -1 if last_touch else first_bits, last_touch,
            )
    return n_att
