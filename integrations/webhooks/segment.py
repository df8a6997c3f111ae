"""Segment webhooks destination inbound (`/webhooks/segment/<ws>/`): `X-Signature` is the hex
HMAC-SHA1 of the raw body with the shared secret. Segment signs no timestamp, so replays are
stopped by the dedupe on `messageId`."""

from __future__ import annotations

import hashlib
import hmac
import json

from integrations.webhooks.base import Refused, WebhookView, parse_json


class SegmentWebhookView(WebhookView):
    source = "segment"

    def verify(self, request, body, secrets):
        given = request.headers.get("X-Signature", "")
        if not given:
            raise Refused("unsigned", "X-Signature is required")
        for secret in secrets:
            if hmac.compare_digest(hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(), given.lower()):
                return
        raise Refused("bad_signature", "X-Signature does not match an active secret")

    def items(self, body, request):
        payload = parse_json(body)
        messages = payload.get("batch") if isinstance(payload, dict) and "batch" in payload else [payload]
        out = []
        for message in messages if isinstance(messages, list) else []:
            if not isinstance(message, dict) or not message.get("messageId"):
                raise Refused("malformed", "every Segment message needs a messageId", 400)
            out.append((str(message["messageId"]), json.dumps(message)))
        if not out:
            raise Refused("malformed", "no Segment message in the body", 400)
        return out
