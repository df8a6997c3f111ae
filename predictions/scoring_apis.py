"""HTTP API of scores: scoring runs, a contact's stored predictions, and inline scoring of a sequence.

Nothing here waits on a worker: runs are queued (202), predictions are served from stored rows (an
explanation not computed yet is queued once and the answer says `"explained": false`), and
`POST /predict` runs the numpy forward pass in this process (no TensorFlow: predictions/serving.py).
"""

from __future__ import annotations

from datetime import UTC, timedelta

from django.conf import settings
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from funnel_site.events.auth import request_workspace
from funnel_site.events.models import Contact
from funnel_site.events.roles import ADMIN, VIEWER
from funnel_site.events.validation import ItemError, validate_item
from predictions.ml.errors import ArtifactError
from predictions.models import ModelVersion, ScoringRun, Target
from predictions.selectors import (
    NotFound,
    active_model_version_required,
    contact_current_scores,
    no_active_model_message,
    prediction_json,
    scoring_run_get,
    scoring_run_list,
)
from predictions.services import (
    PredictionError,
    ScoringInProgress,
    score_explanation_request,
    scoring_run_queue,
)

MAX_PREDICT_EVENTS = 1000


class ScoringRunSerializer(serializers.ModelSerializer):
    run_id = serializers.IntegerField(source="pk", read_only=True)
    model_id = serializers.IntegerField(source="model_version_id", read_only=True)
    duration_seconds = serializers.FloatField(read_only=True)

    class Meta:
        model = ScoringRun
        fields = ["run_id", "model_id", "target", "trigger", "status", "as_of", "shards", "counts", "timings",
                  "error", "created_at", "started_at", "finished_at", "duration_seconds"]


class ScoringRunRequestSerializer(serializers.Serializer):
    target = serializers.ChoiceField(choices=Target.choices, default=Target.PURCHASE)
    model_id = serializers.IntegerField(required=False, help_text="score with this model instead of the active one")


def _error(message: str, code: int) -> Response:
    return Response({"error": message}, status=code)


class ScoringRunListApi(generics.GenericAPIView):
    """GET: the workspace's scoring runs, newest first. POST (admin): queue a run of the active model."""

    serializer_class = ScoringRunSerializer
    write_role = ADMIN

    @extend_schema(responses=ScoringRunSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(scoring_run_list(workspace=request_workspace(request)))
        return self.get_paginated_response(ScoringRunSerializer(page, many=True).data)

    @extend_schema(request=ScoringRunRequestSerializer, responses={202: ScoringRunSerializer, 404: None, 409: None})
    def post(self, request):
        body = ScoringRunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        workspace = request_workspace(request)
        model_id = body.validated_data.get("model_id")
        if model_id is not None:
            version = ModelVersion.objects.filter(workspace=workspace, pk=model_id).first()
            if version is None:
                raise Http404(f"model {model_id} does not exist in workspace {workspace.slug!r}")
        else:
            try:
                version = active_model_version_required(workspace=workspace, target=body.validated_data["target"])
            except NotFound as exc:
                return _error(str(exc), status.HTTP_409_CONFLICT)
        try:
            run = scoring_run_queue(version=version, trigger="api")
        except ScoringInProgress as exc:
            return Response({"error": str(exc), "run": ScoringRunSerializer(exc.run).data if exc.run else None},
                            status=status.HTTP_409_CONFLICT)
        except PredictionError as exc:
            return _error(str(exc), status.HTTP_409_CONFLICT)
        return Response(ScoringRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class ScoringRunDetailApi(APIView):
    """One scoring run: status, counts (candidates, eligible, scored), timings, error."""

    @extend_schema(responses=ScoringRunSerializer)
    def get(self, request, run_id: int):
        try:
            run = scoring_run_get(workspace=request_workspace(request), run_id=run_id)
        except NotFound as exc:
            raise Http404(str(exc)) from None
        return Response(ScoringRunSerializer(run).data)


PredictionSchema = inline_serializer("ContactPrediction", {
    "target": serializers.CharField(), "probability": serializers.FloatField(),
    "percentile": serializers.FloatField(allow_null=True), "model_id": serializers.IntegerField(),
    "scored_at": serializers.DateTimeField(), "as_of": serializers.DateTimeField(),
    "base_value": serializers.FloatField(allow_null=True), "explained": serializers.BooleanField(),
    "factors": serializers.ListField(child=serializers.DictField()),
}, many=True)


def contact_get(request, contact_id: str) -> Contact:
    """The contact with this external id in the request's workspace, else 404."""
    workspace = request_workspace(request)
    contact = Contact.objects.filter(workspace=workspace, external_id=contact_id).first()
    if contact is None:
        # the id is not echoed: a 404 must not tell another tenant's key which ids it tried
        raise Http404(f"no such contact in workspace {workspace.slug!r}")
    return contact


class ContactPredictionsApi(APIView):
    """A contact's newest score per target with its stored explanation (never computed in the request)."""

    @extend_schema(responses={200: PredictionSchema, 404: None})
    def get(self, request, contact_id: str):
        scores = contact_current_scores(contact=contact_get(request, contact_id))
        for score in scores:
            score_explanation_request(score=score)  # once per score; a worker stores the factors
        return Response([prediction_json(score) for score in scores])


class PredictRequestSerializer(serializers.Serializer):
    target = serializers.ChoiceField(choices=Target.choices, default=Target.PURCHASE)
    events = serializers.ListField(
        child=serializers.DictField(), min_length=1, max_length=MAX_PREDICT_EVENTS,
        help_text='[{"event", "timestamp", "campaign"?, "channel"?, "value"?}] of one contact',
    )
    as_of = serializers.DateTimeField(required=False, help_text="score as of this moment (default: newest event + 1 s)")


class PredictApi(APIView):
    """Score an event sequence sent in the request, synchronously, with the active model of a target.

    Event names the model never saw go to its out-of-vocabulary bucket; `unknown_events` lists them.
    """

    write_role = VIEWER  # it reads only: scores nothing stored

    @extend_schema(request=PredictRequestSerializer, responses={200: None, 400: None, 409: None, 503: None})
    def post(self, request):
        from predictions.inline import served_inline
        from predictions.serving import light_scorer_load, sequence_frame

        data = _predict_body(request.data)
        workspace = request_workspace(request)
        # one query: the active model, its newest run and the stage map; the loaded model, the run's
        # quantiles and the stage resolver are kept per process under that key (predictions/inline.py)
        served, resolver = served_inline(workspace_id=workspace.pk, target=data["target"])
        if served is None:
            return _error(no_active_model_message(workspace=workspace, target=data["target"]),
                          status.HTTP_409_CONFLICT)
        now = timezone.now()
        max_future = timedelta(seconds=settings.INGEST_MAX_FUTURE_SECONDS)
        valid, errors = [], []
        for i, item in enumerate(data["events"]):
            try:  # a message id only names a stored event: none here, so none is derived (a hash each)
                valid.append(validate_item({"message_id": "inline", **item, "contact_id": "inline"}, now=now,
                                           max_future=max_future))
            except ItemError as exc:
                errors.append({"field": f"events[{i}].{exc.field}", "error": str(exc)})
        if errors:
            return Response({"error": f"{len(errors)} event(s) are invalid", "errors": errors},
                            status=status.HTTP_400_BAD_REQUEST)
        as_of = data.get("as_of")
        if as_of is not None and as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=UTC)
        try:
            light = light_scorer_load(served.artifact_path)
        except ArtifactError as exc:
            return _error(f"model {served.version_id} cannot serve inline scores: {exc}",
                          status.HTTP_503_SERVICE_UNAVAILABLE)
        frame, cutoff = sequence_frame(workspace_id=workspace.pk, events=valid, as_of=as_of, resolver=resolver)
        if len(frame) == 0:
            return _error("events: none is the contact's own activity before as_of (outbound events are not used)",
                          status.HTTP_400_BAD_REQUEST)
        probabilities, raw, _ = light.score_frame(frame, [0], cutoff)
        known = light.preprocessor._name_index
        unknown = sorted({str(n) for n in frame.name if str(n) not in known})
        percentile = served.percentiles(raw)[0]
        probability = float(probabilities[0])
        answer = {
            "target": served.target, "model_id": served.version_id, "probability": probability,
            "raw_score": float(raw[0]), "percentile": None if percentile != percentile else float(percentile),
            "threshold": light.threshold, "above_threshold": probability >= light.threshold,
            "as_of": frame_time(cutoff), "events_used": int(len(frame)), "unknown_events": unknown,
        }
        if unknown:
            answer["note"] = (f"{len(unknown)} event name(s) the model never saw in training were scored as "
                              f"out-of-vocabulary: {', '.join(unknown[:10])}")
        return Response(answer)


_TARGETS = frozenset(Target.values)


def _predict_body(data) -> dict:
    """The validated body of `POST /predict`. The usual body (a JSON object with a known target, or
    none, and 1 to MAX_PREDICT_EVENTS event objects) is checked here in a few microseconds; anything
    else goes through PredictRequestSerializer, so every error is the serializer's, word for word
    (its checks of 50 event objects were a tenth of the request's CPU). Each event's fields are
    validated afterwards by `validate_item`, as before."""
    if type(data) is dict and "as_of" not in data:
        target, events = data.get("target", Target.PURCHASE), data.get("events")
        if (type(target) is str and target in _TARGETS and type(events) is list
                and 1 <= len(events) <= MAX_PREDICT_EVENTS and all(type(e) is dict for e in events)):
            return {"target": target, "events": events}
    body = PredictRequestSerializer(data=data)
    body.is_valid(raise_exception=True)
    return body.validated_data


def frame_time(seconds: int) -> str:
    """Unix seconds as ISO 8601 UTC."""
    from predictions.frames import unix_to_datetime

    return unix_to_datetime(seconds).isoformat()
