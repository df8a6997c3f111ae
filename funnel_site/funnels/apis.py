"""HTTP API of funnels: ad-hoc queries, saved funnels, the contacts of a step, the marketing report.

Every view reads and writes only the workspace of the API key. Invalid input is a 400
`{"error": "<field>: <reason>", "field": "<field>"}`; a query past the time limit is a 503.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from funnel_site.events.auth import request_workspace
from funnel_site.events.columns import ReadModelUnavailable
from funnel_site.funnels.engine import FunnelDefinitionError, FunnelTimeoutError
from funnel_site.funnels.marketing import marketing_funnel_report
from funnel_site.funnels.models import SavedFunnel
from funnel_site.funnels.selectors import (
    CONTACT_STATUSES,
    FunnelRun,
    funnel_contacts_page,
    funnel_query,
    saved_funnel_get,
    saved_funnel_list,
)
from funnel_site.funnels.serializers import (
    FunnelQuerySerializer,
    MomentField,
    SavedFunnelWriteSerializer,
    funnel_query_check,
)
from funnel_site.funnels.services import saved_funnel_create, saved_funnel_delete, saved_funnel_update
from funnel_site.funnels.spec import FunnelSpec, funnel_spec_parse, parse_moment

MAX_PAGE = 1000


FUNNEL_RESULT = inline_serializer(
    "FunnelResult",
    {
        "steps": serializers.ListField(child=serializers.DictField()),
        "time_to_convert_histogram": serializers.DictField(),
        "trend": serializers.DictField(),
        "breakdown": serializers.ListField(child=serializers.DictField(), allow_null=True),
        "warnings": serializers.ListField(child=serializers.CharField()),
        "definition": serializers.DictField(),
        "cached": serializers.BooleanField(),
    },
)
ERROR = inline_serializer("FunnelError", {"error": serializers.CharField(),
                                         "field": serializers.CharField(allow_null=True)})
PAGE_PARAMETERS = [
    OpenApiParameter("step", {"type": "integer", "minimum": 1, "maximum": 20}, description="1-based step",
                     required=True),
    OpenApiParameter("status", str, enum=list(CONTACT_STATUSES), description="converted (reached the step) or dropped"),
    OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 100}),
    OpenApiParameter("offset", {"type": "integer", "minimum": 0, "maximum": 2**62, "default": 0}),
]


def bad_request(exc: FunnelDefinitionError) -> Response:
    """400 naming the field."""
    return Response({"error": str(exc), "field": exc.field}, status=400)


def timed_out(exc: FunnelTimeoutError | ReadModelUnavailable) -> Response:
    """503: the query was stopped at the time limit, or the events cannot be brought up to date."""
    return Response({"error": str(exc), "field": None}, status=503)


def run_or_error(request, spec: FunnelSpec) -> FunnelRun | Response:
    """Run the query of `spec` for the request's workspace, or the error Response."""
    refresh = request.query_params.get("refresh") in ("1", "true")
    try:
        return funnel_query(workspace=request_workspace(request), spec=spec, use_cache=not refresh)
    except (FunnelTimeoutError, ReadModelUnavailable) as exc:
        return timed_out(exc)


def _int_param(request, name: str, default: int | None, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        if default is None:
            raise FunnelDefinitionError(field=name, reason="required")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise FunnelDefinitionError(field=name, reason=f"expected a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise FunnelDefinitionError(field=name, reason=f"must be {low} to {high}, got {value}")
    return value


def contacts_response(request, spec: FunnelSpec) -> Response:
    """The page of contacts asked for by `step`, `status`, `limit`, `offset`."""
    try:
        step = _int_param(request, "step", None, 1, spec.definition.step_count)
        status = request.query_params.get("status") or "converted"
        if status not in CONTACT_STATUSES:
            raise FunnelDefinitionError(field="status", reason=f"use converted or dropped, got {status!r}")
        limit = _int_param(request, "limit", 100, 1, MAX_PAGE)
        offset = _int_param(request, "offset", 0, 0, 2**62)
    except FunnelDefinitionError as exc:
        return bad_request(exc)
    run = run_or_error(request, spec)
    if isinstance(run, Response):
        return run
    return Response(funnel_contacts_page(run=run, step=step, status=status, limit=limit, offset=offset))


class FunnelQueryApi(APIView):
    """POST a funnel query, get its result (cached until a new event arrives; `?refresh=1` recomputes)."""

    write_role = "viewer"  # a POST that only reads

    @extend_schema(request=FunnelQuerySerializer, responses={200: FUNNEL_RESULT, 400: ERROR, 503: ERROR})
    def post(self, request):
        try:
            spec = funnel_spec_parse(funnel_query_check(request.data))
        except FunnelDefinitionError as exc:
            return bad_request(exc)
        run = run_or_error(request, spec)
        return run if isinstance(run, Response) else Response(run.payload)


class FunnelQueryContactsApi(APIView):
    """POST a funnel query, get a page of the contacts that converted at / dropped off before a step."""

    write_role = "viewer"  # a POST that only reads

    @extend_schema(request=FunnelQuerySerializer, parameters=PAGE_PARAMETERS,
                   responses={200: dict, 400: ERROR, 503: ERROR})
    def post(self, request):
        try:
            spec = funnel_spec_parse(funnel_query_check(request.data))
        except FunnelDefinitionError as exc:
            return bad_request(exc)
        return contacts_response(request, spec)


class SavedFunnelSerializer(serializers.ModelSerializer):
    class Meta:
        model = SavedFunnel
        fields = ["id", "name", "description", "definition", "created_at", "updated_at"]


SAVE_REQUEST = SavedFunnelWriteSerializer


def _body(request, *, partial: bool = False) -> dict[str, Any]:
    """The body, its structure checked by SavedFunnelWriteSerializer (400 naming the field)."""
    if not isinstance(request.data, dict):
        raise FunnelDefinitionError(field="body", reason="send a JSON object {name, description, definition}")
    SavedFunnelWriteSerializer(data=request.data, partial=partial).is_valid(raise_exception=True)
    return request.data


class SavedFunnelListApi(GenericAPIView):
    """GET the workspace's saved funnels (paginated); POST `{name, description, definition}` to save one."""

    serializer_class = SavedFunnelSerializer

    @extend_schema(responses=SavedFunnelSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(saved_funnel_list(workspace=request_workspace(request)))
        return self.get_paginated_response(SavedFunnelSerializer(page, many=True).data)

    @extend_schema(request=SAVE_REQUEST, responses={201: SavedFunnelSerializer, 400: ERROR})
    def post(self, request):
        try:
            body = _body(request)
            funnel = saved_funnel_create(
                workspace=request_workspace(request), name=body.get("name"),
                definition=body.get("definition"), description=body.get("description", ""),
            )
        except FunnelDefinitionError as exc:
            return bad_request(exc)
        return Response(SavedFunnelSerializer(funnel).data, status=201)


class SavedFunnelDetailApi(APIView):
    """GET, PUT/PATCH (any of name, description, definition) or DELETE one saved funnel."""

    @extend_schema(responses={200: SavedFunnelSerializer, 404: None})
    def get(self, request, pk: int):
        return Response(SavedFunnelSerializer(saved_funnel_get(workspace=request_workspace(request), funnel_id=pk)).data)

    @extend_schema(request=SAVE_REQUEST, responses={200: SavedFunnelSerializer, 400: ERROR, 404: ERROR})
    def put(self, request, pk: int):
        funnel = saved_funnel_get(workspace=request_workspace(request), funnel_id=pk)
        try:
            body = _body(request, partial=request.method == "PATCH")
            funnel = saved_funnel_update(
                funnel=funnel, name=body.get("name"), definition=body.get("definition"),
                description=body.get("description"),
            )
        except FunnelDefinitionError as exc:
            return bad_request(exc)
        return Response(SavedFunnelSerializer(funnel).data)

    patch = put

    @extend_schema(responses={204: None, 404: None})
    def delete(self, request, pk: int):
        saved_funnel_delete(funnel=saved_funnel_get(workspace=request_workspace(request), funnel_id=pk))
        return Response(status=204)


def _saved_spec(request, pk: int) -> FunnelSpec:
    funnel = saved_funnel_get(workspace=request_workspace(request), funnel_id=pk)
    return funnel_spec_parse(funnel.definition)


class SavedFunnelResultsApi(APIView):
    """GET the result of a saved funnel (cached until a new event arrives; `?refresh=1` recomputes)."""

    @extend_schema(responses={200: FUNNEL_RESULT, 404: None, 503: ERROR})
    def get(self, request, pk: int):
        run = run_or_error(request, _saved_spec(request, pk))
        return run if isinstance(run, Response) else Response(run.payload)


class SavedFunnelContactsApi(APIView):
    """GET a page of the contacts that converted at / dropped off before a step of a saved funnel."""

    @extend_schema(parameters=PAGE_PARAMETERS, responses={200: dict, 400: ERROR, 404: None})
    def get(self, request, pk: int):
        return contacts_response(request, _saved_spec(request, pk))


class MarketingFunnelApi(APIView):
    """GET the five-stage marketing funnel of a period, overall, per campaign and per channel."""

    class Query(serializers.Serializer):
        since = MomentField(required=False, help_text="default: 30 days before `until`")
        until = MomentField(required=False, help_text="exclusive (default: just after the newest event)")

    @extend_schema(parameters=[Query], responses={200: dict, 400: ERROR})
    def get(self, request):
        self.Query(data=request.query_params).is_valid(raise_exception=True)
        try:
            since = parse_moment(request.query_params.get("since"), "since")
            until = parse_moment(request.query_params.get("until"), "until")
            if since and until and since >= until:
                raise FunnelDefinitionError(field="until", reason="`until` must be after `since`")
        except FunnelDefinitionError as exc:
            return bad_request(exc)
        return Response(marketing_funnel_report(workspace=request_workspace(request), since=since, until=until))
