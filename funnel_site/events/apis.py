"""HTTP API of the events domain: bulk ingestion, contacts, campaigns, events, the workspace itself.

Every view reads and writes only the workspace of the API key that authenticated the request.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from funnel_site.events.auth import request_workspace
from funnel_site.events.body import BodyError, read_json_body
from funnel_site.events.models import Campaign, Contact, Event
from funnel_site.events.selectors import event_stages
from funnel_site.events.services import IngestResult, events_ingest


def exception_handler(exc, context):
    """DRF errors as `{"error": "...", "field": name or null, "detail": ...}`: one shape for every client."""
    response = drf_exception_handler(exc, context)
    if response is not None:
        detail = response.data
        field = None
        if isinstance(detail, dict) and set(detail) == {"detail"}:
            message = str(detail["detail"])
        elif isinstance(detail, dict) and detail:
            field, reason = _first_error(detail)
            message = f"{field}: {reason}"
        else:
            message = "invalid request"
        response.data = {"error": message, "field": field, "detail": detail}
    return response


def _first_error(detail: dict) -> tuple[str, str]:
    """The dotted path (`definition.steps[0]`) and reason of the first error of a DRF detail."""
    path, node = "", detail
    while isinstance(node, (dict, list)) and node:
        if isinstance(node, list):
            node = node[0]
            continue
        key = next(iter(node))
        if key == "non_field_errors":  # DRF's name for the object as a whole
            key = "" if path else "body"
        elif isinstance(key, int):
            key = f"[{key}]"
        path = f"{path}.{key}" if path and key and not key.startswith("[") else f"{path}{key}"
        node = node[next(iter(node))]
    return path or "body", str(node)


def ingest_response(result: IngestResult, *, position_key: str = "index") -> Response:
    """The JSON answer of an ingestion request; 400 only when every item was rejected."""
    body = {
        "received": result.received,
        "imported": result.imported,
        "duplicates": result.duplicates,
        "rejected": result.rejected,
        "errors": [
            {position_key: e["position"], "field": e["field"], "error": e["error"]} for e in result.errors
        ],
    }
    code = status.HTTP_400_BAD_REQUEST if result.received and result.rejected == result.received else 200
    return Response(body, status=code)


def parse_batch(request, *, unwrap_batch: bool = False) -> list | Response:
    """The list of raw items of an ingestion body, or an error Response (400/413).

    With `unwrap_batch` (Segment's /v1/batch) a body `{"batch": [...]}` is its list of messages;
    the item limit is checked on what is finally ingested, after unwrapping.
    """
    try:
        payload = read_json_body(request._request)
    except BodyError as exc:
        return Response({"error": exc.message}, status=exc.status)
    if unwrap_batch and isinstance(payload, dict) and "batch" in payload:
        payload = payload["batch"]
        if not isinstance(payload, list):
            return Response({"error": "batch must be a list of messages", "field": "batch"}, status=400)
    items = payload if isinstance(payload, list) else [payload] if isinstance(payload, dict) else None
    if items is None:
        return Response(
            {"error": f"body must be a JSON object or a list of objects, got {type(payload).__name__}"},
            status=400,
        )
    if len(items) > settings.INGEST_MAX_BATCH:
        return Response(
            {"error": f"batch of {len(items)} items is over the limit of {settings.INGEST_MAX_BATCH}"},
            status=413,
        )
    return items


_TEXT_OR_NUMBER = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
_OPTIONAL_TEXT = {**_TEXT_OR_NUMBER, "nullable": True, "description": "null or absent: none"}
EVENT_ITEM_SCHEMA = {
    "type": "object",
    "description": "one event; validated on its own (funnel_site/events/validation.py): a bad item is "
    "rejected with its index, field and reason and the others are stored",
    "required": ["contact_id", "event", "timestamp"],
    "properties": {
        "contact_id": {**_TEXT_OR_NUMBER, "description": "at most 255 characters"},
        "event": {**_TEXT_OR_NUMBER, "description": "at most 200 characters"},
        "timestamp": {"oneOf": [{"type": "string"}, {"type": "number"}],
                      "description": "ISO-8601, or unix seconds / milliseconds"},
        "campaign": _OPTIONAL_TEXT, "channel": _OPTIONAL_TEXT,
        "value": {"oneOf": [{"type": "number"}, {"type": "string"}], "nullable": True},
        "message_id": {**_OPTIONAL_TEXT, "description": "idempotency key (absent: a hash of the content)"},
        "properties": {"oneOf": [{"type": "object"}, {"type": "string"}], "nullable": True,
                       "description": "an object (or its JSON text), at most 32 levels deep and 64 KiB"},
        "email": _OPTIONAL_TEXT, "traits": {"oneOf": [{"type": "object"}, {"type": "string"}], "nullable": True},
    },
}
EVENTS_BODY_SCHEMA = {"oneOf": [EVENT_ITEM_SCHEMA, {"type": "array", "items": EVENT_ITEM_SCHEMA, "maxItems": 10000}]}


INGEST_RESULT = inline_serializer(
    "IngestResult",
    {
        "received": serializers.IntegerField(),
        "imported": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "rejected": serializers.IntegerField(),
        "errors": serializers.ListField(child=serializers.DictField()),
    },
)


class EventSerializer(serializers.ModelSerializer):
    contact_id = serializers.CharField(source="contact.external_id")
    campaign = serializers.CharField(source="campaign.key", allow_null=True, default=None)
    stage = serializers.SerializerMethodField(help_text="derived: the name's stage, a repeat purchase loyalty")

    def get_stage(self, event: Event) -> str:
        return self.context["stages"][event.id]

    class Meta:
        model = Event
        fields = [
            "id", "contact_id", "name", "stage", "timestamp", "received_at", "campaign", "channel",
            "value", "properties", "message_id",
        ]


class EventsApi(generics.GenericAPIView):
    """POST: bulk ingestion (one object or a list of up to 10,000). GET: the newest events."""

    serializer_class = EventSerializer

    @extend_schema(
        request={"application/json": EVENTS_BODY_SCHEMA},
        responses={200: INGEST_RESULT, 400: INGEST_RESULT, 413: None},
        description="Each item is validated on its own: valid items are stored, invalid ones come back "
        "with their index, field and reason. message_id (or a hash of the content) makes retries safe.",
    )
    def post(self, request):
        items = parse_batch(request)
        if isinstance(items, Response):
            return items
        result = events_ingest(workspace=request_workspace(request), items=list(enumerate(items)))
        return ingest_response(result)

    class Query(serializers.Serializer):
        contact_id = serializers.CharField(required=False, allow_blank=True, max_length=255,
                                           help_text="only this contact's events")
        name = serializers.CharField(required=False, allow_blank=True, max_length=200,
                                     help_text="only events with this name")

    @extend_schema(parameters=[Query], responses=EventSerializer(many=True))
    def get(self, request):
        workspace = request_workspace(request)
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)  # also refuses NUL characters (PostgreSQL would)
        qs = (
            Event.objects.filter(workspace=workspace)
            .select_related("contact", "campaign")
            .order_by("-timestamp", "-id")
        )
        if contact_id := query.validated_data.get("contact_id"):
            qs = qs.filter(contact__external_id=contact_id)
        if name := query.validated_data.get("name"):
            qs = qs.filter(name=name)
        page = self.paginate_queryset(qs)
        stages = event_stages(workspace_id=workspace.id, events=page)
        return self.get_paginated_response(EventSerializer(page, many=True, context={"stages": stages}).data)


class ContactSerializer(serializers.ModelSerializer):
    contact_id = serializers.CharField(source="external_id")

    class Meta:
        model = Contact
        fields = ["contact_id", "email", "traits", "first_seen", "last_seen", "first_purchase_at"]


class ContactListApi(generics.ListAPIView):
    """The workspace's contacts, newest activity first."""

    serializer_class = ContactSerializer

    def get_queryset(self):
        return Contact.objects.filter(workspace=request_workspace(self.request)).order_by(
            "-last_seen", "id"
        )


class ContactDetailApi(generics.RetrieveAPIView):
    """One contact by its external id."""

    serializer_class = ContactSerializer

    def get_object(self):
        external_id = self.kwargs["external_id"]
        if "\x00" in external_id:  # no contact has one, and PostgreSQL refuses to compare it
            raise Http404("no such contact")
        return get_object_or_404(Contact, workspace=request_workspace(self.request), external_id=external_id)


class CampaignSerializer(serializers.ModelSerializer):
    class Meta:
        model = Campaign
        fields = ["key", "name", "channel", "starts_at", "ends_at"]


class CampaignListApi(generics.ListAPIView):
    """The workspace's campaigns."""

    serializer_class = CampaignSerializer

    def get_queryset(self):
        return Campaign.objects.filter(workspace=request_workspace(self.request)).order_by("key")


class WorkspaceApi(APIView):
    """The workspace of the key: slug, name, time zone and counts."""

    @extend_schema(
        responses=inline_serializer(
            "Workspace",
            {
                "slug": serializers.CharField(),
                "name": serializers.CharField(),
                "time_zone": serializers.CharField(),
                "contacts": serializers.IntegerField(),
                "events": serializers.IntegerField(),
            },
        )
    )
    def get(self, request):
        ws = request_workspace(request)
        return Response(
            {
                "slug": ws.slug,
                "name": ws.name,
                "time_zone": ws.time_zone,
                "contacts": Contact.objects.filter(workspace=ws).count(),
                "events": Event.objects.filter(workspace=ws).count(),
            }
        )
