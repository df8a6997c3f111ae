"""Bulk writes of the event store: contacts, campaigns and events, idempotent, per backend.

PostgreSQL takes events through COPY into a temporary table and one `INSERT ... ON CONFLICT DO
NOTHING`, which is what makes bulk ingestion fast; other backends (SQLite, the embedded default) use
`executemany` with the same conflict clause. Both report how many rows were really inserted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import orjson
from django.db import IntegrityError, connection, transaction

from funnel_site.events.models import Campaign, Contact

EVENT_COLUMNS = (
    "workspace_id",
    "contact_id",
    "name",
    "timestamp",
    "received_at",
    "campaign_id",
    "channel",
    "value",
    "properties",
    "message_id",
)
EventRow = tuple  # in EVENT_COLUMNS order; properties already JSON text

_IN_CHUNK = 5000


def is_postgres() -> bool:
    """True when the default database is PostgreSQL."""
    return connection.vendor == "postgresql"


def dumps_json(value: dict) -> str:
    """JSON text for a JSON column (orjson: fast and strict)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _chunks(values: Sequence, size: int = _IN_CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def contacts_fetch(*, workspace_id: int, external_ids: Sequence[str], lock: bool = False) -> dict[str, tuple]:
    """external_id -> (id, first_seen, last_seen, first_purchase_at, email, traits) for known ones.

    ``lock``: on PostgreSQL, take the rows' locks (in id order, so that two writers never wait on
    each other in a cycle) and read their newest committed values. The ingest service reads a
    contact's first/last seen and first purchase this way, so concurrent batches (HTTP requests,
    the processes of a parallel import) update them one after the other.
    """
    found: dict[str, tuple] = {}
    if lock and is_postgres():
        table = Contact._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT external_id, id, first_seen, last_seen, first_purchase_at, email, traits FROM {table} "
                "WHERE workspace_id = %s AND external_id = ANY(%s) ORDER BY id FOR UPDATE",
                [workspace_id, list(external_ids)],
            )
            for ext, cid, first_seen, last_seen, first_purchase, email, traits in cursor.fetchall():
                if isinstance(traits, str):  # Django's PostgreSQL backend hands jsonb over as text
                    traits = orjson.loads(traits)
                found[ext] = (cid, first_seen, last_seen, first_purchase, email, traits)
        return found
    for chunk in _chunks(list(external_ids)):
        rows = Contact.objects.filter(workspace_id=workspace_id, external_id__in=chunk).values_list(
            "external_id", "id", "first_seen", "last_seen", "first_purchase_at", "email", "traits"
        )
        for ext, *rest in rows:
            found[ext] = tuple(rest)
    return found


def contacts_ensure(*, workspace_id: int, external_ids: Sequence[str], lock: bool = False) -> dict[str, tuple]:
    """Fetch contacts, creating the missing ones (safe against concurrent creators); see `contacts_fetch`."""
    known = contacts_fetch(workspace_id=workspace_id, external_ids=external_ids, lock=lock)
    missing = sorted(set(external_ids) - known.keys())
    if missing:
        Contact.objects.bulk_create(
            [Contact(workspace_id=workspace_id, external_id=ext) for ext in missing],
            ignore_conflicts=True,
            batch_size=2000,
        )
        known.update(contacts_fetch(workspace_id=workspace_id, external_ids=missing, lock=lock))
    return known


def contacts_update(rows: list[tuple[int, datetime | None, datetime | None, datetime | None]]) -> None:
    """Set (first_seen, last_seen, first_purchase_at) of contacts by id, keeping the widest range."""
    if not rows:
        return
    table = Contact._meta.db_table
    with connection.cursor() as cursor:
        if is_postgres():
            for chunk in _chunks(rows, 2000):
                values = ",".join(["(%s::bigint,%s::timestamptz,%s::timestamptz,%s::timestamptz)"] * len(chunk))
                params = [v for row in chunk for v in row]
                cursor.execute(
                    f"""UPDATE {table} AS c SET
                          first_seen = LEAST(c.first_seen, v.fs),
                          last_seen = GREATEST(c.last_seen, v.ls),
                          first_purchase_at = LEAST(c.first_purchase_at, v.fp)
                        FROM (VALUES {values}) AS v(id, fs, ls, fp) WHERE c.id = v.id""",
                    params,
                )
        else:
            adapt = connection.ops.adapt_datetimefield_value
            cursor.executemany(
                f"""UPDATE {table} SET
                      first_seen = CASE WHEN first_seen IS NULL OR %s < first_seen THEN %s ELSE first_seen END,
                      last_seen = CASE WHEN last_seen IS NULL OR %s > last_seen THEN %s ELSE last_seen END,
                      first_purchase_at = CASE WHEN %s IS NOT NULL AND (first_purchase_at IS NULL
                          OR %s < first_purchase_at) THEN %s ELSE first_purchase_at END
                    WHERE id = %s""",
                [
                    (adapt(fs), adapt(fs), adapt(ls), adapt(ls), adapt(fp), adapt(fp), adapt(fp), cid)
                    for cid, fs, ls, fp in rows
                ],
            )


def contacts_set_profile(rows: list[tuple[int, str, dict]]) -> None:
    """Set (contact id, email, traits) of contacts: the caller has merged traits already."""
    if not rows:
        return
    table = Contact._meta.db_table
    with connection.cursor() as cursor:
        if is_postgres():
            for chunk in _chunks(rows, 2000):
                values = ",".join(["(%s::bigint,%s::text,%s::jsonb)"] * len(chunk))
                params = [v for cid, email, traits in chunk for v in (cid, email, dumps_json(traits))]
                cursor.execute(
                    f"UPDATE {table} AS c SET email = v.email, traits = v.traits "
                    f"FROM (VALUES {values}) AS v(id, email, traits) WHERE c.id = v.id",
                    params,
                )
        else:
            cursor.executemany(
                f"UPDATE {table} SET email = %s, traits = %s WHERE id = %s",
                [(email, dumps_json(traits), cid) for cid, email, traits in rows],
            )


def campaigns_ensure(*, workspace_id: int, keys: Sequence[str], channels: dict[str, str]) -> dict[str, int]:
    """campaign key -> id, creating missing campaigns (name = key, channel = first seen channel)."""
    if not keys:
        return {}
    found = dict(
        Campaign.objects.filter(workspace_id=workspace_id, key__in=keys).values_list("key", "id")
    )
    missing = sorted(k for k in keys if k not in found)  # one order for all writers: no lock cycles
    if missing:
        Campaign.objects.bulk_create(
            [Campaign(workspace_id=workspace_id, key=k, name=k, channel=channels.get(k, "")) for k in missing],
            ignore_conflicts=True,
        )
        found.update(
            Campaign.objects.filter(workspace_id=workspace_id, key__in=missing).values_list("key", "id")
        )
    return found


_PG_TEMP = """CREATE TEMP TABLE IF NOT EXISTS _ingest_events (
    workspace_id bigint, contact_id bigint, name text, "timestamp" timestamptz,
    received_at timestamptz, campaign_id bigint, channel text, value double precision,
    properties jsonb, message_id text) ON COMMIT DELETE ROWS"""

# COPY text format: these four characters must be escaped inside a field.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_TABS_PER_LINE = len(EVENT_COLUMNS) - 1
_NULL = "\\N"


def _copy_field(value: object) -> str:
    if value is None:
        return _NULL
    if value.__class__ is datetime:
        return value.isoformat()
    return str(value).translate(_COPY_ESCAPES)


def _copy_text(rows: Iterable[EventRow]) -> str:
    """Rows as COPY text, formatted here in one pass rather than by psycopg's `write_row` per row.

    A line is built with an f-string; only a line whose fields hold a tab, newline, carriage
    return or backslash (JSON properties with an escaped quote, say) is rebuilt field by field.
    """
    lines = []
    append = lines.append
    stamp_of: dict[datetime, str] = {}  # received_at is one value per batch
    for ws, cid, name, ts, received, campaign, channel, value, properties, message_id in rows:
        received_text = stamp_of.get(received)
        if received_text is None:
            received_text = stamp_of[received] = received.isoformat()
        campaign_text = _NULL if campaign is None else campaign
        value_text = _NULL if value is None else repr(value)
        line = (
            f"{ws}\t{cid}\t{name}\t{ts.isoformat()}\t{received_text}\t"
            f"{campaign_text}\t{channel}\t{value_text}\t{properties}\t{message_id}\n"
        )
        # The only backslashes allowed are those of our own \\N; any other special character
        # comes from a text field and needs escaping.
        if (
            line.count("\t") != _TABS_PER_LINE
            or line.count("\\") != (campaign is None) + (value is None)
            or "\r" in line
            or line.count("\n") != 1
        ):
            line = "\t".join(
                _copy_field(v)
                for v in (ws, cid, name, ts, received, campaign, channel, value, properties, message_id)
            ) + "\n"
        append(line)
    return "".join(lines)


def _pg_existing_message_ids(cursor, workspace_id: int, message_ids: list[str]) -> set[str]:
    cursor.execute(
        "SELECT message_id FROM events_event WHERE workspace_id = %s AND message_id = ANY(%s)",
        [workspace_id, message_ids],
    )
    return {row[0] for row in cursor.fetchall()}


def events_insert(rows: list[EventRow]) -> int:
    """Insert event rows, skipping any whose (workspace, message_id) exists; returns rows inserted.

    Must run inside a transaction (the PostgreSQL staging table empties on commit).
    """
    if not rows:
        return 0
    from funnel_site.events.models import Event

    table = Event._meta.db_table
    cols = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
    if not is_postgres():
        adapt = connection.ops.adapt_datetimefield_value
        placeholders = ", ".join(["%s"] * len(EVENT_COLUMNS))
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {table} ({cols}) VALUES ({placeholders}) "
                f"ON CONFLICT (workspace_id, message_id) DO NOTHING",
                [(r[0], r[1], r[2], adapt(r[3]), adapt(r[4]), *r[5:]) for r in rows],
            )
            return cursor.rowcount
    # PostgreSQL. COPY straight into the table is the fastest write there is (batched heap
    # inserts), but it cannot skip conflicts, and INSERT ... ON CONFLICT from a staging table
    # cost about three times as much per row. So: drop duplicates within the batch (the first
    # occurrence wins, as with ON CONFLICT) and COPY, optimistically, since new events are the
    # common case. When that hits a stored message id, look the batch's ids up (one index probe
    # each) and COPY only the new rows. Should a concurrent writer store one of those first,
    # write the batch the slow, conflict-proof way.
    first: dict[tuple[int, str], EventRow] = {}
    for row in rows:
        first.setdefault((row[0], row[9]), row)
    new_rows = list(first.values())
    with connection.cursor() as cursor:
        if _pg_copy_unless_conflict(cursor, table, cols, new_rows):
            return len(new_rows)
        by_workspace: dict[int, list[str]] = {}
        for workspace_id, message_id in first:
            by_workspace.setdefault(workspace_id, []).append(message_id)
        existing: set[tuple[int, str]] = set()
        for workspace_id, message_ids in by_workspace.items():
            existing.update(
                (workspace_id, m) for m in _pg_existing_message_ids(cursor, workspace_id, message_ids)
            )
        new_rows = [row for key, row in first.items() if key not in existing]
        if not new_rows:
            return 0
        if _pg_copy_unless_conflict(cursor, table, cols, new_rows):
            return len(new_rows)
        cursor.execute(_PG_TEMP)
        cursor.execute("TRUNCATE _ingest_events")
        with cursor.cursor.copy(f"COPY _ingest_events ({cols}) FROM STDIN") as copy:
            copy.write(_copy_text(new_rows))
        cursor.execute(
            f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _ingest_events "
            f"ON CONFLICT (workspace_id, message_id) DO NOTHING"
        )
        return cursor.rowcount


def _pg_copy_unless_conflict(cursor, table: str, cols: str, rows: list[EventRow]) -> bool:
    """COPY rows into the table in a savepoint; False (and nothing written) on a duplicate message id."""
    try:
        # the raw psycopg cursor raises psycopg's errors: have Django translate them
        with (
            transaction.atomic(),
            connection.wrap_database_errors,
            cursor.cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy,
        ):
            copy.write(_copy_text(rows))
    except IntegrityError:
        return False
    return True
