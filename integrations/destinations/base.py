"""The shared base of every destination adapter: HTTP session, timeouts, error wrapping, request log.

An adapter translates records into its vendor's calls and the vendor's answers into per-record
outcomes. It does not retry, wait or diff: the engine does (integrations/engine.py). Errors an
adapter raises say what the engine should do: wait (`RateLimited`), back off (`TransientError`),
halve the batch (`BatchRejected`) or stop the run (`ConfigurationError`).
"""

from __future__ import annotations

import email.utils
import logging
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests

logger = logging.getLogger("integrations.http")


@dataclass
class Record:
    """One contact as the destination should have it."""

    contact_id: int
    operation: str  # add, update, remove
    email: str
    external_id: str
    fields: dict[str, Any]
    external_ref: str = ""  # the destination's id, when an earlier run learnt it
    outbox_id: int = 0


@dataclass
class Outcome:
    """What happened to one record at the destination."""

    contact_id: int
    ok: bool
    error: str = ""
    external_ref: str = ""
    suppressed: bool = False  # the tool says unsubscribed / deleted: never add it again
    permanent: bool = True  # a failure a retry of the same data cannot fix (a 4xx)


@dataclass
class Reported:
    """A contact the tool reports as unsubscribed, cleaned, suppressed or deleted (read back)."""

    email: str = ""
    external_ref: str = ""  # the vendor's id, matched against what this destination accepted
    reason: str = ""


class DestinationError(Exception):
    """Base of the errors adapters raise."""

    status_code: int | None = None


class TransientError(DestinationError):
    """5xx, timeout, connection error: worth a retry after a back-off."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class RateLimited(TransientError):
    """429: wait `retry_after` seconds before the next call."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, 429)
        self.retry_after = retry_after


class BatchRejected(DestinationError):
    """A 4xx for the whole batch: the engine halves it until the bad records are isolated."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class ConfigurationError(DestinationError):
    """Credentials or settings are wrong (401, 403, unknown list): the run stops, nothing is retried."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def retry_after_seconds(value: str | None, default: float = 1.0) -> float:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


class NoLimit:
    """A limiter that never waits (tests of an adapter alone)."""

    def acquire(self, tokens: int = 1) -> float:
        return 0.0


class BaseDestination:
    """Subclasses set `kind`, `batch_size`, `default_api_base`, `rate_limit`, and implement
    `auth_headers`, `test_connection`, `upsert` and `remove`."""

    kind: ClassVar[str] = ""
    batch_size: ClassVar[int] = 100
    max_batch_size: ClassVar[int] = 100  # the vendor's documented limit; settings may lower, never raise
    default_api_base: ClassVar[str] = ""
    rate_limit: ClassVar[tuple[float, int]] = (10.0, 10)  # requests per second, burst
    snapshot: ClassVar[bool] = False  # writes the whole audience at the end (files)
    required_settings: ClassVar[tuple[str, ...]] = ()
    required_credentials: ClassVar[tuple[str, ...]] = ()
    timeout: ClassVar[tuple[float, float]] = (5.0, 30.0)  # connect, read

    def __init__(self, *, settings: dict, credentials: dict, limiter=None, session: requests.Session | None = None):
        self.settings = settings or {}
        self.credentials = credentials or {}
        self.limiter = limiter or NoLimit()
        self.session = session or requests.Session()
        self.request_log: list[dict] = []  # last requests, for debugging (never headers or bodies)
        self.context: dict[str, Any] = {}  # set by the engine: sync_id, segment_id, segment_name, run_id
        missing = [k for k in self.required_settings if not self.settings.get(k)]
        if missing:
            raise ConfigurationError(f"{self.kind} destination: settings.{missing[0]} is required")
        missing = [k for k in self.required_credentials if not self.credentials.get(k)]
        if missing:
            raise ConfigurationError(f"{self.kind} destination: credentials.{missing[0]} is required")

    # configuration ------------------------------------------------------------------------------
    @property
    def api_base(self) -> str:
        """The API root: settings.api_base (regional endpoints, test servers) or the vendor's."""
        return (self.settings.get("api_base") or self.default_api_base).rstrip("/")

    @classmethod
    def effective_batch_size(cls, settings: dict) -> int:
        """settings.batch_size bounded by the vendor's limit."""
        try:
            wanted = int(settings.get("batch_size") or cls.batch_size)
        except (TypeError, ValueError):
            wanted = cls.batch_size
        return max(1, min(wanted, cls.max_batch_size))

    @classmethod
    def effective_rate_limit(cls, settings: dict) -> tuple[float, int]:
        """(requests per second, burst): settings.rate_limit / settings.burst or the vendor default."""
        rate = float(settings.get("rate_limit") or cls.rate_limit[0])
        burst = int(settings.get("burst") or max(1, min(cls.rate_limit[1], int(rate) or 1)))
        return rate, burst

    def batch_size_for(self, *, operation: str, pending: int, default: int) -> int:
        """Records per call for a run with `pending` records of `operation` (a vendor with a bulk
        API switches to it above a size)."""
        return default

    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a call (never logged)."""
        return {}

    # HTTP ---------------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        """One call through the rate limiter, with timeouts; a failure becomes one of our errors."""
        url = path if path.startswith("http") else f"{self.api_base}{path}"
        headers = {"Accept": "application/json", **self.auth_headers(), **kwargs.pop("headers", {})}
        self.limiter.acquire(1)
        started = time.monotonic()
        try:
            response = self.session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            self._log(method, url, None, started)
            raise TransientError(f"{method} {path}: timed out ({exc.__class__.__name__})") from None
        except requests.ConnectionError as exc:
            self._log(method, url, None, started)
            raise TransientError(f"{method} {path}: connection failed ({exc.__class__.__name__})") from None
        self._log(method, url, response.status_code, started)
        status = response.status_code
        if status == 429:
            raise RateLimited(f"{method} {path}: 429 rate limited", retry_after_seconds(response.headers.get("Retry-After")))
        if status >= 500:
            raise TransientError(f"{method} {path}: {status} {_snippet(response)}", status)
        if status in (401, 403):
            raise ConfigurationError(f"{method} {path}: {status} check the credentials: {_snippet(response)}", status)
        if status >= 400:
            raise BatchRejected(f"{method} {path}: {status} {_snippet(response)}", status)
        return response

    def _log(self, method: str, url: str, status: int | None, started: float) -> None:
        entry = {"method": method, "url": url.split("?")[0], "status": status,
                 "ms": round((time.monotonic() - started) * 1000, 1)}
        self.request_log.append(entry)
        del self.request_log[:-50]
        logger.debug("destination request", extra={"kind": self.kind, **entry})

    # the adapter's job ----------------------------------------------------------------------------
    def test_connection(self) -> str:
        """Call a cheap authenticated endpoint; return a sentence on success, raise otherwise."""
        raise NotImplementedError

    def upsert(self, records: list[Record]) -> list[Outcome]:
        """Create or update `records` (operation add/update) and put them in the audience."""
        raise NotImplementedError

    def remove(self, records: list[Record]) -> list[Outcome]:
        """Take `records` out of the audience (mirror mode); the contact itself stays in the tool."""
        raise NotImplementedError

    def write_snapshot(self, records: list[Record]) -> None:
        """Snapshot destinations only: write the whole audience at once."""
        raise NotImplementedError

    reads_back: ClassVar[bool] = False  # the vendor documents a way to list unsubscribes / deletions

    def read_back(self, *, since) -> list[Reported]:
        """Contacts the tool marked unsubscribed or deleted since `since` (an aware datetime, or None
        for everything it still knows). Called by the engine before a run is planned; the engine
        maps them to contacts and suppresses them for this destination."""
        return []


def _snippet(response: requests.Response) -> str:
    text = (response.text or "").strip().replace("\n", " ")
    return text[:300]


@dataclass
class OutcomeBook:
    """Collects outcomes by contact while an adapter works through a batch's calls."""

    outcomes: dict[int, Outcome] = field(default_factory=dict)

    def ok(self, record: Record, external_ref: str = "") -> None:
        self.outcomes[record.contact_id] = Outcome(record.contact_id, True, external_ref=external_ref or record.external_ref)

    def fail(self, record: Record, error: str, *, permanent: bool = True, suppressed: bool = False) -> None:
        self.outcomes[record.contact_id] = Outcome(
            record.contact_id, False, error=error, permanent=permanent, suppressed=suppressed
        )

    def result(self, records: list[Record]) -> list[Outcome]:
        """Outcomes in record order; a record the vendor did not mention is a failure, not a success."""
        return [
            self.outcomes.get(r.contact_id) or Outcome(r.contact_id, False, error="not in the destination's answer")
            for r in records
        ]
