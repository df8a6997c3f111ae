"""Reading committed events for the read model: the ingest log's new rows and their events, in one snapshot.

`log_state` tells a reader how far the log goes (cheap: one row); `log_delta` reads the log rows
after the last one a reader holds and the events in their id ranges (or every event, for a first
load), together with the dictionaries of their names and channels, all in one REPEATABLE READ
transaction on PostgreSQL, so the dictionaries, the arrays and the log rows describe one state of
the database (a name first stored by a batch committed between two statements cannot be missing
from the dictionary). Inside a caller's transaction the isolation cannot be changed: the read then
runs in that transaction, and each chunk still carries its own dictionary (one statement each).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from funnel_site.events import ingestlog
from funnel_site.events.models import Event, IngestCounter, IngestLogEntry

PG_EPOCH_US = 946_684_800 * 1_000_000  # PostgreSQL's binary timestamps count from 2000-01-01
_PG_HEADER = 19  # COPY binary: signature (11) + flags (4) + extension length (4)
_FETCH_ROWS = 1_000_000
# (column expression, numpy element type) of each array fetched
_PG_COLUMNS = (
    ("e.id", ">i8"),
    ("e.contact_id", ">i8"),
    ('e."timestamp"', ">i8"),
    ("hashtext(e.name)", ">i4"),
    ("COALESCE(e.campaign_id, -1)", ">i8"),
    ("hashtext(e.channel)", ">i4"),
    ("COALESCE(e.value, 'NaN'::float8)", ">f8"),
)
_PG_DICT_HASH = ">i4"


@dataclass(frozen=True)
class LogState:
    """How far a workspace's log goes: its epoch and newest sequence number (0: nothing logged)."""

    epoch: str
    seq: int

    @property
    def version(self) -> str:
        """The data version: what the read model has read (results caches key on it)."""
        return f"{self.epoch}.{self.seq}"


@dataclass
class Delta:
    """Events read from the database for the log rows (after_seq, state.seq], unsorted, maybe read already."""

    state: LogState
    full: bool  # every event of the workspace (a first load), not only the rows' ranges
    last_range: tuple[int, int, int] | None  # identifies log row state.seq (`log_range`); None: no rows
    columns: dict[str, np.ndarray]
    name_pairs: list[tuple[int, str]]
    channel_pairs: list[tuple[int, str]]


def log_state(*, workspace_id: int) -> LogState:
    """The newest log row of a workspace, logging pre-existing events once (`ingest_log_bootstrap`)."""
    row = IngestCounter.objects.filter(workspace_id=workspace_id).values_list("epoch", "seq").first()
    if row is None:
        ingestlog.ingest_log_bootstrap(workspace_id=workspace_id)
        row = IngestCounter.objects.filter(workspace_id=workspace_id).values_list("epoch", "seq").first()
    return LogState(epoch=row[0], seq=int(row[1])) if row else LogState(epoch="", seq=0)


def _identity(first_id: int, last_id: int, committed_at) -> tuple[int, int, int]:
    return (int(first_id), int(last_id), int(committed_at.timestamp() * 1_000_000))


def log_range(*, workspace_id: int, seq: int) -> tuple[int, int, int] | None:
    """What identifies log row `seq`: its id range and commit time (a snapshot names it, to be checked:
    a row rolled back and written again, or a recreated database, has the same number, not these)."""
    row = IngestLogEntry.objects.filter(workspace_id=workspace_id, seq=seq).values_list(
        "first_event_id", "last_event_id", "committed_at").first()
    return _identity(*row) if row else None


@contextmanager
def _one_snapshot() -> Iterator[None]:
    outer = connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and not outer:  # a caller's transaction keeps its settings
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                limit = float(getattr(settings, "FUNNEL_COLUMN_LOAD_TIMEOUT_SECONDS", 600))
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{int(limit * 1000)}ms"])
        yield


def _disjoint(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping id ranges (concurrent transactions) merged, so no event is fetched twice."""
    out: list[list[int]] = []
    for low, high in sorted(ranges):
        if out and low <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], high)
        else:
            out.append([low, high])
    return [(a, b) for a, b in out]


def log_delta(*, workspace_id: int, after_seq: int, epoch: str) -> Delta:
    """The log rows after `after_seq` and the events they name, read in one snapshot.

    A first load (`after_seq` 0, or another epoch) reads every event of the workspace: in the
    snapshot, each one belongs to a log row at or below the newest one read.
    """
    with _one_snapshot():
        state = log_state(workspace_id=workspace_id)
        full = after_seq == 0 or epoch != state.epoch
        rows = list(
            IngestLogEntry.objects.filter(workspace_id=workspace_id, seq__gt=0 if full else after_seq,
                                          seq__lte=state.seq)
            .order_by("seq").values_list("seq", "first_event_id", "last_event_id", "committed_at")
        )
        last_range = _identity(*rows[-1][1:]) if rows else None
        ranges = None if full else _disjoint([(a, b) for _, a, b, _ in rows])
        if ranges == []:
            fetched = _empty_fetch()
        elif connection.vendor == "postgresql":
            fetched = _fetch_postgres(workspace_id, ranges)
        else:
            fetched = _fetch_generic(workspace_id, ranges)
    columns, name_pairs, channel_pairs = fetched
    return Delta(state=state, full=full, last_range=last_range, columns=columns, name_pairs=name_pairs,
                 channel_pairs=channel_pairs)


def _empty_fetch() -> tuple[dict[str, np.ndarray], list, list]:
    columns = {k: np.zeros(0, np.int64) for k in ("event_id", "contact", "ts", "name_hash", "campaign",
                                                     "channel_hash")}
    columns["value"] = np.zeros(0, np.float64)
    return columns, [], []


def _parse_binary_arrays(buffer: bytes, dtypes: list[str]) -> tuple[list[np.ndarray | None], list[list[str]]]:
    """Parse one COPY binary row: arrays of fixed-width numbers (one per dtype), then text arrays."""
    view = memoryview(buffer)
    pos = _PG_HEADER
    nfields = int.from_bytes(view[pos : pos + 2], "big", signed=True)
    pos += 2
    numeric: list[np.ndarray | None] = []
    texts: list[list[str]] = []
    n_numeric = len(dtypes)
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
            element = np.dtype([("len", ">i4"), ("value", dtypes[field_index])])
            numeric.append(np.frombuffer(view[start : start + count * element.itemsize], dtype=element)["value"])
        else:
            values, at = [], start
            for _ in range(count):  # few distinct strings: a Python loop is fine here
                size = int.from_bytes(view[at : at + 4], "big", signed=True)
                values.append(bytes(view[at + 4 : at + 4 + size]).decode())
                at += 4 + size
            texts.append(values)
        pos += length
    return numeric, texts


def _fetch_postgres(workspace_id: int, ranges: list[tuple[int, int]] | None):
    """Events as arrays: a COPY of one row of arrays per million events, parsed by numpy.

    One row of arrays (array_agg) rather than a row per event, because psycopg hands COPY data
    over row by row and a Python step per event would cost more than the database does. Each
    chunk's statement also returns the (hash, text) dictionaries of its own rows' names and channels.
    """
    table = Event._meta.db_table
    if ranges is None:
        source, params = f"{table} e", []
        where = "e.workspace_id = %s AND e.id > %s"
    else:
        source = f"{table} e JOIN unnest(%s::int8[], %s::int8[]) AS r(lo, hi) ON e.id BETWEEN r.lo AND r.hi"
        params = [[a for a, _ in ranges], [b for _, b in ranges]]
        where = "e.workspace_id = %s AND e.id > %s"
    exprs = ", ".join(f"{expr} AS c{i}" for i, (expr, _) in enumerate(_PG_COLUMNS))
    exprs += ", e.name AS name, e.channel AS channel"
    aggregates = ", ".join(f"array_agg(c{i})" for i in range(len(_PG_COLUMNS)))
    dictionaries = (
        "(SELECT array_agg(h) FROM (SELECT hashtext(name) h FROM t GROUP BY name) d), "
        "(SELECT array_agg(h) FROM (SELECT hashtext(channel) h FROM t GROUP BY channel) d), "
        "(SELECT array_agg(name) FROM (SELECT name FROM t GROUP BY name) d), "
        "(SELECT array_agg(channel) FROM (SELECT channel FROM t GROUP BY channel) d)"
    )
    dtypes = [d for _, d in _PG_COLUMNS] + [_PG_DICT_HASH, _PG_DICT_HASH]
    parts: list[list[np.ndarray]] = []
    name_pairs: dict[int, str] = {}
    channel_pairs: dict[int, str] = {}
    with connection.cursor() as cursor:
        raw = cursor.cursor
        after = 0
        while True:
            # No ORDER BY inside array_agg: every aggregate over the materialised chunk sees its rows
            # in one order, which is all the alignment of the arrays needs (numpy sorts them later).
            query = raw.mogrify(
                f"COPY (WITH t AS MATERIALIZED (SELECT {exprs} FROM {source} WHERE {where} "
                f"ORDER BY e.id LIMIT {_FETCH_ROWS}) SELECT {aggregates}, {dictionaries} FROM t) TO STDOUT (FORMAT binary)",
                [*params, workspace_id, after],
            )
            buffer = bytearray()
            with raw.copy(query) as copy:
                for chunk in copy:
                    buffer += chunk
            arrays, texts = _parse_binary_arrays(bytes(buffer), dtypes)
            if arrays[0] is None or arrays[0].shape[0] == 0:
                break
            parts.append(arrays[: len(_PG_COLUMNS)])
            name_pairs.update(_pairs(arrays[-2], texts[0]))
            channel_pairs.update(_pairs(arrays[-1], texts[1]))
            after = int(arrays[0].max())
            if arrays[0].shape[0] < _FETCH_ROWS:
                break
    if not parts:
        return _empty_fetch()
    c = [np.concatenate([p[i] for p in parts]) for i in range(len(_PG_COLUMNS))]
    columns = {
        "event_id": c[0].astype(np.int64), "contact": c[1].astype(np.int64),
        "ts": c[2].astype(np.int64) + PG_EPOCH_US, "name_hash": c[3].astype(np.int64),
        "campaign": c[4].astype(np.int64), "channel_hash": c[5].astype(np.int64), "value": c[6].astype(np.float64),
    }
    return columns, list(name_pairs.items()), list(channel_pairs.items())


def _pairs(hashes: np.ndarray | None, texts: list[str]) -> list[tuple[int, str]]:
    if hashes is None:
        return []
    pairs: dict[int, str] = {}
    for h, text in zip(hashes.tolist(), texts, strict=True):
        if h in pairs and pairs[h] != text:  # a hashtext collision: refuse rather than mix names
            raise RuntimeError(f"hash collision between {pairs[h]!r} and {text!r}")
        pairs[h] = text
    return list(pairs.items())


def _fetch_generic(workspace_id: int, ranges: list[tuple[int, int]] | None):
    """Events of SQLite (the embedded default: small data), or of another database through the ORM."""
    if connection.vendor == "sqlite" and connection.timezone_name == "UTC":
        return _fetch_sqlite(workspace_id, ranges)
    return _fetch_orm(workspace_id, ranges)


def _codes(texts: list[str]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Dense codes of strings and the (code, text) pairs: the dictionaries the read model merges."""
    index = {text: code for code, text in enumerate(dict.fromkeys(texts))}
    codes = np.array([index[text] for text in texts], dtype=np.int64)
    return codes, [(code, text) for text, code in index.items()]


def _fetch_sqlite(workspace_id: int, ranges: list[tuple[int, int]] | None):
    """Events of SQLite by one raw query, the timestamps parsed by numpy.

    Through the ORM every row's timestamp became an aware datetime first, a Python step per event
    (3-4 s for the demo's 140,000 events, paid by a fresh process's first funnel). Django stores
    a timestamp as UTC text ('YYYY-MM-DD HH:MM:SS[.ffffff]'); `|| ''` keeps the column's declared
    type from calling Django's converter, and numpy parses the text at C speed.
    """
    table = Event._meta.db_table
    where, params = "workspace_id = %s", [workspace_id]
    if ranges is not None:
        where += " AND (" + " OR ".join("id BETWEEN %s AND %s" for _ in ranges) + ")"
        params += [bound for pair in ranges for bound in pair]
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT id, contact_id, "timestamp" || \'\', name, COALESCE(campaign_id, -1), channel, value '
            f"FROM {table} WHERE {where}", params)
        rows = cursor.fetchall()
    if not rows:
        return _empty_fetch()
    ids, contacts, stamps, names, campaigns, channels, values = zip(*rows, strict=True)
    name_codes, name_pairs = _codes(list(names))
    channel_codes, channel_pairs = _codes(list(channels))
    columns = {
        "event_id": np.array(ids, np.int64),
        "contact": np.array(contacts, np.int64),
        "ts": np.array(stamps, dtype="datetime64[us]").astype(np.int64),
        "name_hash": name_codes,
        "campaign": np.array(campaigns, np.int64),
        "channel_hash": channel_codes,
        "value": np.array(values, np.float64),  # None becomes NaN
    }
    return columns, name_pairs, channel_pairs


def _fetch_orm(workspace_id: int, ranges: list[tuple[int, int]] | None):
    """Events through the ORM (any database Django supports; slow: a datetime per row)."""
    from django.db.models import Q

    qs = Event.objects.filter(workspace_id=workspace_id)
    if ranges is not None:
        condition = Q()
        for low, high in ranges:
            condition |= Q(id__gte=low, id__lte=high)
        qs = qs.filter(condition)
    rows = list(qs.values_list("id", "contact_id", "timestamp", "name", "campaign_id", "channel", "value"))
    if not rows:
        return _empty_fetch()
    name_hash = {n: i for i, n in enumerate(sorted({r[3] for r in rows}))}
    channel_hash = {c: i for i, c in enumerate(sorted({r[5] for r in rows}))}
    columns = {
        "event_id": np.array([r[0] for r in rows], np.int64),
        "contact": np.array([r[1] for r in rows], np.int64),
        "ts": np.array([int(r[2].timestamp() * 1_000_000) for r in rows], np.int64),
        "name_hash": np.array([name_hash[r[3]] for r in rows], np.int64),
        "campaign": np.array([-1 if r[4] is None else r[4] for r in rows], np.int64),
        "channel_hash": np.array([channel_hash[r[5]] for r in rows], np.int64),
        "value": np.array([np.nan if r[6] is None else r[6] for r in rows], np.float64),
    }
    return columns, [(i, n) for n, i in name_hash.items()], [(i, c) for c, i in channel_hash.items()]
