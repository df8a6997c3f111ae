"""The verifying base view of inbound webhooks (anymail's contract, with a durable store).

Order: the workspace's active secrets; verification on the raw body in constant time (a refusal is
counted with its reason and nothing of the body is kept); the payload split into the provider's
items, each stored raw under its provider id (a redelivery is a duplicate, stored once); 200 at
once; processing on the `ingest` queue (integrations/inbound.py).
"""

from __future__ import annotations

import json
import logging
import time

from django.conf import settings
from django.db import connection, transaction
from django.http import Http404, HttpRequest, JsonResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from funnel_site.events.models import Workspace
from integrations.crypto import CredentialsUnreadable
from integrations.models import WebhookDelivery, WebhookRefusal, WebhookSource
from integrations.webhooks.wake import waker

logger = logging.getLogger("integrations.webhooks")
MAX_BODY_BYTES = 5 * 1024 * 1024
SECRETS_TTL_SECONDS = 10.0  # a new or retired secret reaches every web process within this long
UNREADABLE = ("the workspace's {source} signing secrets do not decrypt: INTEGRATIONS_FERNET_KEY (or SECRET_KEY) "
              "changed; list the old key too")
_secrets: dict[tuple[str, str], tuple[float, Workspace | None, list[str], int]] = {}


def secrets_forget() -> None:
    """Drop this process's cached secrets (called when a secret is added or retired)."""
    _secrets.clear()


def workspace_secrets(slug: str, source: str) -> tuple[Workspace | None, list[str], int]:
    """The workspace, its readable active secrets for `source` and how many did not decrypt, cached
    briefly: at hundreds of requests a second, two queries and a Fernet decryption per request were
    most of a request's cost. An unreadable secret (the key changed) is logged once per fill, not
    once per request."""
    key = (slug, source)
    hit = _secrets.get(key)
    now = time.monotonic()
    if hit and hit[0] > now:
        return hit[1], hit[2], hit[3]
    ws = Workspace.objects.filter(slug=slug).first()
    secrets, unreadable = [], 0
    for row in [] if ws is None else WebhookSource.objects.filter(workspace=ws, source=source, active=True):
        try:
            secrets.append(row.secret)
        except CredentialsUnreadable:
            unreadable += 1
    if unreadable:
        logger.error(UNREADABLE.format(source=source), extra={"workspace_id": ws.pk, "unreadable": unreadable})
    _secrets[key] = (now + SECRETS_TTL_SECONDS, ws, secrets, unreadable)
    return ws, secrets, unreadable


class Refused(Exception):
    """A request that is not accepted: `reason` is counted, `status` answered (401 or 400; 503 when our own
    stored secrets do not decrypt, so the sender retries once that is fixed)."""

    def __init__(self, reason: str, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.reason, self.status = reason, status


def timestamp_fresh(seconds: float) -> None:
    """Refuse a timestamp outside the tolerance (either direction: a clock far ahead is no better)."""
    if abs(time.time() - seconds) > settings.INTEGRATIONS_WEBHOOK_TOLERANCE_SECONDS:
        raise Refused("stale", "timestamp outside the tolerance of "
                      f"{settings.INTEGRATIONS_WEBHOOK_TOLERANCE_SECONDS} s", 400)


@method_decorator(csrf_exempt, name="dispatch")
class WebhookView(View):
    """Subclasses set `source` and implement `verify(request, body, secrets)` and `items(body, request)`."""

    source = ""
    http_method_names = ["post"]

    def verify(self, request: HttpRequest, body: bytes, secrets: list[str]) -> None:
        """Raise Refused unless one of `secrets` signed `body` (constant-time comparisons)."""
        raise NotImplementedError

    def items(self, body: bytes, request: HttpRequest) -> list[tuple[str, str]]:
        """(provider id, raw JSON text) of each item of an accepted body."""
        raise NotImplementedError

    def post(self, request: HttpRequest, workspace: str):
        ws, secrets, unreadable = workspace_secrets(workspace, self.source)
        if ws is None:
            raise Http404("no such workspace")
        try:
            if int(request.headers.get("Content-Length") or 0) > MAX_BODY_BYTES:
                raise Refused("too_large", f"body larger than {MAX_BODY_BYTES} bytes", 400)
            body = request.body
            if not secrets and unreadable:  # our configuration, not the sender's fault: 503, so it retries
                raise Refused("secret_unreadable", UNREADABLE.format(source=self.source), 503)
            if not secrets:
                raise Refused("no_secret", f"no {self.source} signing secret is registered for this workspace")
            self.verify(request, body, secrets)
            items = self.items(body, request)
        except Refused as refusal:
            WebhookRefusal.objects.create(workspace=ws, source=self.source, reason=refusal.reason,
                                          status_code=refusal.status)
            return JsonResponse({"error": str(refusal), "reason": refusal.reason}, status=refusal.status)
        new_ids, duplicates = deliveries_store(workspace=ws, source=self.source, items=items)
        if new_ids:
            wake_processing(ws.pk)
        return JsonResponse({"accepted": len(new_ids), "duplicates": duplicates})


def wake_processing(workspace_id: int) -> None:
    """Have the workspace's stored deliveries processed soon (a background thread publishes)."""
    waker.wake(workspace_id)


def deliveries_store(*, workspace: Workspace, source: str, items: list[tuple[str, str]]) -> tuple[list[int], int]:
    """Store items not seen before (unique on provider id, so concurrent redeliveries store one row);
    returns the ids of the rows this call created and the number of duplicates."""
    if len(items) == 1:  # the common case: one statement, a conflict is the duplicate
        pid, raw = items[0]
        row_id = _insert_one(workspace_id=workspace.pk, source=source, provider_id=pid, payload=raw)
        return ([row_id], 0) if row_id is not None else ([], 1)
    wanted = {pid: raw for pid, raw in items}
    with transaction.atomic():
        seen = set(WebhookDelivery.objects.filter(workspace=workspace, source=source, provider_id__in=list(wanted))
                   .values_list("provider_id", flat=True))
        fresh = [WebhookDelivery(workspace=workspace, source=source, provider_id=pid, payload=raw)
                 for pid, raw in wanted.items() if pid not in seen]
        WebhookDelivery.objects.bulk_create(fresh, ignore_conflicts=True)  # a racing twin: one row
        # ignore_conflicts inserts do not say which rows were new; processing is idempotent, so a
        # row a racing request also created being queued twice does no harm
        ids = list(WebhookDelivery.objects.filter(
            workspace=workspace, source=source, provider_id__in=[d.provider_id for d in fresh],
            status=WebhookDelivery.Status.RECEIVED, attempts=0,
        ).values_list("pk", flat=True))
    return ids, len(items) - len(ids)


def _insert_one(*, workspace_id: int, source: str, provider_id: str, payload: str) -> int | None:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id, in autocommit: one round trip to the database,
    durable when it returns (the ORM's atomic create took three: BEGIN, INSERT, COMMIT, each a wait
    for a PostgreSQL that shares the cores). None when the provider id was stored before."""
    meta = WebhookDelivery._meta
    columns = {f.name: f.column for f in meta.concrete_fields}
    values = {"workspace": workspace_id, "source": source, "provider_id": provider_id, "payload": payload,
              "status": WebhookDelivery.Status.RECEIVED, "error": "", "attempts": 0, "received_at": timezone.now()}
    conflict = ", ".join(columns[n] for n in ("workspace", "source", "provider_id"))  # uniq_webhook_delivery
    sql = (f"INSERT INTO {meta.db_table} ({', '.join(columns[n] for n in values)}) "
           f"VALUES ({', '.join(['%s'] * len(values))}) ON CONFLICT ({conflict}) DO NOTHING RETURNING {meta.pk.column}")
    with connection.cursor() as cursor:
        cursor.execute(sql, list(values.values()))
        row = cursor.fetchone()
    return row[0] if row else None


def parse_json(body: bytes):
    """The body as JSON, or Refused(400) naming the problem."""
    try:
        return json.loads(body)
    except ValueError as exc:
        raise Refused("malformed", f"body is not JSON: {exc}", 400) from None
