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
    contact_explanation_request,
    model_version_activate,
    model_version_cancel,
    model_version_queue,
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


class TrainRequestSerializer(serializers.Serializer):
    target = serializers.ChoiceField(choices=Target.values)
    horizon = serializers.CharField(default="7d", help_text=DURATION_HELP)
    lookback = serializers.CharField(default="28d", help_text=DURATION_HELP)
    arch = serializers.ChoiceField(choices=Arch.values, default=Arch.AUTO)
    ensemble = serializers.BooleanField(default=False)
    cutoff = serializers.DateTimeField(required=False, help_text="train as of this moment (events before it)")
    auto_activate = serializers.BooleanField(required=False, help_text="activate it if it beats the active model")
    seed = serializers.IntegerField(default=0)
    options = serializers.DictField(required=False, help_text=f"training sizes: {', '.join(sorted(TUNABLE))}")


def _error(message: str, code: int) -> Response:
    return Response({"error": message}, status=code)


class ModelListApi(generics.GenericAPIView):
    """GET: the workspace's models, newest first. POST: queue a training (202, status `queued`)."""

    serializer_class = ModelVersionSerializer

    @extend_schema(
        parameters=[OpenApiParameter("target", str, enum=Target.values), OpenApiParameter("status", str)],
        responses=ModelVersionSerializer(many=True),
    )
    def get(self, request):
        qs = model_version_list(workspace=request_workspace(request), target=request.query_params.get("target"),
                                status=request.query_params.get("status"))
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
    """Make a succeeded model the active one of its target (its artifact is checked first)."""

    @extend_schema(request=None, responses={200: ModelVersionSerializer, 409: None})
    def post(self, request, model_id: int):
        try:
            version = model_version_activate(version=_version(request, model_id))
        except PredictionError as exc:
            return _error(str(exc), status.HTTP_409_CONFLICT)
        return Response(ModelVersionSerializer(version).data)


class ModelCancelApi(APIView):
    """Cancel a queued or running training."""

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
    """A contact's score with the active model and its top factors in words.

    Computed by a worker when not stored yet: the request waits for it (202 `pending` if it takes longer).
    """

    @extend_schema(
        parameters=[OpenApiParameter("target", str, enum=Target.values, description="default purchase")],
        responses={200: ScoreSerializer, 202: inline_serializer("Pending", {"status": serializers.CharField()}),
                   404: None},
    )
    def get(self, request, contact_id: str):
        workspace = request_workspace(request)
        version = _active(request, request.query_params.get("target", Target.PURCHASE))
        contact = Contact.objects.filter(workspace=workspace, external_id=contact_id).first()
        if contact is None:
            raise Http404(f"contact {contact_id!r} does not exist")
        try:
            score = contact_explanation_request(version=version, contact=contact)
        except PredictionError as exc:
            return _error(str(exc), status.HTTP_404_NOT_FOUND)
        if score is None:
            stored = contact_score_get(version=version, contact_id=contact.pk)
            body = {"status": "pending", "retry_after_seconds": 5,
                    "score": ScoreSerializer(stored).data if stored else None,
                    "requested_at": datetime.now(UTC).isoformat()}
            return Response(body, status=status.HTTP_202_ACCEPTED)
        return Response(ScoreSerializer(score).data)
