"""The input contract: a columnar, sorted table of events (``EventFrame``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

STAGES = ("awareness", "interest", "consideration", "purchase", "loyalty")
COLUMNS = ("contact", "ts", "name", "stage", "is_purchase", "campaign", "channel", "value")


@dataclass(frozen=True, eq=False)
class EventFrame:
    """Events as numpy columns sorted by (contact, ts).

    contact: int64 contact ids; ts: int64 unix seconds; name: event names (object);
    stage: one of STAGES or '' (object); is_purchase: the name maps to the purchase stage
    (repeat purchases included, even when their stage is loyalty); campaign, channel: str ('' if
    none); value: float64, nan if none.
    """

    contact: np.ndarray
    ts: np.ndarray
    name: np.ndarray
    stage: np.ndarray
    is_purchase: np.ndarray
    campaign: np.ndarray
    channel: np.ndarray
    value: np.ndarray
    _groups: dict = field(default_factory=dict, repr=False, compare=False)  # caches: groups, factorizations

    def __post_init__(self) -> None:
        n = len(self.contact)
        for column in COLUMNS:
            if len(getattr(self, column)) != n:
                raise ValueError(f"column {column!r} has {len(getattr(self, column))} rows, expected {n}")
        if n > 1:
            same = self.contact[1:] == self.contact[:-1]
            if np.any(self.contact[1:] < self.contact[:-1]) or np.any(same & (self.ts[1:] < self.ts[:-1])):
                raise ValueError(
                    "EventFrame columns must be sorted by (contact, ts); use EventFrame.from_arrays"
                )

    def __len__(self) -> int:
        return len(self.contact)

    @classmethod
    def from_arrays(
        cls,
        contact: Sequence,
        ts: Sequence,
        name: Sequence,
        stage: Sequence | None = None,
        is_purchase: Sequence | None = None,
        campaign: Sequence | None = None,
        channel: Sequence | None = None,
        value: Sequence | None = None,
    ) -> EventFrame:
        """Build from columns (any order); missing columns get defaults, rows are sorted."""
        contact_arr = np.asarray(contact, dtype=np.int64)
        n = len(contact_arr)
        ts_arr = np.asarray(ts, dtype=np.int64)
        name_arr = _str_column(name, n)
        stage_arr = _str_column(stage, n)
        purchase_arr = stage_arr == "purchase" if is_purchase is None else np.asarray(is_purchase, dtype=bool)
        value_arr = np.full(n, np.nan) if value is None else np.asarray(value, dtype=np.float64)
        order = np.lexsort((ts_arr, contact_arr))
        return cls(
            contact=contact_arr[order],
            ts=ts_arr[order],
            name=name_arr[order],
            stage=stage_arr[order],
            is_purchase=purchase_arr[order],
            campaign=_str_column(campaign, n)[order],
            channel=_str_column(channel, n)[order],
            value=value_arr[order],
        )

    @classmethod
    def from_records(cls, records: Iterable[Mapping | Sequence]) -> EventFrame:
        """Build from dicts (keys as COLUMNS; ``is_purchase`` defaults to stage == 'purchase')
        or tuples in COLUMNS order (trailing fields optional). Malformed records are dropped."""
        columns: dict[str, list] = {c: [] for c in COLUMNS}
        for record in records:
            row = _normalise_record(record)
            if row is None:
                continue
            for column, item in zip(COLUMNS, row, strict=True):
                columns[column].append(item)
        return cls.from_arrays(**columns)

    @classmethod
    def empty(cls) -> EventFrame:
        """A frame with no events."""
        return cls.from_arrays([], [], [])

    def select(self, mask: np.ndarray) -> EventFrame:
        """Rows where ``mask`` is true (order kept, so still sorted)."""
        return EventFrame(*(getattr(self, c)[mask] for c in COLUMNS))

    def before(self, cutoff: int) -> EventFrame:
        """Only events strictly before ``cutoff``."""
        return self.select(self.ts < cutoff)

    @property
    def end_ts(self) -> int:
        """Exclusive end of observed time: newest event + 1 second."""
        if len(self) == 0:
            raise ValueError("the frame has no events")
        return int(self.ts.max()) + 1

    def factorized(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """(codes, distinct values) of a string column, values[codes] equal to the column; cached. A frame
        made from coded columns is given them (`with_factorized`) instead of hashing every row."""
        key = f"factorized:{column}"
        if key not in self._groups:
            self._groups[key] = _factorize(getattr(self, column))
        return self._groups[key]

    def with_factorized(self, column: str, codes: np.ndarray, values: np.ndarray) -> EventFrame:
        """Record the factorization of a string column (values[codes] must equal it); returns the frame."""
        self._groups[f"factorized:{column}"] = (np.asarray(codes), np.asarray(values, dtype=object))
        return self

    def groups(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(unique contact ids, start row, end row (exclusive), dense contact index per row); cached."""
        if "value" not in self._groups:
            if len(self) == 0:
                empty = np.zeros(0, dtype=np.int64)
                self._groups["value"] = (empty, empty, empty, empty)
            else:
                boundaries = np.flatnonzero(self.contact[1:] != self.contact[:-1]) + 1
                starts = np.concatenate(([0], boundaries)).astype(np.int64)
                ends = np.concatenate((boundaries, [len(self)])).astype(np.int64)
                index = np.repeat(np.arange(len(starts), dtype=np.int64), ends - starts)
                self._groups["value"] = (self.contact[starts], starts, ends, index)
        return self._groups["value"]


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    codes, uniques = pd.factorize(values)
    return codes, np.asarray(uniques, dtype=object)


def _str_column(values: Sequence | None, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, "", dtype=object)
    out = np.empty(n, dtype=object)
    out[:] = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values]
    return out


def _normalise_record(record: Mapping | Sequence) -> tuple | None:
    """One record as a full COLUMNS tuple, or None when malformed (no contact/ts/name)."""
    if isinstance(record, Mapping):
        items = [record.get(c) for c in COLUMNS]
    else:
        items = list(record) + [None] * (len(COLUMNS) - len(record))
    contact, ts, name, stage, is_purchase, campaign, channel, value = items[: len(COLUMNS)]
    try:
        contact = int(contact)
        ts = int(ts)
    except (TypeError, ValueError, OverflowError):
        return None
    if name is None or str(name) == "" or ts < 0:
        return None
    stage = "" if stage is None else str(stage)
    if stage and stage not in STAGES:
        stage = ""
    if is_purchase is None:
        is_purchase = stage == "purchase"
    try:
        value = float("nan") if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value):
        value = float("nan")
    return (contact, ts, str(name), stage, bool(is_purchase), campaign or "", channel or "", value)
