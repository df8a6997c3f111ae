"""Bipartite matching between a tie group's events and funnel steps (Kuhn's augmenting paths).

Steps are at most 20, so every search is a breadth-first walk over steps; events are the other
side. Used by `kernel_ties`, where the events of one timestamp may take steps in any order.
"""

from __future__ import annotations

from ._jit import njit


@njit
def _augment(root, ev_mask, n_ev, allowed, step_of_event, event_of_step, seen_step, par_step, queue):
    """Find an alternating path from step `root` to a free event (steps limited to `allowed` bits)."""
    n_steps = event_of_step.shape[0]
    for z in range(n_steps):
        seen_step[z] = 0
    seen_step[root] = 1
    par_step[root] = -1
    head = 0
    tail = 1
    queue[0] = root
    while head < tail:
        u = queue[head]
        head += 1
        for e in range(n_ev):
            if ((ev_mask[e] >> u) & 1) == 0 or event_of_step[u] == e:
                continue
            v = step_of_event[e]
            if v < 0:
                # flip the path: e goes to u, u's old event to u's parent step, and so on
                cur_step = u
                cur_event = e
                while True:
                    old = event_of_step[cur_step]
                    event_of_step[cur_step] = cur_event
                    step_of_event[cur_event] = cur_step
                    if cur_step == root:
                        break
                    cur_event = old
                    cur_step = par_step[cur_step]
                return True
            if seen_step[v] == 0 and ((allowed >> v) & 1):
                seen_step[v] = 1
                par_step[v] = u
                queue[tail] = v
                tail += 1
    return False


@njit
def match_steps(ev_mask, n_ev, required, extra, step_of_event, event_of_step, seen_step, par_step, queue):
    """Match the `required` step bits first, then the `extra` ones; (all required matched, size)."""
    n_steps = event_of_step.shape[0]
    for e in range(n_ev):
        step_of_event[e] = -1
    for z in range(n_steps):
        event_of_step[z] = -1
    allowed = required | extra
    size = 0
    for s in range(n_steps):
        if (required >> s) & 1:
            if not _augment(s, ev_mask, n_ev, allowed, step_of_event, event_of_step, seen_step, par_step, queue):
                return False, size
            size += 1
    for s in range(n_steps):
        if (extra >> s) & 1 and _augment(
            s, ev_mask, n_ev, allowed, step_of_event, event_of_step, seen_step, par_step, queue
        ):
            size += 1
    return True, size


@njit
def augment_event(e, ev_mask, event_of_step, step_of_event, seen_step, par_step, queue, banned):
    """Place event `e` on some step other than `banned`, moving holders along an alternating path."""
    n_steps = event_of_step.shape[0]
    for z in range(n_steps):
        seen_step[z] = 0
    if banned >= 0:
        seen_step[banned] = 1
    # BFS over steps reachable from e: par_step[v] = the step whose holder moves into v (-1: e itself)
    head = 0
    tail = 0
    for v in range(n_steps):
        if (ev_mask[e] >> v) & 1 and seen_step[v] == 0:
            seen_step[v] = 1
            par_step[v] = -1
            queue[tail] = v
            tail += 1
    while head < tail:
        v = queue[head]
        head += 1
        holder = event_of_step[v]
        if holder < 0:
            # v is free: shift along the path back to e
            cur = v
            while True:
                parent = par_step[cur]
                mover = e if parent < 0 else event_of_step[parent]
                event_of_step[cur] = mover
                step_of_event[mover] = cur
                if parent < 0:
                    break
                cur = parent
            return True
        for w in range(n_steps):
            if (ev_mask[holder] >> w) & 1 and seen_step[w] == 0:
                seen_step[w] = 1
                par_step[w] = v
                queue[tail] = w
                tail += 1
    return False
