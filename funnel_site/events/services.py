"""Writes of the events domain: workspaces, API keys, and the one ingestion service every source uses."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from funnel_site.events import ingestlog, store
from funnel_site.events.models import ApiKey, Event, Workspace
from funnel_site.events.signals import events_ingested
from funnel_site.events.stages import PURCHASE, StageResolver
from funnel_site.events.validation import ItemError, ValidEvent, validate_item, validate_record

log = structlog.get_logger(__name__)

KEY_PREFIX = "fk_"
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class WorkspaceError(ValueError):
    """A workspace cannot be created or found."""


def workspace_create(*, slug: str, name: str = "", time_zone: str = "UTC") -> tuple[Workspace, str]:
    """Create a workspace and its first API key; returns (workspace, the key in clear, shown once)."""
    if not SLUG_RE.match(slug or ""):
        raise WorkspaceError(
            f"slug {slug!r} is invalid: use 1-64 lower-case letters, digits, '-' or '_', starting with a letter or digit"
        )
    try:
        with transaction.atomic():
            workspace = Workspace.objects.create(slug=slug, name=name or slug, time_zone=time_zone)
            _, key = api_key_create(workspace=workspace, name="default")
    except IntegrityError:
        raise WorkspaceError(f"workspace {slug!r} already exists") from None
    log.info("workspace_created", workspace=slug)
    return workspace, key


def workspace_get(*, slug: str) -> Workspace:
    """The workspace with this slug, or WorkspaceError naming it."""
    try:
        return Workspace.objects.get(slug=slug)
    except Workspace.DoesNotExist:
        raise WorkspaceError(f"workspace {slug!r} does not exist") from None


def _hash_key(key: str) -> str:
    # Keys are 256-bit random values, so a fast hash is safe (as for GitHub tokens); no salt needed.
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_create(*, workspace: Workspace, name: str = "default", role: str = "admin") -> tuple[ApiKey, str]:
    """Create an API key with a role (viewer, editor, admin); the clear key is returned once and only
    its hash is stored."""
    if role not in dict(ApiKey._meta.get_field("role").choices):
        raise WorkspaceError(f"role {role!r} is not one of viewer, editor, admin")
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(workspace=workspace, name=name, prefix=prefix, key_hash=_hash_key(key), role=role)
    return api_key, key


def api_key_revoke(*, api_key: ApiKey) -> None:
    """Revoke a key: it authenticates nothing from now on."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])


def api_key_verify(*, key: str) -> ApiKey | None:
    """The active ApiKey for a clear key, or None."""
    if not key.startswith(KEY_PREFIX):
        return None
    prefix = key[len(KEY_PREFIX) :].split("_", 1)[0]
    api_key = ApiKey.objects.select_related("workspace").filter(prefix=prefix).first()
    if api_key is None or api_key.revoked_at is not None:
        return None
    if not hmac.compare_digest(api_key.key_hash, _hash_key(key)):
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > timedelta(minutes=5):
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key


@dataclass
class IngestResult:
    """What happened to a batch: positions of rejected items come back with the field and reason."""

    received: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0
    identified: int = 0
    errors: list[dict] = field(default_factory=list)

    def add(self, other: IngestResult) -> None:
        """Accumulate another batch's result into this one."""
        self.received += other.received
        self.imported += other.imported
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.identified += other.identified
        self.errors.extend(other.errors)


def events_ingest(
    *,
    workspace: Workspace,
    items: Sequence[tuple[int, object]],
    now: datetime | None = None,
    resolver: StageResolver | None = None,
) -> IngestResult:
    """Validate and store a batch of (position, raw item); invalid items are reported, valid ones kept.

    Idempotent: an event whose (workspace, message_id) is stored already counts as a duplicate.
    """
    now = now or timezone.now()
    result, valid = _validate(items, now=now)
    if valid:
        contact_ids = _store(workspace=workspace, valid=valid, now=now, resolver=resolver, result=result)
        if contact_ids:
            workspace_id = workspace.id
            # after commit (at once when no caller's transaction is open): listeners read the events
            transaction.on_commit(
                lambda: events_ingested.send(sender=Event, workspace_id=workspace_id, contact_ids=contact_ids)
            )
    return result


def _validate(items: Sequence[tuple[int, object]], *, now: datetime) -> tuple[IngestResult, list[ValidEvent]]:
    max_future = timedelta(seconds=settings.INGEST_MAX_FUTURE_SECONDS)
    result = IngestResult(received=len(items))
    valid: list[ValidEvent] = []
    append = valid.append
    for position, raw in items:
        try:
            if raw.__class__ is tuple:  # a canonical CSV record (file import)
                append(validate_record(raw, now=now, max_future=max_future))
            else:
                append(validate_item(raw, now=now, max_future=max_future))
        except ItemError as exc:
            result.rejected += 1
            result.errors.append({"position": position, "field": exc.field, "error": str(exc)})
    return result, valid


def _store(
    *, workspace: Workspace, valid: list[ValidEvent], now: datetime, resolver: StageResolver | None,
    result: IngestResult,
) -> list[int]:
    """Store the valid events (retrying a deadlock); returns the Contact ids that got new events."""
    resolver = resolver or StageResolver.for_workspace(workspace.id)
    retry = not connection.in_atomic_block  # inside a caller's transaction a failure is the caller's
    for attempt in range(1, _DEADLOCK_ATTEMPTS + 1):
        counts = (result.imported, result.duplicates, result.identified)
        try:
            with transaction.atomic():
                return _store_valid(workspace=workspace, valid=valid, now=now, resolver=resolver, result=result)
        except OperationalError as exc:
            if not (retry and attempt < _DEADLOCK_ATTEMPTS and _is_deadlock(exc)):
                raise
            # Concurrent writers lock contacts in id order, but two batches creating the same new
            # contacts or events can still wait on each other; PostgreSQL then aborts one. The
            # batch is rolled back as a whole, so storing it again is safe.
            result.imported, result.duplicates, result.identified = counts
            log.warning("ingest_deadlock_retry", workspace=workspace.slug, attempt=attempt, events=len(valid))


_DEADLOCK_ATTEMPTS = 5


def _is_deadlock(exc: BaseException) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) in ("40P01", "40001")  # deadlock, serialization failure


def _store_valid(
    *, workspace: Workspace, valid: list[ValidEvent], now: datetime, resolver: StageResolver,
    result: IngestResult,
) -> list[int]:
    # Locked (in id order): concurrent batches of one contact update its first/last seen and first
    # purchase one after the other.
    contacts = store.contacts_ensure(
        workspace_id=workspace.id, external_ids=list(dict.fromkeys(v.contact_id for v in valid)), lock=True
    )
    channels: dict[str, str] = {}
    for v in valid:
        if v.campaign and v.campaign not in channels:
            channels[v.campaign] = v.channel
    campaign_ids = store.campaigns_ensure(
        workspace_id=workspace.id, keys=list(channels), channels=channels
    )

    # Per contact: the batch's time range and its earliest purchase (Contact.first_purchase_at).
    span: dict[str, list] = {}
    profiles: dict[str, tuple[str, dict]] = {}
    events: list[ValidEvent] = []
    # This loop and the one building rows run once per event: locals and a per-batch stage
    # cache instead of attribute and method lookups keep them a small share of ingestion.
    stage_of: dict[str, str] = {}
    for v in valid:
        name = v.name
        if name is None:
            result.identified += 1
            profiles[v.contact_id] = (v.email, v.traits)
            continue
        if v.email or v.traits:
            profiles[v.contact_id] = (v.email, v.traits)
        events.append(v)
        stage = stage_of.get(name)
        if stage is None:
            stage = stage_of[name] = resolver.stage_of(name)
        ts = v.timestamp
        s = span.get(v.contact_id)
        if s is None:
            span[v.contact_id] = [ts, ts, ts if stage == PURCHASE else None]
        else:
            if ts < s[0]:
                s[0] = ts
            elif ts > s[1]:
                s[1] = ts
            if stage == PURCHASE and (s[2] is None or ts < s[2]):
                s[2] = ts

    updates = []
    for ext, (fs, ls, fp) in span.items():
        cid, old_fs, old_ls, old_fp, _, _ = contacts[ext]
        new_fp = fp if old_fp is None or (fp is not None and fp < old_fp) else old_fp
        if (old_fs is None or fs < old_fs) or (old_ls is None or ls > old_ls) or new_fp != old_fp:
            updates.append((cid, fs, ls, fp))
        span[ext] = cid
    workspace_id = workspace.id
    dumps_json = store.dumps_json
    rows = []
    append = rows.append
    for v in events:
        append(
            (
                workspace_id,
                span[v.contact_id],
                v.name,
                v.timestamp,
                now,
                campaign_ids.get(v.campaign) if v.campaign else None,
                v.channel,
                v.value,
                dumps_json(v.properties) if v.properties else "{}",
                v.message_id,
            )
        )
    first_id = ingestlog.event_id_floor() + 1 if rows else 0
    inserted = store.events_insert(rows)
    touched = list(span.values()) if inserted else []
    result.duplicates += len(rows) - inserted
    store.contacts_update(updates)
    if profiles:
        changed = []
        for ext, (email, traits) in profiles.items():
            cid, _, _, _, old_email, old_traits = contacts[ext]
            merged = {**(old_traits or {}), **traits}
            new_email = email or old_email
            if new_email != old_email or merged != (old_traits or {}):
                changed.append((cid, new_email, merged))
        store.contacts_set_profile(changed)
    result.imported += inserted
    if inserted:
        # Last: the log's counter lock is held until commit and orders readers (see ingestlog).
        ingestlog.ingest_log_append(
            workspace_id=workspace_id, first_event_id=first_id, last_event_id=ingestlog.event_id_ceiling(),
            events=inserted,
        )
    return touched
