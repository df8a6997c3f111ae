"""The commit-ordered ingest log: how readers learn, exactly once, which events were committed.

Event ids come from one sequence shared by every writer, and PostgreSQL transactions commit in any
order, so "every id above the newest one read" misses a batch that began first and commits last.
Instead each ingest transaction, as its last statements, increments its workspace's counter row
(`IngestCounter`, a row lock held until commit) and writes a log row with that sequence number and
the range of ids its events can have. A second transaction waits for the lock until the first has
committed (or rolled back, which also rolls the increment back), so sequence numbers are gapless
and follow commit order: a reader that sees row N has seen every row below N.

A reader consumes the rows after the last one it read and fetches the events in their id ranges,
in one snapshot. Ranges of concurrent transactions overlap (ids interleave); an id already read
through an earlier row is dropped (the read model dedupes), and an id of a transaction that has
not committed yet is invisible now and comes with that transaction's own row later.
"""

from __future__ import annotations

import secrets

from django.db import connection, transaction
from django.utils import timezone

from funnel_site.events.models import Event, IngestCounter, IngestLogEntry


def _sequence_name() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [Event._meta.db_table])
        return cursor.fetchone()[0]


_SEQUENCE: list[str] = []


def event_id_floor() -> int:
    """An id below every event this transaction will insert (call it before inserting).

    PostgreSQL: a fresh value of the id sequence (one id is spent; the gap is harmless). SQLite
    writes one transaction at a time, so the current maximum is a floor.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            if not _SEQUENCE:
                _SEQUENCE.append(_sequence_name())
            cursor.execute("SELECT nextval(%s)", [_SEQUENCE[0]])
        else:
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {Event._meta.db_table}")
        return int(cursor.fetchone()[0])


def event_id_ceiling() -> int:
    """An id at or above every event this transaction inserted (call it after inserting)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            if not _SEQUENCE:
                _SEQUENCE.append(_sequence_name())
            cursor.execute("SELECT currval(%s)", [_SEQUENCE[0]])
        else:
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {Event._meta.db_table}")
        return int(cursor.fetchone()[0])


def ingest_log_append(*, workspace_id: int, first_event_id: int, last_event_id: int, events: int) -> int:
    """Record a transaction's events in the log; call it as the transaction's LAST statement.

    Returns the row's sequence number. The counter's row lock is held until commit, which is what
    makes sequence numbers follow commit order; taking it last keeps the serialised part short
    and means no other lock is ever awaited while holding it (no deadlock with contact locks).
    """
    counter = IngestCounter._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {counter} (workspace_id, seq, epoch) VALUES (%s, 1, %s) "
            f"ON CONFLICT (workspace_id) DO UPDATE SET seq = {counter}.seq + 1 RETURNING seq",
            [workspace_id, secrets.token_hex(8)],
        )
        seq = int(cursor.fetchone()[0])
    IngestLogEntry.objects.create(
        workspace_id=workspace_id, seq=seq, first_event_id=first_event_id, last_event_id=last_event_id,
        events=events, committed_at=timezone.now(),
    )
    return seq


def ingest_log_bootstrap(*, workspace_id: int) -> None:
    """Log the events of a workspace that has events but no log yet (stored before the log existed,
    or bulk-loaded around `events_ingest`, as benchmarks do): one row covering all of them."""
    if IngestCounter.objects.filter(workspace_id=workspace_id).exists():
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT MIN(id), MAX(id), COUNT(*) FROM {Event._meta.db_table} WHERE workspace_id = %s",
            [workspace_id],
        )
        low, high, count = cursor.fetchone()
    if not count:
        return
    with transaction.atomic():
        ingest_log_append(
            workspace_id=workspace_id, first_event_id=int(low), last_event_id=int(high), events=int(count)
        )
