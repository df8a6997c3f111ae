"""HTTP API of segments (Bearer key, one workspace): CRUD, members, preview, refresh, history.

Input serializers are the parsers (the definition grammar is `definition.py`); a bad input is a
400 `{"error": "<field>: <reason>", "field": "<field path>", "errors": [{"field", "error"}]}`.
Reads need the viewer role, writes the editor role (preview only reads, so viewers may use it).
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from funnel_site.events.auth import request_workspace
from funnel_site.events.pagination import BoundedLimitOffsetPagination
from funnel_site.events.roles import VIEWER
from funnel_site.strict_fields import StrictCharField
from predictions.models import Segment
from predictions.segments.definition import (
    MAX_CONDITIONS,
    ConditionSerializer,
    count_conditions,
    definition_canonical,
    definition_parse,
    error_fields,
)
from predictions.segments.evaluate import definition_preview
from predictions.segments.selectors import (
    SegmentNotFound,
    member_rows,
    segment_get,
    segment_history,
    segment_list,
    segment_members,
)
from predictions.segments.services import (
    SegmentError,
    segment_create,
    segment_delete,
    segment_refresh,
    segment_update,
)

PREVIEW_SAMPLE_MAX = 20


class SegmentPagination(BoundedLimitOffsetPagination):
    """`?limit=&offset=`; at most 500 rows a page."""

    default_limit = 100
    max_limit = 500


class SegmentInputSerializer(serializers.Serializer):
    """A segment as written by a client."""

    name = StrictCharField(max_length=200, trim_whitespace=True)
    description = StrictCharField(required=False, allow_blank=True, default="")
    definition = ConditionSerializer(help_text="a condition tree; see the README section Segments")

    def validate_definition(self, value):
        if count_conditions(value) > MAX_CONDITIONS:
            raise serializers.ValidationError(f"more than {MAX_CONDITIONS} conditions")
        return value


class SegmentOutputSerializer(serializers.ModelSerializer):
    size = serializers.IntegerField(read_only=True)

    class Meta:
        model = Segment
        fields = ["id", "name", "description", "definition", "size", "is_builtin", "created_at", "updated_at",
                  "refreshed_at"]


class PreviewInputSerializer(serializers.Serializer):
    """A definition to evaluate without saving it."""

    definition = ConditionSerializer()
    sample = serializers.IntegerField(required=False, default=10, min_value=0, max_value=PREVIEW_SAMPLE_MAX)


SCORE = inline_serializer("SegmentMemberScore", {
    "probability": serializers.FloatField(), "percentile": serializers.FloatField(),
    "top_factor": inline_serializer("SegmentTopFactor", {"text": serializers.CharField(),
                                                          "value": serializers.FloatField()}, allow_null=True),
    "model_id": serializers.IntegerField(), "scored_at": serializers.DateTimeField(),
})


class MemberOutputSerializer(serializers.Serializer):
    contact_id = serializers.CharField()
    email = serializers.CharField()
    entered_at = serializers.DateTimeField()
    scores = serializers.DictField(child=SCORE, help_text="by target (purchase, churn), where scored")


class SizeOutputSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    size = serializers.IntegerField()
    entered = serializers.IntegerField()
    exited = serializers.IntegerField()


PREVIEW_RESULT = inline_serializer("SegmentPreview", {
    "size": serializers.IntegerField(),
    "sample": serializers.ListField(child=serializers.DictField()),
    "warnings": serializers.ListField(child=serializers.CharField()),
})
REFRESH_RESULT = inline_serializer("SegmentRefresh", {
    "segment_id": serializers.IntegerField(), "name": serializers.CharField(), "size": serializers.IntegerField(),
    "entered": serializers.IntegerField(), "exited": serializers.IntegerField(),
    "warnings": serializers.ListField(child=serializers.CharField()),
})
ERROR = inline_serializer("SegmentError", {
    "error": serializers.CharField(), "field": serializers.CharField(allow_null=True),
    "errors": serializers.ListField(child=serializers.DictField(), required=False),
})


def bad_request(errors: list[dict[str, str]]) -> Response:
    """400 naming the first field at fault (and listing all)."""
    first = errors[0] if errors else {"field": "body", "error": "invalid"}
    return Response({"error": f"{first['field']}: {first['error']}", "field": first["field"], "errors": errors},
                    status=status.HTTP_400_BAD_REQUEST)


def parse(serializer_class, request, **kwargs):
    """The validated data, or the 400 Response naming the fields."""
    parser = serializer_class(data=request.data, context={"workspace": request_workspace(request)}, **kwargs)
    if not parser.is_valid():
        return bad_request(error_fields(parser.errors))
    return parser.validated_data


def _segment(request, segment_id) -> Segment:
    try:
        return segment_get(workspace=request_workspace(request), segment_id=segment_id)
    except SegmentNotFound as exc:
        raise Http404(str(exc)) from None


class SegmentListApi(GenericAPIView):
    """GET: the workspace's segments with their sizes. POST: create one (its members are filled)."""

    pagination_class = SegmentPagination
    serializer_class = SegmentOutputSerializer

    @extend_schema(responses=SegmentOutputSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(segment_list(workspace=request_workspace(request)))
        return self.get_paginated_response(SegmentOutputSerializer(page, many=True).data)

    @extend_schema(request=SegmentInputSerializer, responses={201: SegmentOutputSerializer, 400: ERROR})
    def post(self, request):
        data = parse(SegmentInputSerializer, request)
        if isinstance(data, Response):
            return data
        try:
            segment = segment_create(workspace=request_workspace(request), name=data["name"],
                                     description=data["description"], definition=definition_canonical(data["definition"]))
        except SegmentError as exc:
            return bad_request([{"field": exc.field, "error": exc.reason}])
        return Response(SegmentOutputSerializer(_segment(request, segment.pk)).data, status=status.HTTP_201_CREATED)


class SegmentDetailApi(APIView):
    """One segment: read, replace (PUT), change (PATCH), delete."""

    @extend_schema(responses=SegmentOutputSerializer)
    def get(self, request, segment_id: int):
        return Response(SegmentOutputSerializer(_segment(request, segment_id)).data)

    @extend_schema(request=SegmentInputSerializer, responses={200: SegmentOutputSerializer, 400: ERROR})
    def put(self, request, segment_id: int):
        return self._write(request, segment_id, partial=False)

    @extend_schema(request=SegmentInputSerializer, responses={200: SegmentOutputSerializer, 400: ERROR})
    def patch(self, request, segment_id: int):
        return self._write(request, segment_id, partial=True)

    def _write(self, request, segment_id: int, *, partial: bool) -> Response:
        segment = _segment(request, segment_id)
        data = parse(SegmentInputSerializer, request, partial=partial)
        if isinstance(data, Response):
            return data
        if partial and "definition" in data:
            # DRF relaxes `required` in nested serializers of a partial update: parse the
            # definition again as a whole, so a PATCH cannot store half a condition
            try:
                data["definition"] = definition_parse(request.data.get("definition"),
                                                      workspace=request_workspace(request))
            except serializers.ValidationError as exc:
                return bad_request(error_fields(exc.detail, "definition"))
        try:
            segment_update(segment=segment, name=data.get("name"), description=data.get("description"),
                           definition=definition_canonical(data["definition"]) if "definition" in data else None)
        except SegmentError as exc:
            return bad_request([{"field": exc.field, "error": exc.reason}])
        return Response(SegmentOutputSerializer(_segment(request, segment_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, segment_id: int):
        segment_delete(segment=_segment(request, segment_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SegmentMembersApi(GenericAPIView):
    """Current members, newest entry first, with their scores by target (paginated)."""

    pagination_class = SegmentPagination
    serializer_class = MemberOutputSerializer

    @extend_schema(responses=MemberOutputSerializer(many=True))
    def get(self, request, segment_id: int):
        segment = _segment(request, segment_id)
        page = self.paginate_queryset(segment_members(segment=segment))
        return self.get_paginated_response(member_rows(segment=segment, memberships=page))


class SegmentPreviewApi(APIView):
    """The size (and a small sample) of a definition, without saving anything."""

    write_role = VIEWER  # it writes nothing

    @extend_schema(request=PreviewInputSerializer, responses={200: PREVIEW_RESULT, 400: ERROR})
    def post(self, request):
        data = parse(PreviewInputSerializer, request)
        if isinstance(data, Response):
            return data
        return Response(definition_preview(workspace=request_workspace(request), definition=definition_canonical(data["definition"]),
                                        sample=data["sample"]))


class SegmentRefreshApi(APIView):
    """Re-evaluate the segment now; answers what changed."""

    @extend_schema(request=None, responses=REFRESH_RESULT)
    def post(self, request, segment_id: int):
        return Response(segment_refresh(segment=_segment(request, segment_id)).to_dict())


class SegmentHistoryApi(APIView):
    """The segment's size after each refresh, oldest first (the newest 500)."""

    @extend_schema(responses=inline_serializer("SegmentHistory", {"results": SizeOutputSerializer(many=True)}))
    def get(self, request, segment_id: int):
        sizes = segment_history(segment=_segment(request, segment_id))
        return Response({"results": SizeOutputSerializer(sizes, many=True).data})


