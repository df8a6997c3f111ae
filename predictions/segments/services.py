"""Writes of segments: create / update / delete, the default segments of a workspace, and the
refresh that materialises membership with entered / exited history.

A refresh locks the segment row (SELECT ... FOR UPDATE on PostgreSQL; SQLite transactions are
IMMEDIATE, so writers are serialised anyway), evaluates the definition, and diffs it against the
open memberships in the same transaction: two refreshes at once run one after the other, and the
second finds nothing to change. Every entry and exit writes its SegmentChange row in that
transaction; `segment_membership_changed` is sent after commit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from funnel_site.events.models import Workspace
from predictions.models import Segment, SegmentChange, SegmentMembership, SegmentSize
from predictions.segments.definition import reads_only_scores, score_targets
from predictions.segments.evaluate import definition_evaluate

BATCH = 5000
DEFAULT_SEGMENTS = (
    ("Likely purchasers", "The 10 % of scored contacts most likely to purchase.",
     {"score": {"target": "purchase", "top_percent": 10}}),
    ("Churn risk", "Contacts whose churn probability is at least 0.6.",
     {"score": {"target": "churn", "min_probability": 0.6}}),
)


class SegmentError(ValueError):
    """A segment write was refused; `field` names the input at fault."""

    def __init__(self, *, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass
class RefreshResult:
    """What one refresh did."""

    segment_id: int
    name: str
    size: int | None  # None: a real-time refresh that changed nothing (not counted, to stay cheap)
    entered: int
    exited: int
    warnings: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def segment_create(*, workspace: Workspace, name: str, definition: dict, description: str = "",
                   is_builtin: bool = False, refresh: bool = True) -> Segment:
    """Create a segment from a validated definition and (by default) fill its membership."""
    try:
        with transaction.atomic():
            segment = Segment.objects.create(workspace=workspace, name=name.strip(), description=description,
                                             definition=definition, is_builtin=is_builtin)
    except IntegrityError:
        raise SegmentError(field="name", reason=f"a segment named {name.strip()!r} already exists") from None
    if refresh:
        segment_refresh(segment=segment)
    return segment


def segment_update(*, segment: Segment, name: str | None = None, definition: dict | None = None,
                   description: str | None = None) -> Segment:
    """Change a segment's name, description or (validated) definition; a new definition is
    refreshed at once, so members who no longer match exit (with their Audience Exited records)."""
    changed_definition = definition is not None and definition != segment.definition
    if name is not None:
        segment.name = name.strip()
    if description is not None:
        segment.description = description
    if definition is not None:
        segment.definition = definition
    segment.updated_at = timezone.now()
    try:
        with transaction.atomic():
            segment.save(update_fields=["name", "description", "definition", "updated_at"])
    except IntegrityError:
        raise SegmentError(field="name", reason=f"a segment named {segment.name!r} already exists") from None
    if changed_definition:
        segment_refresh(segment=segment)
    return segment


def segment_delete(*, segment: Segment) -> None:
    """Delete a segment with its memberships, changes and sizes."""
    segment.delete()


def segment_refresh(*, segment: Segment, contact_ids=None, as_of: datetime | None = None) -> RefreshResult:
    """Re-evaluate the segment and record who entered and exited (only `contact_ids`, when given:
    a real-time rescoring). Idempotent: a second run with nothing new changes nothing."""
    from predictions.signals import segment_membership_changed

    restrict = None if contact_ids is None else sorted({int(c) for c in contact_ids})
    with transaction.atomic():
        locked = Segment.objects.select_for_update().get(pk=segment.pk)
        # the workspace of a segment never changes: the caller's (select_related) saves a query
        locked.workspace = segment.workspace
        evaluation = definition_evaluate(workspace=locked.workspace, definition=locked.definition, as_of=as_of,
                                         contact_ids=restrict)
        wanted = np.unique(np.asarray(evaluation.contact_ids, dtype=np.int64))
        open_rows = SegmentMembership.objects.filter(segment=locked, exited_at__isnull=True)
        if restrict is not None:
            open_rows = open_rows.filter(contact_id__in=restrict)
        current = np.unique(np.fromiter(open_rows.values_list("contact_id", flat=True), dtype=np.int64))
        # sorted-array differences: a whole-workspace refresh diffs 100,000s of ids without Python sets
        entering = np.setdiff1d(wanted, current, assume_unique=True).tolist()
        leaving = np.setdiff1d(current, wanted, assume_unique=True).tolist()
        now = timezone.now()
        partial_no_change = restrict is not None and not entering and not leaving
        size = None
        if not partial_no_change:  # a real-time rescoring that changed nothing writes nothing
            _enter(locked, entering, now)
            _exit(locked, leaving, now)
            # the open rows of the whole segment were all read above, under the segment's lock
            size = (len(current) + len(entering) - len(leaving) if restrict is None
                    else SegmentMembership.objects.filter(segment=locked, exited_at__isnull=True).count())
            SegmentSize.objects.create(segment=locked, size=size, entered=len(entering), exited=len(leaving), at=now)
        if restrict is None:  # refreshed_at: when the whole segment was last evaluated
            Segment.objects.filter(pk=locked.pk).update(refreshed_at=now)
            segment.refreshed_at = now
        if entering or leaving:
            kwargs = {"segment_id": locked.pk, "workspace_id": locked.workspace_id, "entered": len(entering),
                      "exited": len(leaving)}
            transaction.on_commit(lambda: segment_membership_changed.send(sender=Segment, **kwargs))
    return RefreshResult(segment_id=locked.pk, name=locked.name, size=size, entered=len(entering),
                         exited=len(leaving), warnings=evaluation.warnings)


def _enter(segment: Segment, contact_ids: list[int], now: datetime) -> None:
    if not contact_ids:
        return
    if connection.vendor == "postgresql":
        # one statement per table with the ids as an array: ORM batches cost ~8x more (benchmark)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {SegmentMembership._meta.db_table} (workspace_id, segment_id, contact_id, entered_at) "
                "SELECT %s, %s, c, %s FROM unnest(%s::bigint[]) AS c", [segment.workspace_id, segment.pk, now,
                                                                       contact_ids])
            _changes_pg(cursor, segment, contact_ids, SegmentChange.Kind.ENTERED, now)
        return
    for start in range(0, len(contact_ids), BATCH):
        chunk = contact_ids[start : start + BATCH]
        SegmentMembership.objects.bulk_create(
            [SegmentMembership(workspace_id=segment.workspace_id, segment=segment, contact_id=c, entered_at=now)
             for c in chunk], batch_size=BATCH)
        SegmentChange.objects.bulk_create(
            [SegmentChange(workspace_id=segment.workspace_id, segment=segment, contact_id=c,
                           kind=SegmentChange.Kind.ENTERED, at=now) for c in chunk], batch_size=BATCH)


def _exit(segment: Segment, contact_ids: list[int], now: datetime) -> None:
    if not contact_ids:
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {SegmentMembership._meta.db_table} SET exited_at = %s "
                "WHERE segment_id = %s AND exited_at IS NULL AND contact_id = ANY(%s::bigint[])",
                [now, segment.pk, contact_ids])
            _changes_pg(cursor, segment, contact_ids, SegmentChange.Kind.EXITED, now)
        return
    for start in range(0, len(contact_ids), BATCH):
        chunk = contact_ids[start : start + BATCH]
        SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True, contact_id__in=chunk).update(
            exited_at=now)
        SegmentChange.objects.bulk_create(
            [SegmentChange(workspace_id=segment.workspace_id, segment=segment, contact_id=c,
                           kind=SegmentChange.Kind.EXITED, at=now) for c in chunk], batch_size=BATCH)


def _changes_pg(cursor, segment: Segment, contact_ids: list[int], kind: str, now: datetime) -> None:
    # ids ascending, so the records of one refresh are in contact order like the ORM path's
    cursor.execute(
        f"INSERT INTO {SegmentChange._meta.db_table} (workspace_id, segment_id, contact_id, kind, at) "
        "SELECT %s, %s, c, %s, %s FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(c, n) ORDER BY n",
        [segment.workspace_id, segment.pk, kind, now, contact_ids])


def segments_refresh(*, workspace: Workspace | None = None, workspace_id: int | None = None, contact_ids=None,
                     target: str | None = None) -> list[RefreshResult]:
    """Refresh every segment of the workspace, each in its own transaction (whole segments, or only
    `contact_ids`). `target`: only `target`'s scores changed (a real-time rescoring), so a segment
    whose conditions are all scores of other targets is skipped (nothing it reads changed)."""
    segments = (Segment.objects.filter(workspace_id=workspace.pk if workspace is not None else workspace_id)
                .select_related("workspace").order_by("id"))
    return [segment_refresh(segment=segment, contact_ids=contact_ids) for segment in segments
            if target is None or target in score_targets(segment.definition)
            or not reads_only_scores(segment.definition)]


def segments_create_defaults(*, workspace: Workspace) -> list[Segment]:
    """The two segments every workspace starts with (editable; skipped when the name is taken)."""
    created = []
    for name, description, definition in DEFAULT_SEGMENTS:
        segment, made = Segment.objects.get_or_create(
            workspace=workspace, name=name,
            defaults={"description": description, "definition": definition, "is_builtin": True},
        )
        if made:
            created.append(segment)
    return created
