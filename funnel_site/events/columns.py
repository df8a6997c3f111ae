"""The read model: a workspace's committed events as columns, the same in every process.

Funnels, training frames and scoring read `workspace_columns(id)`: numpy arrays of every event
sorted by (contact, timestamp, event id). What has been read is a position in the commit-ordered
ingest log (`funnel_site.events.ingestlog`), not a high-water mark of ids: each refresh consumes
the log rows after that position and the events they name, in one database snapshot
(`columns_read`), dropping ids read already, so every committed event is read exactly once and
never half a batch, whatever order transactions commit in. The position (`version`) is what
results caches key on.

The arrays live in a snapshot on disk (`snapshots`) that every process maps read-only, so the
page cache holds one copy for all web and worker processes and a fresh process starts from it in
well under a second instead of loading every event; whoever refreshes first writes the next
version (one writer at a time, a file lock) and the others map it. Inside a caller's transaction
(data not known to be committed) nothing is written to disk and the columns are merged in memory.

Stages are not stored: `stages()` derives them with `stages.derive_stages`, the one definition.
A reader that cannot catch up (database unreachable, lock held too long) raises
`ReadModelUnavailable` rather than answer from old data.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import structlog
from django.conf import settings
from django.db import DatabaseError, connection

from funnel_site.events import columns_read, snapshots
from funnel_site.events.stages import NO_STAGE, STAGE_CODES, STAGES, StageResolver, derive_stages

log = structlog.get_logger(__name__)

__all__ = ["NO_STAGE", "STAGE_CODES", "ReadModelUnavailable", "WorkspaceColumns", "column_cache", "workspace_columns"]
_KEYS = tuple(snapshots.COLUMNS)


class ReadModelUnavailable(Exception):
    """The workspace's events cannot be brought up to date now; answering would show old counts."""


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
    epoch: str = ""  # the ingest log's epoch and the newest log row read: what has been read
    seq: int = 0
    last_range: tuple[int, ...] = (0, 0, 0)  # identifies log row `seq` (columns_read.log_range)
    on_disk: bool = False
    snapshot_name: str = ""  # the version directory mapped, when on disk
    # read inside a caller's transaction: may hold writes that transaction later rolls back
    provisional: bool = False

    @property
    def size(self) -> int:
        return int(self.event_id.shape[0])

    @property
    def version(self) -> str:
        """What has been read, as a key for results caches: `<log epoch>.<log sequence number>`."""
        return f"{self.epoch}.{self.seq}"

    def contacts_between(self, first: int, last: int) -> WorkspaceColumns:
        """The events of Contact ids first..last (inclusive): slices (views) of the sorted arrays, so a
        scoring shard reads only its contacts' pages of a mapped snapshot."""
        lo = int(np.searchsorted(self.contact, first, side="left"))
        hi = int(np.searchsorted(self.contact, last, side="right"))
        return dataclasses.replace(self, **{k: getattr(self, k)[lo:hi] for k in _KEYS})

    def name_codes(self, wanted: list[str]) -> np.ndarray:
        """Codes of the given event names (names never seen are left out)."""
        index = {n: i for i, n in enumerate(self.names)}
        return np.array([index[n] for n in wanted if n in index], dtype=np.int32)

    def stages(self, resolver: StageResolver) -> np.ndarray:
        """int8 stage code per event (-1 none), derived by `stages.derive_stages`."""
        table = np.array([STAGE_CODES.get(resolver.stage_of(n), NO_STAGE) for n in self.names] or [NO_STAGE],
                         dtype=np.int8)
        return derive_stages(table[self.name] if self.size else np.zeros(0, np.int8), self.contact)

    def stage_counts(self, resolver: StageResolver) -> dict[str, int]:
        """Events per derived stage ('' for none)."""
        counts = np.bincount(self.stages(resolver).astype(np.int64) + 1, minlength=len(STAGES) + 1)
        return {"": int(counts[0]), **{s: int(counts[i + 1]) for i, s in enumerate(STAGES)}}

    def datetime_of(self, micros: int) -> datetime:
        return datetime.fromtimestamp(micros / 1e6, tz=UTC)


def _empty(workspace_id: int) -> WorkspaceColumns:
    return WorkspaceColumns(workspace_id=workspace_id, **{k: np.zeros(0, t) for k, t in snapshots.COLUMNS.items()})


def _from_snapshot(workspace_id: int, snap: snapshots.Snapshot) -> WorkspaceColumns:
    m = snap.manifest
    return WorkspaceColumns(
        workspace_id=workspace_id, **snap.arrays, names=list(m["names"]), channels=list(m["channels"]),
        max_event_id=int(m["max_event_id"]), epoch=m["epoch"], seq=int(m["seq"]),
        last_range=tuple(m["last_range"]), on_disk=True, snapshot_name=snap.path.name,
    )


def _encode(hashes: np.ndarray, pairs: list[tuple[int, str]], vocabulary: list[str]) -> np.ndarray:
    """Map per-row hashes to codes into `vocabulary` (extended in place with new strings)."""
    by_hash = dict(pairs)
    index = {t: i for i, t in enumerate(vocabulary)}
    for text in by_hash.values():
        if text not in index:
            index[text] = len(vocabulary)
            vocabulary.append(text)
    unique, inverse = np.unique(hashes, return_inverse=True)
    lookup = np.array([index[by_hash[int(h)]] for h in unique], dtype=np.int32)
    return lookup[inverse] if hashes.shape[0] else np.zeros(0, np.int32)


def _new_rows(old: WorkspaceColumns, delta: columns_read.Delta) -> tuple[dict[str, np.ndarray], list, list]:
    """The delta's events not read before, encoded and sorted by (contact, ts, id)."""
    names, channels = list(old.names), list(old.channels)
    c = delta.columns
    rows = {
        "event_id": c["event_id"], "contact": c["contact"], "ts": c["ts"],
        "name": _encode(c["name_hash"], delta.name_pairs, names), "campaign": c["campaign"],
        "channel": _encode(c["channel_hash"], delta.channel_pairs, channels), "value": c["value"],
    }
    if old.size and rows["event_id"].shape[0]:
        # ids read already through an earlier log row whose range overlapped (concurrent writers)
        low = rows["event_id"].min()
        fresh = ~np.isin(rows["event_id"], old.event_id[old.event_id >= low])
        rows = {k: v[fresh] for k, v in rows.items()}
    order = np.lexsort((rows["event_id"], rows["ts"], rows["contact"]))
    return {k: v[order] for k, v in rows.items()}, names, channels


def _insert_positions(old: WorkspaceColumns, delta: dict[str, np.ndarray]) -> np.ndarray:
    """For each (sorted) delta row, the index in `old` before which it belongs."""
    lo = np.searchsorted(old.contact, delta["contact"], side="left")
    hi = np.searchsorted(old.contact, delta["contact"], side="right")
    positions = lo.astype(np.int64)
    for i in np.flatnonzero(hi > lo):  # per delta row of a known contact, a search within its slice
        a, b = lo[i], hi[i]
        ts_slice = old.ts[a:b]
        t = delta["ts"][i]
        left = a + np.searchsorted(ts_slice, t, side="left")
        right = a + np.searchsorted(ts_slice, t, side="right")
        if left != right:  # equal timestamps: order by event id
            left += np.searchsorted(old.event_id[left:right], delta["event_id"][i], side="left")
        positions[i] = left
    return positions


def _filler(old: WorkspaceColumns, rows: dict[str, np.ndarray]):
    """`fill(column, out)`: write old and new rows, merged in (contact, ts, id) order, into `out`."""
    m = rows["event_id"].shape[0]
    if old.size < 20 * m:
        # a large delta (or the first load): one sort of everything is cheaper than inserting
        order = np.lexsort((np.concatenate((old.event_id, rows["event_id"])),
                            np.concatenate((old.ts, rows["ts"])), np.concatenate((old.contact, rows["contact"]))))

        def fill(column: str, out: np.ndarray) -> None:
            out[:] = np.concatenate((getattr(old, column), rows[column]))[order]
        return fill
    dest = _insert_positions(old, rows) + np.arange(m)
    keep_old = np.ones(old.size + m, dtype=bool)
    keep_old[dest] = False

    def fill(column: str, out: np.ndarray) -> None:
        out[keep_old] = getattr(old, column)
        out[dest] = rows[column]
    return fill


def _merged(old: WorkspaceColumns, delta: columns_read.Delta, *, to_disk: bool) -> WorkspaceColumns:
    base = _empty(old.workspace_id) if delta.full else old
    rows, names, channels = _new_rows(base, delta)
    size = base.size + rows["event_id"].shape[0]
    max_id = max(base.max_event_id, int(rows["event_id"].max()) if rows["event_id"].shape[0] else 0)
    meta = {"names": names, "channels": channels, "max_event_id": max_id, "epoch": delta.state.epoch,
            "seq": delta.state.seq, "last_range": delta.last_range or base.last_range}
    fill = _filler(base, rows)
    if to_disk:
        snap = snapshots.snapshot_write(base.workspace_id, manifest={**meta, "size": size}, fill=fill)
        return _from_snapshot(base.workspace_id, snap)
    arrays = {}
    for column, dtype in snapshots.COLUMNS.items():
        arrays[column] = np.empty(size, dtype=dtype)
        fill(column, arrays[column])
    return WorkspaceColumns(workspace_id=base.workspace_id, **arrays, **meta, provisional=connection.in_atomic_block)


class ColumnCache:
    """Per-process handles on the read model, refreshed from the log on each use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_workspace: dict[int, WorkspaceColumns] = {}

    def get(self, workspace_id: int) -> WorkspaceColumns:
        """The workspace's committed events as of now; `ReadModelUnavailable` when that cannot be known."""
        with self._lock:
            try:
                current = self._refresh(workspace_id, self._by_workspace.get(workspace_id))
            except DatabaseError as exc:
                held = self._by_workspace.get(workspace_id)
                reason = " ".join(str(exc).split())
                raise ReadModelUnavailable(
                    f"the events of workspace {workspace_id} cannot be read from the database ({reason}); "
                    + (f"this process holds them up to ingest-log row {held.seq} only, and does not answer "
                       "from them since newer ones may exist" if held else "no copy of them is held")
                ) from exc
            except TimeoutError as exc:
                raise ReadModelUnavailable(f"the events of workspace {workspace_id} are being refreshed by "
                                           f"another process: {exc}") from exc
            self._by_workspace[workspace_id] = current
            return current

    def _refresh(self, workspace_id: int, current: WorkspaceColumns | None) -> WorkspaceColumns:
        state = columns_read.log_state(workspace_id=workspace_id)
        if current is not None and (
            current.epoch != state.epoch or current.seq > state.seq
            or (current.provisional and current.seq
                and columns_read.log_range(workspace_id=workspace_id, seq=current.seq) != current.last_range)
        ):
            current = None  # another log (a recreated database), or rolled-back rows: start again
        if current is not None and current.seq == state.seq:
            return current
        if not (snapshots.snapshots_enabled() and not connection.in_atomic_block and state.seq):
            delta = columns_read.log_delta(workspace_id=workspace_id, after_seq=current.seq if current else 0,
                                           epoch=state.epoch)
            return _merged(current or _empty(workspace_id), delta, to_disk=False)
        current = self._newer_on_disk(workspace_id, current, state)
        if current is not None and current.seq >= state.seq:
            return current
        timeout = float(getattr(settings, "FUNNEL_COLUMN_LOAD_TIMEOUT_SECONDS", 600))
        with snapshots.writer_lock(workspace_id, timeout):
            # another process may have written the version we need while we waited for the lock
            state = columns_read.log_state(workspace_id=workspace_id)
            current = self._newer_on_disk(workspace_id, current, state)
            if current is not None and current.seq >= state.seq:
                return current
            started = time.perf_counter()
            delta = columns_read.log_delta(workspace_id=workspace_id, after_seq=current.seq if current else 0,
                                           epoch=state.epoch)
            merged = _merged(current or _empty(workspace_id), delta, to_disk=True)
            log.info("read_model_written", workspace=workspace_id, seq=merged.seq, events=merged.size,
                     full=delta.full, seconds=round(time.perf_counter() - started, 3))
            return merged

    @staticmethod
    def _newer_on_disk(workspace_id: int, current: WorkspaceColumns | None,
                       state: columns_read.LogState) -> WorkspaceColumns | None:
        """The snapshot on disk when it is of this log and newer than `current`; else `current`."""
        if current is not None and current.on_disk and snapshots.current_name(workspace_id) == current.snapshot_name:
            return current  # the newest version is the one mapped already: no need to check it again
        try:
            snap = snapshots.snapshot_open(workspace_id)
        except snapshots.SnapshotCorrupt as exc:
            log.warning("read_model_snapshot_corrupt", workspace=workspace_id, error=str(exc))
            return current  # deleted: rebuilt from the database (which holds every event) below
        if snap is None:
            return current
        m = snap.manifest
        if m["epoch"] != state.epoch or (current is not None and m["seq"] <= current.seq):
            return current
        if tuple(m["last_range"]) != columns_read.log_range(workspace_id=workspace_id, seq=m["seq"]):
            return current  # same epoch, yet not this log's row: never trust it
        return _from_snapshot(workspace_id, snap)

    def clear(self) -> None:
        """Forget everything (tests; a workspace deleted)."""
        with self._lock:
            self._by_workspace.clear()


column_cache = ColumnCache()


def workspace_columns(workspace_id: int) -> WorkspaceColumns:
    """The columnar events of a workspace, up to date (see the module docstring)."""
    return column_cache.get(workspace_id)
