"""The Segment HTTP Tracking API (/v1/batch, track, identify, page, screen), so Segment and RudderStack
SDKs send to us unchanged: HTTP Basic with the API key as user name, Segment's field names."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from funnel_site.events.apis import INGEST_RESULT, ingest_response, parse_batch
from funnel_site.events.auth import HasWorkspace, SegmentBasicAuthentication, WorkspaceRole, request_workspace
from funnel_site.events.body import BodyError, read_json_body
from funnel_site.events.loaders.segment import segment_message_to_item
from funnel_site.events.services import events_ingest

SEGMENT_TYPES = ("track", "identify", "page", "screen")


def _to_items(messages: list, *, forced_type: str | None) -> list[tuple[int, object]]:
    received = timezone.now().isoformat()
    items: list[tuple[int, object]] = []
    for index, msg in enumerate(messages):
        if not isinstance(msg, dict):
            items.append((index, msg))  # rejected by validation with the type named
            continue
        if forced_type:
            msg = {**msg, "type": forced_type}
        try:
            item = segment_message_to_item(msg)
            if item.get("timestamp") is None:  # Segment: no timestamp means "when received"
                item["timestamp"] = received
            items.append((index, item))
        except ValueError as exc:
            # the reason alone: the error body names the field beside it ("userId: userId: ..." otherwise)
            items.append((index, {"_invalid": (getattr(exc, "field", "message"), getattr(exc, "reason", str(exc)))}))
    return items


def _segment_response(result):
    response = ingest_response(result)
    if response.status_code == 200:
        response.data = {"success": True, **response.data}
    return response


class SegmentBaseApi(APIView):
    authentication_classes = [SegmentBasicAuthentication]
    permission_classes = [HasWorkspace, WorkspaceRole]  # sending events needs an editor key
    segment_type: str | None = None

    @extend_schema(
        request={"application/json": {"type": "object", "description": "a Segment message, or "
                                       "{\"batch\": [messages]} for /v1/batch"}},
        responses={200: INGEST_RESULT, 400: INGEST_RESULT},
    )
    def post(self, request):
        if self.segment_type is None:
            # /v1/batch: {"batch": [...]} as Segment SDKs send it, or a bare list
            items = parse_batch(request, unwrap_batch=True)
            if isinstance(items, Response):
                return items
            messages = _to_items(items, forced_type=None)
        else:
            try:
                payload = read_json_body(request._request)
            except BodyError as exc:
                return Response({"error": exc.message}, status=exc.status)
            if not isinstance(payload, dict):
                return Response({"error": "body must be a JSON object (one Segment message)"}, status=400)
            messages = _to_items([payload], forced_type=self.segment_type)
        result = events_ingest(workspace=request_workspace(request), items=messages)
        return _segment_response(result)


class SegmentBatchApi(SegmentBaseApi):
    """POST /v1/batch: {"batch": [messages]}."""


class SegmentTrackApi(SegmentBaseApi):
    segment_type = "track"


class SegmentIdentifyApi(SegmentBaseApi):
    segment_type = "identify"


class SegmentPageApi(SegmentBaseApi):
    segment_type = "page"


class SegmentScreenApi(SegmentBaseApi):
    segment_type = "screen"
