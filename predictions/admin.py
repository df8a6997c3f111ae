"""Admin for the model registry and stored scores (trainings are started from the UI, API or command)."""

from django.contrib import admin

from predictions.models import ContactScore, ModelVersion, StageSuggestion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["id", "workspace", "target", "arch", "trained_arch", "status", "is_active", "created_at",
                    "finished_at"]
    list_filter = ["workspace", "target", "status", "is_active"]
    search_fields = ["workspace__slug", "failure_reason"]
    readonly_fields = [
        "status", "progress", "heartbeat_at", "metrics", "baselines", "candidates", "curves", "counts",
        "threshold", "calibration", "validation_cutoff", "data_end", "timings", "failure_reason",
        "artifact_path", "is_active", "activated_at", "celery_task_id", "runner", "attempts", "started_at",
        "finished_at", "trained_arch", "scoreboard", "importance",
    ]
    actions = ["activate", "cancel"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Activate the selected (succeeded) models")
    def activate(self, request, queryset):
        from predictions.services import PredictionError, model_version_activate

        for version in queryset:
            try:
                model_version_activate(version=version)
            except PredictionError as exc:
                self.message_user(request, str(exc), level="error")

    @admin.action(description="Cancel the selected trainings")
    def cancel(self, request, queryset):
        from predictions.services import PredictionError, model_version_cancel

        for version in queryset:
            try:
                model_version_cancel(version=version)
            except PredictionError as exc:
                self.message_user(request, str(exc), level="error")


@admin.register(ContactScore)
class ContactScoreAdmin(admin.ModelAdmin):
    list_display = ["contact", "target", "probability", "model_version", "as_of", "explained_at"]
    list_filter = ["workspace", "target"]
    search_fields = ["contact__external_id"]
    raw_id_fields = ["contact", "model_version"]
    list_select_related = ["contact"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

# Segments and their history (predictions/segments/admin.py registers them).
from predictions.segments import admin as _segments_admin  # noqa: E402,F401


@admin.register(StageSuggestion)
class StageSuggestionAdmin(admin.ModelAdmin):
    """The CRF's suggestions for unmapped event names: a person accepts them into the stage map."""

    list_display = ["event_name", "stage", "confidence", "occurrences", "status", "workspace", "created_at"]
    list_filter = ["workspace", "status", "stage"]
    search_fields = ["event_name"]
    readonly_fields = ["workspace", "event_name", "stage", "confidence", "occurrences", "alternatives", "status",
                       "created_at", "decided_at"]
    actions = ["accept", "dismiss"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Accept the selected suggestions into the stage map")
    def accept(self, request, queryset):
        from predictions.services import PredictionError, stage_suggestion_accept

        for suggestion in queryset:
            try:
                stage_suggestion_accept(suggestion=suggestion)
            except PredictionError as exc:
                self.message_user(request, str(exc), level="error")

    @admin.action(description="Dismiss the selected suggestions")
    def dismiss(self, request, queryset):
        from predictions.services import stage_suggestion_dismiss

        for suggestion in queryset:
            stage_suggestion_dismiss(suggestion=suggestion)
