"""HubSpot webhooks (`/webhooks/hubspot/<ws>/`), signature v3: X-HubSpot-Signature-v3 is the base64
HMAC-SHA256, with the app's client secret, of method + URI + body + X-HubSpot-Request-Timestamp
(ms); older than 5 minutes is refused. The body is an array of events, each with its `eventId`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from django.conf import settings

from integrations.webhooks.base import Refused, WebhookView, parse_json, timestamp_fresh

# HubSpot decodes these in the URI before signing (its v3 documentation)
_DECODE = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'", "%28": "(",
           "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}


def signed_uri(request) -> str:
    """The URI HubSpot signed: the public base URL (a setting, behind a proxy) + path and query."""
    base = settings.INTEGRATIONS_WEBHOOK_BASE_URL.rstrip("/") or f"{request.scheme}://{request.get_host()}"
    uri = base + request.get_full_path()
    for encoded, char in _DECODE.items():
        uri = uri.replace(encoded, char).replace(encoded.lower(), char)
    return uri


class HubSpotWebhookView(WebhookView):
    source = "hubspot"

    def verify(self, request, body, secrets):
        given = request.headers.get("X-HubSpot-Signature-v3", "")
        stamp = request.headers.get("X-HubSpot-Request-Timestamp", "")
        if not given or not stamp:
            raise Refused("unsigned", "X-HubSpot-Signature-v3 and X-HubSpot-Request-Timestamp are required")
        if not stamp.isdigit():
            raise Refused("malformed", "X-HubSpot-Request-Timestamp must be unix milliseconds", 400)
        timestamp_fresh(int(stamp) / 1000)
        source = request.method.encode() + signed_uri(request).encode() + body + stamp.encode()
        for secret in secrets:
            expected = base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()
            if hmac.compare_digest(expected, given):
                return
        raise Refused("bad_signature", "X-HubSpot-Signature-v3 does not match an active secret")

    def items(self, body, request):
        payload = parse_json(body)
        events = payload if isinstance(payload, list) else [payload]
        out = []
        for event in events:
            if not isinstance(event, dict) or event.get("eventId") is None:
                raise Refused("malformed", "every HubSpot event needs an eventId", 400)
            out.append((str(event["eventId"]), json.dumps(event)))
        return out
