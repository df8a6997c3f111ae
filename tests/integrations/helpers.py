"""Segments, members and destinations made directly with the ORM for the integration tests."""

from __future__ import annotations

from funnel_site.events.models import Contact
from predictions.models import Segment, SegmentMembership


def members(workspace, segment: Segment, ids: list[str], *, email=lambda i: f"{i}@example.com") -> list[Contact]:
    """Contacts `ids` (created when missing) made current members of `segment`."""
    existing = {c.external_id: c for c in Contact.objects.filter(workspace=workspace, external_id__in=ids)}
    Contact.objects.bulk_create([Contact(workspace=workspace, external_id=cid, email=email(cid), traits={"plan": "pro"})
                                 for cid in ids if cid not in existing])
    contacts = list(Contact.objects.filter(workspace=workspace, external_id__in=ids))
    open_ = set(SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True,
                                                 contact__in=contacts).values_list("contact_id", flat=True))
    SegmentMembership.objects.bulk_create([SegmentMembership(workspace=workspace, segment=segment, contact=c)
                                           for c in contacts if c.pk not in open_])
    return contacts


def leave(segment: Segment, ids: list[str]) -> None:
    """Close the memberships of `ids` (they left the segment)."""
    from django.utils import timezone

    SegmentMembership.objects.filter(segment=segment, contact__external_id__in=ids, exited_at__isnull=True).update(
        exited_at=timezone.now())


def segment(workspace, name: str = "VIPs") -> Segment:
    return Segment.objects.create(workspace=workspace, name=name, definition={})
