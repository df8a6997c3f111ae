"""HTTP API of the events domain: bulk ingestion, contacts, campaigns, events, the workspace itself.

Every view reads and writes only the workspace of the API key that authenticated the request.
"""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
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
    """DRF errors as `{"error": "...", "detail": ...}` so every client reads one shape."""
    response = drf_exception_handler(exc, context)
    if response is not None:
        detail = response.data
        if isinstance(detail, dict) and set(detail) == {"detail"}:
            message = str(detail["detail"])
        else:
            message = "invalid request"
        response.data = {"error": message, "detail": detail}
    return response


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


def parse_batch(request) -> list | Response:
    """The list of raw items of an ingestion body, or an error Response (400/413)."""
    try:
        payload = read_json_body(request._request)
    except BodyError as exc:
        return Response({"error": exc.message}, status=exc.status)
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


class EventItemSerializer(serializers.Serializer):
    """One event of the canonical format (documentation only: items are validated one by one)."""

    contact_id = serializers.CharField()
    event = serializers.CharField()
    timestamp = serializers.CharField(help_text="ISO-8601, or unix seconds / milliseconds")
    campaign = serializers.CharField(required=False)
    channel = serializers.CharField(required=False)
    value = serializers.FloatField(required=False)
    message_id = serializers.CharField(required=False, help_text="idempotency key")
    properties = serializers.DictField(required=False)


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
        request=EventItemSerializer(many=True),
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

    @extend_schema(
        parameters=[
            OpenApiParameter("contact_id", str, description="only this contact's events"),
            OpenApiParameter("name", str, description="only events with this name"),
        ],
        responses=EventSerializer(many=True),
    )
    def get(self, request):
        workspace = request_workspace(request)
        qs = (
            Event.objects.filter(workspace=workspace)
            .select_related("contact", "campaign")
            .order_by("-timestamp", "-id")
        )
        if contact_id := request.query_params.get("contact_id"):
            qs = qs.filter(contact__external_id=contact_id)
        if name := request.query_params.get("name"):
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
        return get_object_or_404(
            Contact, workspace=request_workspace(self.request), external_id=self.kwargs["external_id"]
        )


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
