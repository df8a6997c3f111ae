"""HTTP API of predictions: train and manage models, read scores and explanations (Bearer key, one workspace).

No TensorFlow here: training, scoring and explanations run on workers; the views queue or wait.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from funnel_site.events.auth import request_workspace
from funnel_site.events.models import Contact
from funnel_site.strict_fields import StrictBooleanField, StrictIntegerField, StrictRegexField
from predictions.models import Arch, ContactScore, ModelVersion, Target
from predictions.selectors import (
    NotFound,
    active_model_version_required,
    contact_score_get,
    contact_scores,
    model_version_get,
    model_version_list,
)
from predictions.services import (
    TUNABLE,
    PredictionError,
    TrainingInProgress,
    model_version_activate,
    model_version_cancel,
    model_version_queue,
    score_explanation_request,
)

DURATION_HELP = "a duration: 90s, 30m, 1h, 14d, 2w"


def _duration(value: str, field: str) -> int:
    from funnel_site.cli import _DURATION, _UNIT_SECONDS

    match = _DURATION.match(str(value))
    if not match:
        raise serializers.ValidationError({field: f"{value!r} is not a duration: write it like 90s, 30m, 1h, 14d or 2w"})
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class ModelVersionSerializer(serializers.ModelSerializer):
    model_id = serializers.IntegerField(source="pk", read_only=True)
    horizon_seconds = serializers.IntegerField(read_only=True)
    lookback_seconds = serializers.IntegerField(read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "model_id", "target", "arch", "trained_arch", "ensemble", "status", "progress", "heartbeat_at",
            "horizon_seconds", "lookback_seconds", "metrics", "baselines", "candidates", "counts", "threshold",
            "calibration", "validation_cutoff", "data_end", "failure_reason", "is_active", "activated_at",
            "created_at", "started_at", "finished_at", "config", "curves", "scoreboard", "importance",
        ]


DURATION_PATTERN = r"^[1-9][0-9]{0,6}(s|m|h|d|w)$"
DURATION_INVALID = "must be a duration longer than zero, like 90s, 30m, 1h, 14d or 2w"


class TrainRequestSerializer(serializers.Serializer):
    target = serializers.ChoiceField(choices=Target.choices)
    horizon = StrictRegexField(DURATION_PATTERN, default="7d", help_text=DURATION_HELP,
                                     error_messages={"invalid": DURATION_INVALID})
    lookback = StrictRegexField(DURATION_PATTERN, default="28d", help_text=DURATION_HELP,
                                      error_messages={"invalid": DURATION_INVALID})
    arch = serializers.ChoiceField(choices=Arch.choices, default=Arch.AUTO)
    ensemble = StrictBooleanField(default=False)
    cutoff = serializers.DateTimeField(required=False, help_text="train as of this moment (events before it)")
    auto_activate = StrictBooleanField(required=False, help_text="activate it if it beats the active model")
    seed = StrictIntegerField(default=0, min_value=0, max_value=2**32 - 1)
    options = serializers.DictField(required=False, help_text=f"training sizes: {', '.join(sorted(TUNABLE))}")


def _error(message: str, code: int) -> Response:
    return Response({"error": message}, status=code)


class ModelListApi(generics.GenericAPIView):
    """GET: the workspace's models, newest first. POST: queue a training (202, status `queued`)."""

    serializer_class = ModelVersionSerializer
    write_role = "admin"  # training is an admin action (funnel_site/events/roles.py)

    class Query(serializers.Serializer):
        target = serializers.ChoiceField(choices=Target.choices, required=False, allow_blank=True)
        status = serializers.ChoiceField(choices=ModelVersion.Status.choices, required=False, allow_blank=True)

    @extend_schema(parameters=[Query], responses=ModelVersionSerializer(many=True))
    def get(self, request):
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        qs = model_version_list(workspace=request_workspace(request), target=query.validated_data.get("target"),
                                status=query.validated_data.get("status"))
        page = self.paginate_queryset(qs.defer("curves"))
        return self.get_paginated_response(ModelVersionSerializer(page, many=True).data)

    @extend_schema(request=TrainRequestSerializer, responses={202: ModelVersionSerializer, 400: None, 409: None})
    def post(self, request):
        body = TrainRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        horizon, lookback = _duration(data["horizon"], "horizon"), _duration(data["lookback"], "lookback")
        cutoff = data.get("cutoff")
        if cutoff is not None and cutoff.tzinfo is None:
            cutoff = cutoff.replace(tzinfo=UTC)
        try:
            version = model_version_queue(
                workspace=request_workspace(request), target=data["target"], horizon_seconds=horizon,
                lookback_seconds=lookback, arch=data["arch"], ensemble=data["ensemble"], cutoff=cutoff,
                seed=data["seed"], auto_activate=data.get("auto_activate"), overrides=data.get("options"),
            )
        except TrainingInProgress as exc:
            return _error(str(exc), status.HTTP_409_CONFLICT)
        except PredictionError as exc:
            return _error(str(exc), status.HTTP_400_BAD_REQUEST)
        return Response(ModelVersionSerializer(version).data, status=status.HTTP_202_ACCEPTED)


def _version(request, model_id) -> ModelVersion:
    try:
        return model_version_get(workspace=request_workspace(request), model_id=model_id)
    except NotFound as exc:
        raise Http404(str(exc)) from None


class ModelDetailApi(APIView):
    """One model: status and progress while training; metrics, baselines and curves once trained."""

    @extend_schema(responses=ModelVersionSerializer)
    def get(self, request, model_id: int):
        return Response(ModelVersionSerializer(_version(request, model_id)).data)


class ModelActivateApi(APIView):
    """Make a succeeded model the active one of its target (its artifact is checked first; admins)."""

    write_role = "admin"

    @extend_schema(request=None, responses={200: ModelVersionSerializer, 404: None, 409: None})
    def post(self, request, model_id: int):
        try:
            version = model_version_activate(version=_version(request, model_id))
        except PredictionError as exc:
            return _error(str(exc), status.HTTP_409_CONFLICT)
        return Response(ModelVersionSerializer(version).data)


class ModelCancelApi(APIView):
    """Cancel a queued or running training (admins)."""

    write_role = "admin"

    @extend_schema(request=None, responses={200: ModelVersionSerializer, 409: None})
    def post(self, request, model_id: int):
        try:
            version = model_version_cancel(version=_version(request, model_id))
        except PredictionError as exc:
            return _error(str(exc), status.HTTP_409_CONFLICT)
        return Response(ModelVersionSerializer(version).data)


class ScoreSerializer(serializers.ModelSerializer):
    contact_id = serializers.CharField(source="contact.external_id")
    model_id = serializers.IntegerField(source="model_version_id")

    class Meta:
        model = ContactScore
        fields = ["contact_id", "target", "probability", "model_id", "as_of", "scored_at", "factors"]


def _active(request, target: str) -> ModelVersion:
    try:
        return active_model_version_required(workspace=request_workspace(request), target=target)
    except NotFound as exc:
        raise Http404(str(exc)) from None


class PredictionListApi(generics.GenericAPIView):
    """Stored scores of the active model of a target, most likely first (refreshed by scoring runs)."""

    serializer_class = ScoreSerializer

    @extend_schema(
        parameters=[OpenApiParameter("target", str, enum=Target.values, description="default purchase"),
                    OpenApiParameter("min_probability", float)],
        responses=ScoreSerializer(many=True),
    )
    def get(self, request):
        version = _active(request, request.query_params.get("target", Target.PURCHASE))
        qs = contact_scores(version=version)
        if (floor := request.query_params.get("min_probability")) is not None:
            try:
                qs = qs.filter(probability__gte=float(floor))
            except ValueError:
                return _error(f"min_probability {floor!r} is not a number", 400)
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(ScoreSerializer(page, many=True).data)


class PredictionDetailApi(APIView):
    """A contact's stored score with the active model of a target and its factors in words.

    Never waits on a worker: 200 with the stored score (explained or not: `explained`), or 202 with a
    status URL when the contact has no score yet (its rescoring is queued; poll that URL).
    """

    @extend_schema(
        parameters=[OpenApiParameter("target", str, enum=Target.values, description="default purchase")],
        responses={200: ScoreSerializer, 202: inline_serializer("Pending", {"status": serializers.CharField()}),
                   404: None},
    )
    def get(self, request, contact_id: str):
        from predictions.realtime import rescore_request

        workspace = request_workspace(request)
        version = _active(request, request.query_params.get("target", Target.PURCHASE))
        contact = Contact.objects.filter(workspace=workspace, external_id=contact_id).first()
        if contact is None:
            raise Http404(f"no such contact in workspace {workspace.slug!r}")
        score = contact_score_get(version=version, contact_id=contact.pk)
        status_url = request.build_absolute_uri(f"/api/v1/contacts/{contact.external_id}/predictions")
        if score is None:
            rescore_request(workspace_id=workspace.pk, contact_ids=[contact.pk])
            body = {"status": "pending", "status_url": status_url, "retry_after_seconds": 5,
                    "requested_at": datetime.now(UTC).isoformat()}
            return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": status_url})
        score_explanation_request(score=score)
        data = ScoreSerializer(score).data
        data.update({"explained": score.explained_at is not None, "status_url": status_url,
                     "percentile": score.percentile, "base_value": score.base_value})
        return Response(data)
