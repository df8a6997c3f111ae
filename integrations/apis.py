"""HTTP API of integrations (Bearer key, one workspace): destinations, syncs, runs, webhook sources,
webhook deliveries. Input serializers are the parsers; writes need the admin role."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from funnel_site.events.auth import request_workspace
from integrations.destinations import ADAPTERS
from integrations.models import (
    Destination,
    Sync,
    SyncMode,
    SyncRun,
    WebhookDelivery,
    WebhookSource,
    WebhookSourceKind,
)
from integrations.selectors import run_records
from integrations.services import (
    IntegrationError,
    destination_create,
    destination_test,
    sync_create,
    sync_run_request,
    sync_update,
    webhook_delivery_replay,
    webhook_source_create,
    webhook_source_deactivate,
)


def _invalid(exc: IntegrationError) -> Response:
    return Response({"error": str(exc), "detail": {exc.field or "request": [str(exc)]}}, status=400)


class DestinationSerializer(serializers.ModelSerializer):
    """A destination as the API shows it: never its credentials."""

    class Meta:
        model = Destination
        fields = ["id", "kind", "name", "settings", "created_at", "last_tested_at", "last_test_ok", "last_test_message"]


class DestinationInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=list(ADAPTERS))
    name = serializers.CharField(max_length=200)
    settings = serializers.DictField(required=False, default=dict, help_text="api_base, list_id, rate_limit, ...")
    credentials = serializers.DictField(required=False, default=dict, write_only=True)


class DestinationListApi(generics.ListAPIView):
    write_role = "admin"
    serializer_class = DestinationSerializer

    def get_queryset(self):
        return Destination.objects.filter(workspace=request_workspace(self.request)).order_by("id")

    @extend_schema(request=DestinationInput, responses={201: DestinationSerializer})
    def post(self, request):
        data = DestinationInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            destination = destination_create(workspace=request_workspace(request), **data.validated_data)
        except IntegrationError as exc:
            return _invalid(exc)
        return Response(DestinationSerializer(destination).data, status=status.HTTP_201_CREATED)


class DestinationDetailApi(generics.RetrieveDestroyAPIView):
    write_role = "admin"
    serializer_class = DestinationSerializer

    def get_queryset(self):
        return Destination.objects.filter(workspace=request_workspace(self.request))


class DestinationTestApi(APIView):
    write_role = "admin"

    @extend_schema(request=None, responses={200: inline_serializer("DestinationTest", {
        "ok": serializers.BooleanField(), "message": serializers.CharField()})})
    def post(self, request, pk: int):
        destination = get_object_or_404(Destination, workspace=request_workspace(request), pk=pk)
        ok, message = destination_test(destination=destination)
        return Response({"ok": ok, "message": message}, status=200 if ok else 502)


class SyncSerializer(serializers.ModelSerializer):
    class Meta:
        model = Sync
        fields = ["id", "segment", "destination", "mode", "field_mapping", "write_empty", "max_removal_share",
                  "schedule", "enabled", "run_on_change", "created_at"]


class SyncInput(serializers.Serializer):
    segment = serializers.CharField(help_text="the segment's id or name")
    destination = serializers.IntegerField()
    mode = serializers.ChoiceField(choices=SyncMode.choices, default=SyncMode.UPSERT)
    schedule = serializers.CharField(required=False, allow_null=True, allow_blank=True, help_text="cron, 5 fields")
    field_mapping = serializers.DictField(child=serializers.CharField(), required=False, default=dict)
    write_empty = serializers.BooleanField(default=False)
    max_removal_share = serializers.FloatField(default=0.2, min_value=0, max_value=1)
    run_on_change = serializers.BooleanField(default=True)


class SyncListApi(generics.ListAPIView):
    write_role = "admin"
    serializer_class = SyncSerializer

    def get_queryset(self):
        return Sync.objects.filter(workspace=request_workspace(self.request)).order_by("id")

    @extend_schema(request=SyncInput, responses={201: SyncSerializer})
    def post(self, request):
        data = SyncInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            sync = sync_create(workspace=request_workspace(request), **data.validated_data)
        except IntegrationError as exc:
            return _invalid(exc)
        return Response(SyncSerializer(sync).data, status=status.HTTP_201_CREATED)


class SyncChangeInput(serializers.Serializer):
    mode = serializers.ChoiceField(choices=SyncMode.choices, required=False)
    schedule = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    field_mapping = serializers.DictField(child=serializers.CharField(), required=False)
    write_empty = serializers.BooleanField(required=False)
    max_removal_share = serializers.FloatField(required=False, min_value=0, max_value=1)
    enabled = serializers.BooleanField(required=False)
    run_on_change = serializers.BooleanField(required=False)


class SyncDetailApi(generics.RetrieveDestroyAPIView):
    write_role = "admin"
    serializer_class = SyncSerializer

    def get_queryset(self):
        return Sync.objects.filter(workspace=request_workspace(self.request))

    @extend_schema(request=SyncChangeInput, responses={200: SyncSerializer})
    def patch(self, request, pk: int):
        data = SyncChangeInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            sync = sync_update(sync=self.get_object(), **data.validated_data)
        except IntegrationError as exc:
            return _invalid(exc)
        return Response(SyncSerializer(sync).data)


class RunInput(serializers.Serializer):
    dry_run = serializers.BooleanField(default=False)
    confirm_removals = serializers.BooleanField(default=False, help_text="let a mirror run past the removal limit")


class SyncRunApi(APIView):
    write_role = "admin"

    @extend_schema(request=RunInput, responses={202: inline_serializer("RunQueued", {
        "run_id": serializers.IntegerField(), "created": serializers.BooleanField()})})
    def post(self, request, pk: int):
        sync = get_object_or_404(Sync, workspace=request_workspace(request), pk=pk)
        data = RunInput(data=request.data)
        data.is_valid(raise_exception=True)
        run, created = sync_run_request(sync=sync, **data.validated_data)
        return Response({"run_id": run.pk, "created": created}, status=202)


class SyncRunSerializer(serializers.ModelSerializer):
    run_id = serializers.IntegerField(source="pk", read_only=True)
    duration_seconds = serializers.FloatField(read_only=True)

    class Meta:
        model = SyncRun
        fields = ["run_id", "id", "sync", "status", "dry_run", "trigger", "needs_confirmation", "planned_counts",
                  "added", "updated", "removed", "failed", "skipped", "error", "attempts", "created_at",
                  "started_at", "finished_at", "duration_seconds"]


class SyncRunListApi(generics.ListAPIView):
    serializer_class = SyncRunSerializer

    def get_queryset(self):
        qs = SyncRun.objects.filter(workspace=request_workspace(self.request))
        if self.request.query_params.get("sync", "").isdigit():
            qs = qs.filter(sync_id=int(self.request.query_params["sync"]))
        return qs.order_by("-id")


class SyncRunDetailApi(generics.RetrieveAPIView):
    serializer_class = SyncRunSerializer

    def get_queryset(self):
        return SyncRun.objects.filter(workspace=request_workspace(self.request))


class SyncRecordSerializer(serializers.Serializer):
    contact_id = serializers.CharField(source="external_id")
    operation = serializers.CharField()
    status = serializers.CharField(source="result", help_text="ok, failed, skipped, planned")
    error = serializers.CharField(source="message")


class SyncRunRecordsApi(generics.ListAPIView):
    """Per-record results of a run (paginated); `?status=failed` for the errors only."""

    serializer_class = SyncRecordSerializer

    def get_queryset(self):
        run = get_object_or_404(SyncRun, workspace=request_workspace(self.request), pk=self.kwargs["pk"])
        return run_records(run=run, status=self.request.query_params.get("status", ""))


class WebhookSourceSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookSource
        fields = ["id", "source", "hint", "active", "created_at"]


class WebhookSourceInput(serializers.Serializer):
    source = serializers.ChoiceField(choices=WebhookSourceKind.values)
    secret = serializers.CharField(min_length=16, write_only=True)


class WebhookSourceListApi(generics.ListAPIView):
    write_role = "admin"
    serializer_class = WebhookSourceSerializer

    def get_queryset(self):
        return WebhookSource.objects.filter(workspace=request_workspace(self.request)).order_by("-id")

    @extend_schema(request=WebhookSourceInput, responses={201: WebhookSourceSerializer})
    def post(self, request):
        data = WebhookSourceInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            source = webhook_source_create(workspace=request_workspace(request), **data.validated_data)
        except IntegrationError as exc:
            return _invalid(exc)
        return Response(WebhookSourceSerializer(source).data, status=201)


class WebhookSourceDetailApi(generics.RetrieveDestroyAPIView):
    """Delete retires a secret (rotation)."""

    write_role = "admin"
    serializer_class = WebhookSourceSerializer

    def get_queryset(self):
        return WebhookSource.objects.filter(workspace=request_workspace(self.request))

    def perform_destroy(self, instance) -> None:
        webhook_source_deactivate(source=instance)  # kept, inactive: the history says which secret signed


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = ["id", "source", "provider_id", "status", "error", "attempts", "received_at", "processed_at"]


class WebhookDeliveryListApi(generics.ListAPIView):
    serializer_class = WebhookDeliverySerializer

    def get_queryset(self):
        qs = WebhookDelivery.objects.filter(workspace=request_workspace(self.request)).order_by("-id")
        wanted = self.request.query_params.get("status")
        return qs.filter(status=wanted) if wanted else qs


class WebhookDeliveryReplayApi(APIView):
    write_role = "admin"

    @extend_schema(request=None, responses={202: WebhookDeliverySerializer})
    def post(self, request, pk: int):
        delivery = get_object_or_404(WebhookDelivery, workspace=request_workspace(request), pk=pk)
        webhook_delivery_replay(delivery=delivery)
        delivery.refresh_from_db()
        return Response(WebhookDeliverySerializer(delivery).data, status=202)
