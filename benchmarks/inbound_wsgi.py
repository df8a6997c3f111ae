"""The product's WSGI application plus one benchmark-only route, for the inbound webhooks' baseline:
`POST /__bench/insert` stores one `WebhookDelivery` row with the same single statement the webhook
view uses (`integrations.webhooks.base._insert_one`), and nothing else: no middleware, no URL
resolution, no signature, no JSON. Served by the same gunicorn, workers and threads as the webhooks,
so the two latencies differ only by what the webhook path adds to its durable insert.

Never deployed: only `benchmarks/integrations.py` starts gunicorn on `benchmarks.inbound_wsgi`.
"""

from __future__ import annotations

import itertools
import os

from funnel_site.wsgi import application as product

_ids = itertools.count()


def application(environ, start_response):
    if environ.get("PATH_INFO") != "/__bench/insert":
        return product(environ, start_response)
    from integrations.webhooks.base import _insert_one

    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length).decode() if length else "{}"
    row = _insert_one(workspace_id=int(environ["HTTP_X_WORKSPACE_ID"]), source="standard",
                      provider_id=environ.get("HTTP_WEBHOOK_ID") or f"bare_{os.getpid()}_{next(_ids)}", payload=body)
    status = "200 OK" if row is not None else "409 Conflict"
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", "2")])
    return [b"{}"]
