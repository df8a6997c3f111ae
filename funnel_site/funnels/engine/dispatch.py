"""Kernel dispatch: which compiled kernel runs which contacts, in threads and deadline-checked chunks."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .columns import EventColumns, frozen
from .definition import FunnelDefinition
from .errors import FunnelTimeoutError
from .kernel_any import any_kernel
from .kernel_lean import lean_kernel
from .kernel_ordered import ordered_kernel
from .kernel_ties import tie_hard_flags, ties_kernel
from .stats import MICROS

ORDER_MODES = {"sequential": 0, "strict": 1, "any": 2}
MIN_CONTACTS_PER_THREAD = 20_000
DEADLINE_CHUNK_CONTACTS = 100_000  # with a deadline, it is checked before each chunk this size
TIE_CHUNK_CONTACTS = 2_000  # the tie kernel is slower per contact: check the deadline more often


def _exclusion_arrays(definition: FunnelDefinition) -> tuple[np.ndarray, np.ndarray]:
    """Per exclusion: the bits of the 0-based steps k with a <= k+1 < b, and a-1."""
    exposed = np.zeros(len(definition.exclusions), dtype=np.int64)
    start = np.zeros(len(definition.exclusions), dtype=np.int64)
    for j, exclusion in enumerate(definition.exclusions):
        for k in range(exclusion.from_step - 1, exclusion.to_step - 1):
            exposed[j] |= 1 << k
        start[j] = exclusion.from_step - 1
    return exposed, start


def _thread_count(n_contacts: int) -> int:
    wanted = int(os.environ.get("FUNNEL_ENGINE_THREADS", os.cpu_count() or 1))
    return max(1, min(wanted, n_contacts // MIN_CONTACTS_PER_THREAD, 16))


def run_kernels(
    definition: FunnelDefinition,
    columns: EventColumns,
    offsets: np.ndarray,
    rows: np.ndarray,
    max_rows: int,
    optional_mask: int,
    with_outputs: bool,
    deadline: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per-contact outputs and totals attempts of every contact (rows of `offsets`).

    The fast kernel runs over contiguous chunks of contacts, one thread each (the kernels release
    the GIL); then the contacts whose ties need it are re-run by `kernel_ties`.

    With a `deadline` (a `time.monotonic()` value) chunks are at most `DEADLINE_CHUNK_CONTACTS`
    contacts and each checks it first, raising `FunnelTimeoutError` once it has passed.
    """
    n_steps = definition.step_count
    n_contacts = offsets.shape[0] - 1
    totals = definition.count == "totals" and with_outputs
    has_breakdown = columns.breakdown_value is not None and definition.breakdown is not None and with_outputs
    last_touch = definition.breakdown is not None and definition.breakdown.attribution == "last_touch"
    out_touch = np.full(n_contacts, -1, dtype=np.int64) if has_breakdown else np.zeros(1, dtype=np.int64)
    breakdown = columns.breakdown_value if has_breakdown else frozen(np.zeros(1, dtype=np.int64))
    window = definition.window_seconds * MICROS
    has_rows = definition.hold_constant is not None
    exposed, start = _exclusion_arrays(definition)
    entry_bits = np.uint32(0xFFFFFFFF if definition.order == "any" else 1)
    # the common query gets the lean state machine (no exclusions, holds or attempt lists)
    lean = definition.order == "sequential" and not definition.exclusions and not has_rows and not totals
    # The lean kernel writes every contact's best and chain row itself: no fill pass over 40 MB
    # (at 1 M contacts) in this thread first; its pages are touched by the kernel threads instead.
    out_best = np.empty(n_contacts, dtype=np.int64) if lean else np.zeros(n_contacts, dtype=np.int64)
    out_chain = (np.empty((n_contacts, n_steps), dtype=np.int64) if lean
                 else np.full((n_contacts, n_steps), -1, dtype=np.int64))
    out_hard = np.zeros(n_contacts if lean else 1, dtype=np.bool_)
    threads = _thread_count(n_contacts)
    n_chunks = threads if deadline is None else max(threads, -(-n_contacts // DEADLINE_CHUNK_CONTACTS))
    chunks = np.linspace(0, n_contacts, n_chunks + 1).astype(np.int64)

    def run_chunk(c_lo: int, c_hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if deadline is not None and time.monotonic() > deadline:
            raise FunnelTimeoutError("the funnel query passed its deadline in the engine")
        capacity = 1
        if totals:
            events = slice(offsets[c_lo], offsets[c_hi])
            capacity += int(np.count_nonzero(columns.step_mask[events] & entry_bits))
        att_contact = np.zeros(capacity, dtype=np.int64)
        att_step = np.zeros(capacity, dtype=np.int64)
        att_chain = np.full((capacity, n_steps), -1, dtype=np.int64)
        touch = out_touch[c_lo:c_hi] if has_breakdown else out_touch
        if lean:
            lean_kernel(
                offsets, c_lo, c_hi, columns.ts, columns.step_mask, n_steps, window, optional_mask,
                breakdown, has_breakdown, last_touch, out_best[c_lo:c_hi], out_chain[c_lo:c_hi], touch,
                out_hard[c_lo:c_hi],
            )
            n_att = 0
        elif definition.order == "any":
            n_att = any_kernel(
                offsets,
                c_lo,
                c_hi,
                columns.ts,
                columns.step_mask,
                columns.exclusion_mask,
                rows,
                has_rows,
                max_rows,
                n_steps,
                window,
                totals,
                breakdown,
                has_breakdown,
                last_touch,
                out_best[c_lo:c_hi],
                out_chain[c_lo:c_hi],
                touch,
                att_contact,
                att_step,
                att_chain,
            )
        else:
            n_att = ordered_kernel(
                offsets,
                c_lo,
                c_hi,
                columns.ts,
                columns.step_mask,
                columns.exclusion_mask,
                rows,
                has_rows,
                max_rows,
                n_steps,
                window,
                definition.order == "strict",
                optional_mask,
                exposed,
                start,
                totals,
                breakdown,
                has_breakdown,
                last_touch,
                out_best[c_lo:c_hi],
                out_chain[c_lo:c_hi],
                touch,
                att_contact,
                att_step,
                att_chain,
            )
        return att_contact[:n_att], att_step[:n_att], att_chain[:n_att]

    bounds = [(int(chunks[x]), int(chunks[x + 1])) for x in range(len(chunks) - 1)]
    if len(bounds) == 1 or threads == 1:
        parts = [run_chunk(*bound) for bound in bounds]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            parts = list(pool.map(lambda bound: run_chunk(*bound), bounds))
    attempts = tuple(np.concatenate([part[x] for part in parts]) for x in range(3))
    mode = ORDER_MODES[definition.order]
    if lean:
        hard = np.flatnonzero(out_hard)
    else:
        hard = np.flatnonzero(
            tie_hard_flags(offsets, columns.ts, columns.step_mask, columns.exclusion_mask, mode, totals)
        )
    if hard.size:
        # Contacts whose ties the fast kernels cannot order once for all attempts: the exact kernel,
        # in chunks so that the deadline is checked as it goes.
        capacity = 1
        if totals:
            lengths = offsets[hard + 1] - offsets[hard]
            capacity += int(lengths.sum())
        att_contact = np.zeros(capacity, dtype=np.int64)
        att_step = np.zeros(capacity, dtype=np.int64)
        att_chain = np.full((capacity, n_steps), -1, dtype=np.int64)
        hard_best = np.zeros(hard.size, dtype=np.int64)
        hard_chain = np.full((hard.size, n_steps), -1, dtype=np.int64)
        hard_touch = np.full(hard.size, -1, dtype=np.int64) if has_breakdown else np.zeros(1, dtype=np.int64)
        n_att = 0
        for at in range(0, hard.size, TIE_CHUNK_CONTACTS):
            if deadline is not None and time.monotonic() > deadline:
                raise FunnelTimeoutError("the funnel query passed its deadline in the engine")
            part = slice(at, at + TIE_CHUNK_CONTACTS)
            n_att += ties_kernel(
                offsets, hard[part], columns.ts, columns.step_mask, columns.exclusion_mask, rows, has_rows,
                n_steps, window, mode, optional_mask, exposed, start, totals, breakdown, has_breakdown,
                last_touch, hard_best[part], hard_chain[part], hard_touch[part] if has_breakdown else hard_touch,
                att_contact[n_att:], att_step[n_att:], att_chain[n_att:],
            )
        out_best[hard] = hard_best
        out_chain[hard] = hard_chain
        if has_breakdown:
            out_touch[hard] = hard_touch
        if totals:
            keep = ~np.isin(attempts[0], hard)
            merged = [np.concatenate((part[keep], extra[:n_att])) for part, extra in zip(
                attempts, (att_contact, att_step, att_chain), strict=True)]
            by_contact = np.argsort(merged[0], kind="stable")
            attempts = tuple(part[by_contact] for part in merged)
    return out_best, out_chain, (out_touch if has_breakdown else None), attempts
