"""The time limit of a funnel query: a deadline checked between phases and inside the engine, and
the database's own statement timeout, so a runaway query stops with a clear error instead of
holding a web or worker process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import OperationalError, connection, transaction

from funnel_site.funnels.engine.errors import FunnelTimeoutError

DEFAULT_TIMEOUT_SECONDS = 60.0


def query_time_limit() -> float:
    """Seconds a funnel query may run (`FUNNEL_QUERY_TIMEOUT_SECONDS`, default 60)."""
    return float(getattr(settings, "FUNNEL_QUERY_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS))


class QueryDeadline:
    """A point in `time.monotonic()` after which the query stops."""

    def __init__(self, seconds: float | None = None) -> None:
        self.seconds = query_time_limit() if seconds is None else float(seconds)
        self.expires = time.monotonic() + self.seconds

    def remaining(self) -> float:
        """Seconds left (never below zero)."""
        return max(0.0, self.expires - time.monotonic())

    def error(self, phase: str) -> FunnelTimeoutError:
        """The error naming the limit and the phase it ran out in."""
        return FunnelTimeoutError(
            f"the funnel query ran past its time limit of {self.seconds:g} s while {phase}; "
            "narrow the date range or the steps, or raise FUNNEL_QUERY_TIMEOUT_SECONDS"
        )

    def check(self, phase: str) -> None:
        """Raise `FunnelTimeoutError` when the deadline has passed."""
        if time.monotonic() > self.expires:
            raise self.error(phase)


def _is_cancel(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "statement timeout" in text or "canceling statement" in text or "interrupted" in text


@contextmanager
def database_time_limit(deadline: QueryDeadline, phase: str) -> Iterator[None]:
    """Queries inside stop when the deadline passes: PostgreSQL `statement_timeout` (local to a
    transaction) or SQLite's progress handler; a cancelled query becomes `FunnelTimeoutError`."""
    deadline.check(phase)
    try:
        if connection.vendor == "postgresql":
            with transaction.atomic():
                millis = max(1, int(deadline.remaining() * 1000))
                with connection.cursor() as cursor:
                    cursor.execute("SHOW statement_timeout")
                    previous = cursor.fetchone()[0]
                    cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{millis}ms"])
                yield
                if not connection.needs_rollback:
                    with connection.cursor() as cursor:  # SET LOCAL outlives a savepoint: restore it
                        cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])
        elif connection.vendor == "sqlite":
            connection.ensure_connection()
            raw = connection.connection
            raw.set_progress_handler(lambda: int(time.monotonic() > deadline.expires), 20_000)
            try:
                yield
            finally:
                raw.set_progress_handler(None, 0)
        else:  # pragma: no cover - other databases: only the phase checks apply
            yield
    except OperationalError as exc:
        if _is_cancel(exc):
            raise deadline.error(phase) from exc
        raise
    deadline.check(phase)
