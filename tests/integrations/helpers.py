"""Segments, members and destinations made directly with the ORM for the integration tests."""

from __future__ import annotations

from funnel_site.events.models import Contact
from predictions.models import Segment, SegmentMembership


def members(workspace, segment: Segment, ids: list[str], *, email=lambda i: f"{i}@example.com") -> list[Contact]:
    """Contacts `ids` (created when missing) made current members of `segment`."""
    contacts = []
    for cid in ids:
        contact, _ = Contact.objects.get_or_create(workspace=workspace, external_id=cid,
                                                   defaults={"email": email(cid), "traits": {"plan": "pro"}})
        SegmentMembership.objects.get_or_create(workspace=workspace, segment=segment, contact=contact,
                                                exited_at__isnull=True)
        contacts.append(contact)
    return contacts


def leave(segment: Segment, ids: list[str]) -> None:
    """Close the memberships of `ids` (they left the segment)."""
    from django.utils import timezone

    SegmentMembership.objects.filter(segment=segment, contact__external_id__in=ids, exited_at__isnull=True).update(
        exited_at=timezone.now())


def segment(workspace, name: str = "VIPs") -> Segment:
    return Segment.objects.create(workspace=workspace, name=name, definition={})
