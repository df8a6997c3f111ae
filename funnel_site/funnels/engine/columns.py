"""`EventColumns`: the columnar input contract between the database layer and the engine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import FunnelInputError

MISSING = -1  # the factorised code of a missing hold / breakdown value


def frozen(array: np.ndarray) -> np.ndarray:
    """A read-only view of `array` (itself when read-only already).

    numba compiles (and its disk cache stores, and every process loads) one specialisation per
    argument type, and an array's writability is part of its type: the read model hands out
    read-only mapped columns, other callers writable ones. Every input array reaches the kernels
    read-only, so each kernel has one specialisation to load instead of one per combination.
    """
    if not array.flags.writeable:
        return array
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True)
class EventColumns:
    """The events of one funnel query, one array entry per event, all arrays of equal length.

    Sorted by (contact, ts, event id). Per event:

    - `contact` int64: the contact's id; results list these ids.
    - `ts` int64: microseconds since the Unix epoch (UTC).
    - `step_mask` uint32: bit k (0-based) set when the event matches step k+1, every filter of
      the step (properties, campaign, channel, date range) already applied by the caller.
    - `exclusion_mask` uint32: bit j set when the event matches exclusion j (definition order).
    - `hold_value` int64 or None: the factorised value of the hold-constant property, -1 missing.
    - `breakdown_value` int64 or None: the factorised breakdown value, -1 missing;
      `breakdown_labels[code]` is its display text.

    Events matching no step and no exclusion may be left out, except in `strict` order, where every
    event of each contact in the date range must be present: any of them breaks a strict attempt.
    """

    contact: np.ndarray
    ts: np.ndarray
    step_mask: np.ndarray
    exclusion_mask: np.ndarray | None = None
    hold_value: np.ndarray | None = None
    breakdown_value: np.ndarray | None = None
    breakdown_labels: Sequence[str] | None = None
    offsets: np.ndarray | None = None  # optional: `contact_offsets()` when the caller knows it

    @property
    def size(self) -> int:
        """The number of events."""
        return int(self.contact.shape[0])

    def normalised(self, *, check_sorted: bool = True) -> EventColumns:
        """Contiguous arrays of the documented dtypes; raise `FunnelInputError` on a broken contract."""
        n = self.size

        def column(
            values: np.ndarray | None, dtype: type, name: str, default: int | None
        ) -> np.ndarray | None:
            if values is None:
                # np.zeros maps zero pages lazily: no 4 bytes per event written for every query
                return None if default is None else frozen(np.zeros(n, dtype=dtype))
            array = np.ascontiguousarray(values, dtype=dtype)
            if array.ndim != 1 or array.shape[0] != n:
                raise FunnelInputError(f"`{name}` must be a 1-d array of {n} entries")
            return frozen(array)

        contact = column(self.contact, np.int64, "contact", None)
        ts = column(self.ts, np.int64, "ts", None)
        normal = EventColumns(
            contact=contact,
            ts=ts,
            step_mask=column(self.step_mask, np.uint32, "step_mask", None),
            exclusion_mask=column(self.exclusion_mask, np.uint32, "exclusion_mask", 0),
            hold_value=column(self.hold_value, np.int64, "hold_value", None),
            breakdown_value=column(self.breakdown_value, np.int64, "breakdown_value", None),
            breakdown_labels=self.breakdown_labels,
            offsets=None if self.offsets is None else frozen(np.ascontiguousarray(self.offsets, dtype=np.int64)),
        )
        if check_sorted and n > 1:
            same_contact = contact[1:] == contact[:-1]
            if np.any(contact[1:] < contact[:-1]) or np.any(same_contact & (ts[1:] < ts[:-1])):
                raise FunnelInputError("events must be sorted by (contact, ts, event id)")
        return normal

    def contact_offsets(self) -> np.ndarray:
        """int64 offsets of each contact's first event, plus `size` at the end (read-only)."""
        if self.offsets is not None:
            return frozen(self.offsets)
        if self.size == 0:
            return frozen(np.zeros(1, dtype=np.int64))
        change = np.flatnonzero(self.contact[1:] != self.contact[:-1]) + 1
        return frozen(np.concatenate(([0], change, [self.size])).astype(np.int64))

    def hold_rows(self, offsets: np.ndarray) -> tuple[np.ndarray, int]:
        """Per event, the dense index of its hold value within its contact (-1 missing), and the max count."""
        from .kernel_common import hold_rows_into  # compiled; imported here to keep this module light

        if self.hold_value is None:
            raise FunnelInputError("hold-constant needs `hold_value`")
        rows = np.empty(self.size, dtype=np.int64)
        if self.size == 0:
            return frozen(rows), 1
        max_rows = int(hold_rows_into(offsets, frozen(np.ascontiguousarray(self.hold_value, dtype=np.int64)), rows))
        return frozen(rows), max_rows
