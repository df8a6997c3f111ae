"""Standard Webhooks inbound (`/webhooks/standard/<ws>/`): `webhook-id`, `webhook-timestamp`,
`webhook-signature` (space-separated `v1,<base64>`; any one valid signature of any active secret
passes, which is how senders and we rotate secrets). Body: {"type", "timestamp", "data"}."""

from __future__ import annotations

import base64
import hashlib
import hmac

from integrations.webhooks.base import Refused, WebhookView, parse_json, timestamp_fresh


def secret_bytes(secret: str) -> bytes:
    """The key of a `whsec_<base64>` secret (the prefix is optional)."""
    raw = secret[6:] if secret.startswith("whsec_") else secret
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        raise ValueError("a Standard Webhooks secret is whsec_ followed by base64") from None


class StandardWebhookView(WebhookView):
    source = "standard"

    def verify(self, request, body, secrets):
        msg_id = request.headers.get("webhook-id", "")
        stamp = request.headers.get("webhook-timestamp", "")
        header = request.headers.get("webhook-signature", "")
        if not (msg_id and stamp and header):
            raise Refused("unsigned", "webhook-id, webhook-timestamp and webhook-signature are required")
        if not stamp.isdigit():
            raise Refused("malformed", "webhook-timestamp must be unix seconds", 400)
        timestamp_fresh(int(stamp))
        signed = f"{msg_id}.{stamp}.".encode() + body
        passed = [p.partition(",")[2] for p in header.split() if p.startswith("v1,")]
        for secret in secrets:
            expected = base64.b64encode(hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()).decode()
            if any(hmac.compare_digest(expected, given) for given in passed):
                return
        raise Refused("bad_signature", "no webhook-signature matches an active secret")

    def items(self, body, request):
        payload = parse_json(body)
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
            raise Refused("malformed", "body must be an object with a type", 400)
        return [(request.headers["webhook-id"], body.decode())]
