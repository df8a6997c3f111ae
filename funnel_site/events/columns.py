"""A columnar, in-memory copy of a workspace's events, for funnels and training data.

Reading millions of rows through the ORM for every funnel query would take seconds; instead each
process keeps, per workspace, numpy arrays of every event sorted by (contact, timestamp, id), and
refreshes them incrementally: events are append-only, so only rows with an id above the newest one
loaded are fetched (PostgreSQL: one binary COPY parsed with numpy, no Python loop per row), sorted,
and merged in O(n). Stages are not copied from the table: they are derived from the event names
with the workspace's current stage map (and repeat purchase -> loyalty), so a changed map or a late
first purchase is always reflected.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from django.db import connection

from funnel_site.events.stages import LOYALTY, PURCHASE, STAGES, StageResolver

PG_EPOCH_US = 946_684_800 * 1_000_000  # PostgreSQL's binary timestamps count from 2000-01-01
NO_STAGE = -1
STAGE_CODES = {stage: i for i, stage in enumerate(STAGES)}


@dataclass
class WorkspaceColumns:
    """Every event of one workspace as arrays sorted by (contact, ts, event id)."""

    workspace_id: int
    event_id: np.ndarray  # int64
    contact: np.ndarray  # int64 Contact.id
    ts: np.ndarray  # int64 microseconds since the Unix epoch, UTC
    name: np.ndarray  # int32 code into `names`
    campaign: np.ndarray  # int64 Campaign.id, -1 when none
    channel: np.ndarray  # int32 code into `channels`
    value: np.ndarray  # float64, nan when none
    names: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    max_event_id: int = 0

    @property
    def size(self) -> int:
        return int(self.event_id.shape[0])

    def name_codes(self, wanted: list[str]) -> np.ndarray:
        """Codes of the given event names (names never seen are left out)."""
        index = {n: i for i, n in enumerate(self.names)}
        return np.array([index[n] for n in wanted if n in index], dtype=np.int32)

    def stages(self, resolver: StageResolver) -> np.ndarray:
        """int8 stage code per event (-1 none), with a purchase after the contact's first as loyalty."""
        table = np.array([STAGE_CODES.get(resolver.stage_of(n), NO_STAGE) for n in self.names] or [NO_STAGE],
                         dtype=np.int8)
        stage = table[self.name] if self.size else np.zeros(0, dtype=np.int8)
        is_purchase = stage == STAGE_CODES[PURCHASE]
        if is_purchase.any():
            # events are sorted by contact then time: a purchase is a repeat when an earlier
            # purchase of the same contact exists, i.e. the running count within the contact > 1
            starts = np.r_[True, self.contact[1:] != self.contact[:-1]]
            cum = np.cumsum(is_purchase)
            group_start = np.maximum.accumulate(np.where(starts, np.arange(self.size), 0))
            before = cum - np.where(group_start > 0, cum[group_start - 1], 0)
            stage = stage.copy()
            stage[is_purchase & (before > 1)] = STAGE_CODES[LOYALTY]
        return stage

    def datetime_of(self, micros: int) -> datetime:
        return datetime.fromtimestamp(micros / 1e6, tz=UTC)


def _empty(workspace_id: int) -> WorkspaceColumns:
    return WorkspaceColumns(
        workspace_id=workspace_id,
        event_id=np.zeros(0, np.int64), contact=np.zeros(0, np.int64), ts=np.zeros(0, np.int64),
        name=np.zeros(0, np.int32), campaign=np.zeros(0, np.int64), channel=np.zeros(0, np.int32),
        value=np.zeros(0, np.float64),
    )


_PG_HEADER = 19  # COPY binary: signature (11) + flags (4) + extension length (4)
_FETCH_ROWS = 1_000_000
# (column expression, numpy element type) of each array fetched
_PG_COLUMNS = (
    ("id", ">i8"),
    ("contact_id", ">i8"),
    ('"timestamp"', ">i8"),
    ("hashtext(name)", ">i4"),
    ("COALESCE(campaign_id, -1)", ">i8"),
    ("hashtext(channel)", ">i4"),
    ("COALESCE(value, 'NaN'::float8)", ">f8"),
)


def _parse_binary_arrays(buffer: bytes, n_numeric: int) -> tuple[list[np.ndarray | None], list[list[str]]]:
    """Parse one COPY binary row: `n_numeric` arrays of fixed-width numbers, then text arrays."""
    view = memoryview(buffer)
    pos = _PG_HEADER
    nfields = int.from_bytes(view[pos : pos + 2], "big", signed=True)
    pos += 2
    numeric: list[np.ndarray | None] = []
    texts: list[list[str]] = []
    for field_index in range(nfields):
        length = int.from_bytes(view[pos : pos + 4], "big", signed=True)
        pos += 4
        if length < 0:  # NULL: array_agg over no rows
            (numeric if field_index < n_numeric else texts).append(None if field_index < n_numeric else [])
            continue
        ndim = int.from_bytes(view[pos : pos + 4], "big")
        count = int.from_bytes(view[pos + 12 : pos + 16], "big") if ndim else 0
        start = pos + 12 + 8 * ndim
        if field_index < n_numeric:
            element = np.dtype([("len", ">i4"), ("value", _PG_COLUMNS[field_index][1])])
            data = np.frombuffer(view[start : start + count * element.itemsize], dtype=element)
            numeric.append(data["value"])
        else:
            values, at = [], start
            for _ in range(count):  # few distinct strings: a Python loop is fine here
                size = int.from_bytes(view[at : at + 4], "big", signed=True)
                values.append(bytes(view[at + 4 : at + 4 + size]).decode())
                at += 4 + size
            texts.append(values)
        pos += length
    return numeric, texts


def _fetch_postgres(workspace_id: int, after_id: int, upto_id: int) -> dict[str, np.ndarray] | None:
    """New events as arrays: COPY of one row of arrays per million events, parsed by numpy.

    One row of arrays (array_agg) rather than a row per event, because psycopg hands COPY data
    over row by row and a Python step per event would cost more than the database does.
    """
    from funnel_site.events.models import Event

    table = Event._meta.db_table
    where = "workspace_id = %s AND id > %s AND id <= %s"
    parts: list[list[np.ndarray]] = []
    with connection.cursor() as cursor:
        # the dictionaries of the hashed strings: hash aggregates (far cheaper than DISTINCT's sorts)
        cursor.execute(f"SELECT hashtext(name), name FROM {table} WHERE {where} GROUP BY name",
                       (workspace_id, after_id, upto_id))
        name_pairs = cursor.fetchall()
        cursor.execute(f"SELECT hashtext(channel), channel FROM {table} WHERE {where} GROUP BY channel",
                       (workspace_id, after_id, upto_id))
        channel_pairs = cursor.fetchall()
        raw = cursor.cursor
        # No ORDER BY inside array_agg: every aggregate of one query sees the rows in the same order,
        # which is all the alignment of the arrays needs (numpy sorts them afterwards); sorting seven
        # times in the database cost more than the whole transfer.
        aggregates = ", ".join(f"array_agg(c{i})" for i in range(len(_PG_COLUMNS)))
        exprs = ", ".join(f"{expr} AS c{i}" for i, (expr, _) in enumerate(_PG_COLUMNS))
        cursor_id = after_id
        while cursor_id < upto_id:
            query = raw.mogrify(
                f"COPY (SELECT {aggregates} FROM (SELECT {exprs} FROM {table} WHERE {where} "
                f"ORDER BY id LIMIT {_FETCH_ROWS}) t) TO STDOUT (FORMAT binary)",
                (workspace_id, cursor_id, upto_id),
            )
            buffer = bytearray()
            with raw.copy(query) as copy:
                for chunk in copy:
                    buffer += chunk
            arrays, _ = _parse_binary_arrays(bytes(buffer), len(_PG_COLUMNS))
            if arrays[0] is None or arrays[0].shape[0] == 0:
                break
            parts.append(arrays)
            cursor_id = int(arrays[0].max())
            if arrays[0].shape[0] < _FETCH_ROWS:
                break
    if not parts:
        return None
    columns = [np.concatenate([p[i] for p in parts]) for i in range(len(_PG_COLUMNS))]
    return {
        "event_id": columns[0].astype(np.int64),
        "contact": columns[1].astype(np.int64),
        "ts": columns[2].astype(np.int64) + PG_EPOCH_US,
        "name_hash": columns[3].astype(np.int64),
        "campaign": columns[4].astype(np.int64),
        "channel_hash": columns[5].astype(np.int64),
        "value": columns[6].astype(np.float64),
        "name_pairs": name_pairs,
        "channel_pairs": channel_pairs,
    }


def _fetch_generic(workspace_id: int, after_id: int, upto_id: int) -> dict[str, np.ndarray] | None:
    """New events through the ORM (SQLite, the embedded default: small data)."""
    from funnel_site.events.models import Event

    rows = list(
        Event.objects.filter(workspace_id=workspace_id, id__gt=after_id, id__lte=upto_id).values_list(
            "id", "contact_id", "timestamp", "name", "campaign_id", "channel", "value"
        )
    )
    if not rows:
        return None
    names = sorted({r[3] for r in rows})
    channels = sorted({r[5] for r in rows})
    name_hash = {n: i for i, n in enumerate(names)}
    channel_hash = {c: i for i, c in enumerate(channels)}
    return {
        "event_id": np.array([r[0] for r in rows], np.int64),
        "contact": np.array([r[1] for r in rows], np.int64),
        "ts": np.array([int(r[2].timestamp() * 1_000_000) for r in rows], np.int64),
        "name_hash": np.array([name_hash[r[3]] for r in rows], np.int64),
        "campaign": np.array([-1 if r[4] is None else r[4] for r in rows], np.int64),
        "channel_hash": np.array([channel_hash[r[5]] for r in rows], np.int64),
        "value": np.array([np.nan if r[6] is None else r[6] for r in rows], np.float64),
        "name_pairs": [(i, n) for n, i in name_hash.items()],
        "channel_pairs": [(i, c) for c, i in channel_hash.items()],
    }


def _encode(hashes: np.ndarray, pairs: list[tuple[int, str]], vocabulary: list[str]) -> np.ndarray:
    """Map per-row hashes to codes into `vocabulary` (extended in place with new strings)."""
    by_hash: dict[int, str] = {}
    for h, text in pairs:
        if h in by_hash and by_hash[h] != text:  # a hashtext collision: refuse rather than mix names
            raise RuntimeError(f"hash collision between event names {by_hash[h]!r} and {text!r}")
        by_hash[h] = text
    index = {t: i for i, t in enumerate(vocabulary)}
    for text in by_hash.values():
        if text not in index:
            index[text] = len(vocabulary)
            vocabulary.append(text)
    unique, inverse = np.unique(hashes, return_inverse=True)
    lookup = np.array([index[by_hash[int(h)]] for h in unique], dtype=np.int32)
    return lookup[inverse]


def _merge(old: WorkspaceColumns, new: dict[str, np.ndarray]) -> WorkspaceColumns:
    names, channels = list(old.names), list(old.channels)
    delta = {
        "event_id": new["event_id"],
        "contact": new["contact"],
        "ts": new["ts"],
        "name": _encode(new["name_hash"], new["name_pairs"], names),
        "campaign": new["campaign"],
        "channel": _encode(new["channel_hash"], new["channel_pairs"], channels),
        "value": new["value"],
    }
    order = np.lexsort((delta["event_id"], delta["ts"], delta["contact"]))
    delta = {k: v[order] for k, v in delta.items()}
    if old.size < 20 * delta["event_id"].shape[0]:
        # a large delta (or the first load): one sort of everything is cheaper than inserting
        merged = {k: np.concatenate((getattr(old, k), v)) for k, v in delta.items()}
        order = np.lexsort((merged["event_id"], merged["ts"], merged["contact"]))
        merged = {k: v[order] for k, v in merged.items()}
    else:
        # positions of the delta rows within the old arrays, by (contact, ts, id): the delta is
        # small and sorted, the old arrays are sorted, so a stable merge is a concatenation plus
        # an insertion-position sort (O(n) memory traffic, O(m log n) comparisons)
        positions = _insert_positions(old, delta)
        merged = {}
        for key in delta:
            merged[key] = np.insert(getattr(old, key), positions, delta[key])
    return WorkspaceColumns(
        workspace_id=old.workspace_id, names=names, channels=channels,
        max_event_id=max(old.max_event_id, int(new["event_id"].max())), **merged,
    )


def _insert_positions(old: WorkspaceColumns, delta: dict[str, np.ndarray]) -> np.ndarray:
    """For each (sorted) delta row, the index in `old` before which it belongs."""
    lo = np.searchsorted(old.contact, delta["contact"], side="left")
    hi = np.searchsorted(old.contact, delta["contact"], side="right")
    positions = np.empty(lo.shape[0], dtype=np.int64)
    for i in range(lo.shape[0]):  # per delta row, a binary search within its contact's slice
        a, b = lo[i], hi[i]
        if a == b:
            positions[i] = a
            continue
        ts_slice = old.ts[a:b]
        t = delta["ts"][i]
        left = a + np.searchsorted(ts_slice, t, side="left")
        right = a + np.searchsorted(ts_slice, t, side="right")
        if left != right:  # equal timestamps: order by event id
            left += np.searchsorted(old.event_id[left:right], delta["event_id"][i], side="left")
        positions[i] = left
    return positions


class ColumnCache:
    """Per-process cache of WorkspaceColumns, refreshed incrementally on each use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_workspace: dict[int, WorkspaceColumns] = {}

    def get(self, workspace_id: int) -> WorkspaceColumns:
        """The workspace's events as of now (fetching only what arrived since the last call)."""
        from funnel_site.events.models import Event

        with self._lock:
            current = self._by_workspace.get(workspace_id) or _empty(workspace_id)
            newest = (
                Event.objects.filter(workspace_id=workspace_id).order_by("-id").values_list("id", flat=True).first()
            ) or 0
            if newest > current.max_event_id:
                fetch = _fetch_postgres if connection.vendor == "postgresql" else _fetch_generic
                new = fetch(workspace_id, current.max_event_id, newest)
                if new is not None:
                    current = _merge(current, new)
                current.max_event_id = max(current.max_event_id, newest)
                self._by_workspace[workspace_id] = current
            return current

    def clear(self) -> None:
        """Forget everything (tests; a workspace deleted)."""
        with self._lock:
            self._by_workspace.clear()


column_cache = ColumnCache()


def workspace_columns(workspace_id: int) -> WorkspaceColumns:
    """The columnar events of a workspace, up to date."""
    return column_cache.get(workspace_id)
