"""Processing stored webhook deliveries into events and contact traits (on the `ingest` queue).

Each delivery is claimed in its own transaction (row lock; SQLite's IMMEDIATE transactions
serialise instead), turned into items for `events_ingest` (idempotent on message_id, so a replay
or a redelivered task stores nothing twice), and marked processed, or failed with its error, kept
for a replay. Unsubscribes and deletions also become a `Suppression` every sync respects.
"""

from __future__ import annotations

import json

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from funnel_site.events.models import Contact
from integrations.models import DeliveredRecord, Suppression, WebhookDelivery


class PayloadError(ValueError):
    """A stored payload this code cannot turn into events (kept as the delivery's error)."""


def _hubspot_contact(workspace_id: int, object_id) -> str:
    """Our contact id of a HubSpot object: the one a sync delivered under that id, else hubspot:<id>."""
    external = (DeliveredRecord.objects.filter(sync__workspace_id=workspace_id, sync__destination__kind="hubspot",
                                               external_ref=str(object_id))
                .values_list("contact__external_id", flat=True).first())
    return external or f"hubspot:{object_id}"


def hubspot_items(delivery: WebhookDelivery, event: dict) -> tuple[list[dict], list[tuple[str, str]]]:
    """(event items, [(contact id, suppression reason)]) of one HubSpot webhook event."""
    contact = _hubspot_contact(delivery.workspace_id, event.get("objectId"))
    kind = str(event.get("subscriptionType", ""))
    when = event.get("occurredAt") or int(timezone.now().timestamp() * 1000)
    base = {"contact_id": contact, "timestamp": int(when) / 1000, "message_id": f"hubspot:{delivery.provider_id}",
            "channel": "hubspot"}
    prop, value = event.get("propertyName"), event.get("propertyValue")
    if kind == "contact.propertyChange" and prop == "lifecyclestage":
        return [{"_type": "identify", "contact_id": contact, "traits": {"lifecyclestage": value}},
                {**base, "event": "Lifecycle Stage Changed", "properties": {"lifecyclestage": value}}], []
    if kind == "contact.propertyChange" and prop == "hs_email_optout" and str(value).lower() == "true":
        return [{"_type": "identify", "contact_id": contact, "traits": {"unsubscribed": True}},
                {**base, "event": "Unsubscribed", "properties": {"source": "hubspot"}}], [(contact, "unsubscribed in HubSpot")]
    if kind == "contact.deletion":
        return [{**base, "event": "Contact Deleted", "properties": {"source": "hubspot"}}], [(contact, "deleted in HubSpot")]
    if kind == "contact.propertyChange" and prop:
        return [{"_type": "identify", "contact_id": contact, "traits": {prop: value}}], []
    return [{**base, "event": f"HubSpot {kind or 'event'}", "properties": {k: v for k, v in event.items() if k != "objectId"}}], []


def segment_items(delivery: WebhookDelivery, message: dict) -> tuple[list[dict], list[tuple[str, str]]]:
    """Items of one Segment message (track, identify, page, screen), through the Segment loader."""
    from funnel_site.events.loaders.segment import segment_message_to_item

    item = segment_message_to_item(message)
    if item.get("timestamp") is None and item.get("_type") != "identify":
        item["timestamp"] = delivery.received_at.isoformat()
    traits = message.get("traits") or {}
    unsubscribed = isinstance(traits, dict) and traits.get("unsubscribed") is True
    return [item], ([(item["contact_id"], "unsubscribed (Segment)")] if unsubscribed else [])


def standard_items(delivery: WebhookDelivery, payload: dict) -> tuple[list[dict], list[tuple[str, str]]]:
    """Items of our Standard Webhooks schema: event, contact.updated, contact.unsubscribed, contact.deleted."""
    kind, data = payload.get("type"), payload.get("data")
    if not isinstance(data, dict) or not data.get("contact_id"):
        raise PayloadError("data.contact_id is required")
    contact = str(data["contact_id"])
    if kind == "event":
        return [{**data, "message_id": data.get("message_id") or f"standard:{delivery.provider_id}"}], []
    if kind == "contact.updated":
        return [{"_type": "identify", "contact_id": contact, "email": data.get("email"),
                 "traits": data.get("traits") or {}}], []
    if kind in ("contact.unsubscribed", "contact.deleted"):
        word = "unsubscribed" if kind == "contact.unsubscribed" else "deleted"
        return [{"_type": "identify", "contact_id": contact, "traits": {word: True}},
                {"contact_id": contact, "event": word.capitalize(), "timestamp": payload.get("timestamp")
                 or delivery.received_at.isoformat(), "message_id": f"standard:{delivery.provider_id}"}], \
            [(contact, f"{word} (webhook)")]
    raise PayloadError(f"type {kind!r} is not one of event, contact.updated, contact.unsubscribed, contact.deleted")


MAPPERS = {"hubspot": hubspot_items, "segment": segment_items, "standard": standard_items}


def delivery_process(*, delivery_id: int) -> str:
    """Process one stored delivery (idempotent); returns its status afterwards."""
    from funnel_site.events.services import events_ingest

    with transaction.atomic():
        delivery = (WebhookDelivery.objects.select_for_update().select_related("workspace")
                    .filter(pk=delivery_id).first())
        if delivery is None or delivery.status == WebhookDelivery.Status.PROCESSED:
            return "processed" if delivery else "missing"
        delivery.attempts += 1
        try:
            items, suppressions = MAPPERS[delivery.source](delivery, json.loads(delivery.payload))
            with transaction.atomic():  # a savepoint: a failure leaves nothing half-applied
                result = events_ingest(workspace=delivery.workspace, items=list(enumerate(items)))
                if result.rejected:
                    raise PayloadError("; ".join(f"{e['field']}: {e['error']}" if isinstance(e, dict) else str(e)
                                                 for e in result.errors[:3]) or "rejected")
                for contact_id, reason in suppressions:
                    contact = Contact.objects.filter(workspace=delivery.workspace, external_id=contact_id).first()
                    if contact:
                        Suppression.objects.get_or_create(contact=contact, destination=None, defaults={
                            "workspace": delivery.workspace, "reason": reason, "source": delivery.source})
        except (PayloadError, ValueError, KeyError, TypeError) as exc:
            delivery.status, delivery.error = WebhookDelivery.Status.FAILED, f"{exc.__class__.__name__}: {exc}"[:2000]
        else:
            delivery.status, delivery.error = WebhookDelivery.Status.PROCESSED, ""
            delivery.processed_at = timezone.now()
        delivery.save(update_fields=["status", "error", "attempts", "processed_at"])
        return delivery.status


@shared_task(name="integrations.inbound.process_deliveries", acks_late=True, reject_on_worker_lost=True)
def process_deliveries(delivery_ids: list[int]) -> dict:
    """Process stored deliveries by id (the `ingest` queue)."""
    out: dict[str, int] = {}
    for delivery_id in delivery_ids:
        status = delivery_process(delivery_id=delivery_id)
        out[status] = out.get(status, 0) + 1
    return out


@shared_task(name="integrations.inbound.process_pending", acks_late=True, reject_on_worker_lost=True)
def process_pending(workspace_id: int | None = None, limit: int = 5000) -> dict:
    """Process the stored deliveries still `received` (of one workspace, or all: beat's sweep, which
    also catches a delivery whose wake-up was coalesced away)."""
    qs = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.RECEIVED)
    if workspace_id is not None:
        qs = qs.filter(workspace_id=workspace_id)
    return process_deliveries(list(qs.order_by("id").values_list("pk", flat=True)[:limit]))
