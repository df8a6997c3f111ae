"""Inbound webhooks over real HTTP (live server); signatures made by independent code: HubSpot's
own `hubspot-api-client` signature utility and the `standardwebhooks` package."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from funnel_site.events.models import Contact, Event
from integrations.inbound import delivery_process
from integrations.models import Suppression, WebhookDelivery, WebhookRefusal
from integrations.services import webhook_source_create

pytestmark = pytest.mark.django_db(transaction=True)

STD_OLD = "whsec_" + base64.b64encode(b"o" * 24).decode()
STD_NEW = "whsec_" + base64.b64encode(os.urandom(24)).decode()
HUBSPOT_SECRET = "hubspot-client-secret-123"
SEGMENT_SECRET = "segment-shared-secret-456"


@pytest.fixture
def ws(workspace_with_key):
    ws = workspace_with_key[0]
    webhook_source_create(workspace=ws, source="standard", secret=STD_OLD)
    webhook_source_create(workspace=ws, source="standard", secret=STD_NEW)
    webhook_source_create(workspace=ws, source="hubspot", secret=HUBSPOT_SECRET)
    webhook_source_create(workspace=ws, source="segment", secret=SEGMENT_SECRET)
    return ws


def _standard(live_server, ws, payload, *, secret=STD_NEW, msg_id="msg_1", when=None, headers=None):
    body = json.dumps(payload)
    when = when or datetime.now(UTC)
    sig = Webhook(secret).sign(msg_id, when, body)
    h = {"webhook-id": msg_id, "webhook-timestamp": str(int(when.timestamp())), "webhook-signature": sig,
         "Content-Type": "application/json", **(headers or {})}
    return requests.post(f"{live_server.url}/webhooks/standard/{ws.slug}/", data=body, headers=h, timeout=10)


def test_standard_webhook_accepted_stored_raw_and_processed_into_an_event(live_server, ws):
    payload = {"type": "event", "timestamp": "2026-01-01T00:00:00Z",
               "data": {"contact_id": "p1", "event": "Order Completed", "timestamp": "2026-01-01T00:00:00Z"}}
    resp = _standard(live_server, ws, payload)
    assert resp.status_code == 200 and resp.json() == {"accepted": 1, "duplicates": 0}
    delivery = WebhookDelivery.objects.get()
    assert json.loads(delivery.payload) == payload and delivery.status == "received"
    assert delivery_process(delivery_id=delivery.pk) == "processed"
    assert Event.objects.filter(workspace=ws, contact__external_id="p1", name="Order Completed").count() == 1
    assert delivery_process(delivery_id=delivery.pk) == "processed"  # idempotent
    assert Event.objects.filter(workspace=ws).count() == 1


def test_standard_rotation_both_secrets_and_several_signatures(live_server, ws):
    payload = {"type": "contact.updated", "data": {"contact_id": "r", "traits": {"tier": "gold"}}}
    assert _standard(live_server, ws, payload, secret=STD_OLD, msg_id="a").status_code == 200
    body = json.dumps(payload)
    now = datetime.now(UTC)
    wrong = Webhook("whsec_" + base64.b64encode(b"x" * 24).decode()).sign("b", now, body)
    right = Webhook(STD_NEW).sign("b", now, body)
    resp = requests.post(f"{live_server.url}/webhooks/standard/{ws.slug}/", data=body, timeout=10, headers={
        "webhook-id": "b", "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": f"{wrong} {right}"})
    assert resp.status_code == 200


def test_refused_requests_are_counted_and_nothing_is_stored(live_server, ws):
    payload = {"type": "event", "data": {"contact_id": "z", "event": "x", "timestamp": "2026-01-01T00:00:00Z"}}
    url = f"{live_server.url}/webhooks/standard/{ws.slug}/"
    assert requests.post(url, json=payload, timeout=10).status_code == 401  # unsigned
    bad = "whsec_" + base64.b64encode(b"b" * 24).decode()
    assert _standard(live_server, ws, payload, secret=bad, msg_id="m2").status_code == 401
    stale = datetime.now(UTC) - timedelta(minutes=6)
    assert _standard(live_server, ws, payload, msg_id="m3", when=stale).status_code == 400
    # a body changed after signing
    body = json.dumps(payload)
    now = datetime.now(UTC)
    sig = Webhook(STD_NEW).sign("m4", now, body)
    resp = requests.post(url, data=body.replace("z", "y"), timeout=10, headers={
        "webhook-id": "m4", "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": sig})
    assert resp.status_code == 401
    assert WebhookDelivery.objects.count() == 0
    reasons = sorted(WebhookRefusal.objects.values_list("reason", flat=True))
    assert reasons == ["bad_signature", "bad_signature", "stale", "unsigned"]


def test_secrets_that_no_longer_decrypt_answer_503_naming_the_setting(live_server, ws, settings):
    """The key changed without listing the old one: our configuration, not the sender's fault. The
    answer says which setting to fix, nothing is stored, and the sender's retry succeeds once the old
    key is listed again."""
    from cryptography.fernet import Fernet

    from integrations.crypto import fernet_keys
    from integrations.webhooks.base import secrets_forget

    old_keys = [k.decode() for k in fernet_keys()]
    settings.INTEGRATIONS_FERNET_KEY = Fernet.generate_key().decode()
    secrets_forget()
    payload = {"type": "event", "data": {"contact_id": "k", "event": "x", "timestamp": "2026-01-01T00:00:00Z"}}
    resp = _standard(live_server, ws, payload, msg_id="k1")
    assert resp.status_code == 503
    assert resp.json()["reason"] == "secret_unreadable" and "INTEGRATIONS_FERNET_KEY" in resp.json()["error"]
    assert WebhookDelivery.objects.count() == 0
    assert list(WebhookRefusal.objects.values_list("reason", "status_code")) == [("secret_unreadable", 503)]
    settings.INTEGRATIONS_FERNET_KEY = ",".join([settings.INTEGRATIONS_FERNET_KEY, *old_keys])
    secrets_forget()
    assert _standard(live_server, ws, payload, msg_id="k1").status_code == 200
    assert WebhookDelivery.objects.filter(provider_id="k1").count() == 1


def test_a_replayed_delivery_is_stored_once(live_server, ws):
    payload = {"type": "event", "data": {"contact_id": "d", "event": "x", "timestamp": "2026-01-01T00:00:00Z"}}
    assert _standard(live_server, ws, payload, msg_id="same").json()["accepted"] == 1
    again = _standard(live_server, ws, payload, msg_id="same")
    assert again.status_code == 200 and again.json() == {"accepted": 0, "duplicates": 1}
    assert WebhookDelivery.objects.count() == 1


def _hubspot_post(live_server, ws, events, *, secret=HUBSPOT_SECRET, age_ms=0):
    from hubspot.utils.signature import Signature

    url = f"{live_server.url}/webhooks/hubspot/{ws.slug}/"
    body = json.dumps(events)
    stamp = str(int(time.time() * 1000) - age_ms)
    sig = Signature.get_signature(client_secret=secret, request_body=body, signature_version="v3",
                                  http_uri=url, http_method="POST", timestamp=stamp)
    return requests.post(url, data=body, timeout=10, headers={
        "Content-Type": "application/json", "X-HubSpot-Signature-v3": sig, "X-HubSpot-Request-Timestamp": stamp})


def test_hubspot_v3_lifecycle_change_and_unsubscribe(live_server, ws):
    events = [
        {"eventId": 101, "subscriptionType": "contact.propertyChange", "objectId": 555, "portalId": 1,
         "propertyName": "lifecyclestage", "propertyValue": "customer", "occurredAt": int(time.time() * 1000)},
        {"eventId": 102, "subscriptionType": "contact.propertyChange", "objectId": 555, "portalId": 1,
         "propertyName": "hs_email_optout", "propertyValue": "true", "occurredAt": int(time.time() * 1000)},
    ]
    resp = _hubspot_post(live_server, ws, events)
    assert resp.status_code == 200 and resp.json()["accepted"] == 2
    for d in WebhookDelivery.objects.order_by("id"):
        assert delivery_process(delivery_id=d.pk) == "processed", d.error
    contact = Contact.objects.get(workspace=ws, external_id="hubspot:555")
    assert contact.traits["lifecyclestage"] == "customer" and contact.traits["unsubscribed"] is True
    assert set(Event.objects.filter(contact=contact).values_list("name", flat=True)) == {"Lifecycle Stage Changed", "Unsubscribed"}
    assert Suppression.objects.filter(contact=contact, destination=None).exists()


def test_hubspot_stale_and_wrong_secret_refused(live_server, ws):
    ev = [{"eventId": 1, "subscriptionType": "contact.creation", "objectId": 1}]
    assert _hubspot_post(live_server, ws, ev, age_ms=6 * 60 * 1000).status_code == 400
    assert _hubspot_post(live_server, ws, ev, secret="another-secret-xyz").status_code == 401
    assert WebhookDelivery.objects.count() == 0


def test_segment_signature_and_identify_unsubscribe(live_server, ws):
    msg = {"type": "identify", "userId": "s1", "messageId": "seg-1", "traits": {"email": "s1@x.io", "unsubscribed": True}}
    body = json.dumps(msg).encode()
    url = f"{live_server.url}/webhooks/segment/{ws.slug}/"
    sig = hmac.new(SEGMENT_SECRET.encode(), body, hashlib.sha1).hexdigest()
    assert requests.post(url, data=body, headers={"X-Signature": "0" * 40}, timeout=10).status_code == 401
    assert requests.post(url, data=body, headers={"X-Signature": sig}, timeout=10).status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert delivery_process(delivery_id=delivery.pk) == "processed", delivery.error
    assert Suppression.objects.filter(contact__external_id="s1").exists()


def test_failed_processing_is_kept_with_its_error_and_replayable(live_server, ws):
    resp = _standard(live_server, ws, {"type": "event", "data": {"contact_id": "q", "event": "x", "timestamp": "yesterday-ish"}})
    assert resp.status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert delivery_process(delivery_id=delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert "timestamp" in delivery.error and delivery.payload
    # fixed upstream (here: the stored payload corrected by an operator), then replayed
    WebhookDelivery.objects.filter(pk=delivery.pk).update(payload=json.dumps(
        {"type": "event", "data": {"contact_id": "q", "event": "x", "timestamp": "2026-01-01T00:00:00Z"}}))
    assert delivery_process(delivery_id=delivery.pk) == "processed"
