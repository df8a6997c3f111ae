"""Outbound webhook: our own JSON, signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
`webhook-signature`), carrying `Audience Entered` / `Audience Updated` / `Audience Exited` events.

The `standardwebhooks` package signs (it is the spec's reference code). `webhook-id` is derived
from the outbox rows of the batch, so a batch re-sent after a worker died carries the same id and a
receiver deduplicating on it (as the spec asks) applies it once.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from integrations.destinations.base import BaseDestination, Outcome, Record

EVENT_NAMES = {"add": "Audience Entered", "update": "Audience Updated", "remove": "Audience Exited"}


class WebhookDestination(BaseDestination):
    kind = "webhook"
    batch_size = 100
    max_batch_size = 1000
    rate_limit = (20.0, 20)
    required_settings = ("api_base",)
    required_credentials = ("secret",)

    def _post(self, records: list[Record]) -> list[Outcome]:
        now = datetime.now(UTC)
        message_id = "msg_" + hashlib.sha256(
            ",".join(str(r.outbox_id) for r in sorted(records, key=lambda r: r.outbox_id)).encode()
        ).hexdigest()[:32]
        events = [
            {"event": EVENT_NAMES[r.operation], "contact_id": r.external_id, "email": r.email,
             "traits": r.fields, "segment": self.context.get("segment_name", ""),
             "segment_id": self.context.get("segment_id")}
            for r in records
        ]
        body = json.dumps({"type": "audience.changed", "timestamp": now.isoformat(), "data": {"events": events}})
        signature = Webhook(self.credentials["secret"]).sign(message_id, now, body)
        self.request("POST", self.api_base, data=body.encode(), headers={
            "Content-Type": "application/json", "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature,
        })
        return [Outcome(r.contact_id, True, external_ref=r.external_ref) for r in records]

    def test_connection(self) -> str:
        self._post([])
        return "endpoint accepted a signed empty batch"

    def upsert(self, records: list[Record]) -> list[Outcome]:
        return self._post(records)

    def remove(self, records: list[Record]) -> list[Outcome]:
        return self._post(records)
