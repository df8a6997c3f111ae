"""Reads of the model registry and the stored scores, always within one workspace."""

from __future__ import annotations

from django.db.models import QuerySet

from funnel_site.events.models import Workspace
from predictions.models import ContactScore, ModelVersion, Target


class NotFound(LookupError):
    """The model, contact or score does not exist in this workspace; the message says which."""


def model_version_list(*, workspace: Workspace, target: str | None = None, status: str | None = None) -> QuerySet:
    """The workspace's model versions, newest first."""
    qs = ModelVersion.objects.filter(workspace=workspace).order_by("-created_at", "-id")
    if target:
        qs = qs.filter(target=target)
    if status:
        qs = qs.filter(status=status)
    return qs


def model_version_get(*, workspace: Workspace, model_id) -> ModelVersion:
    """One version of this workspace (NotFound for another tenant's id, like an unknown one)."""
    try:
        pk = int(model_id)
        if not 0 < pk < 2**63:  # past bigint the database would raise, not answer "none"
            raise ValueError(pk)
        return ModelVersion.objects.get(workspace=workspace, pk=pk)
    except (ModelVersion.DoesNotExist, TypeError, ValueError):
        raise NotFound(f"model {model_id} does not exist in workspace {workspace.slug!r}") from None


def active_model_version(*, workspace: Workspace, target: str) -> ModelVersion | None:
    """The active version of a target, or None."""
    return ModelVersion.objects.filter(workspace=workspace, target=target, is_active=True).first()


def active_model_version_required(*, workspace: Workspace, target: str) -> ModelVersion:
    """The active version of a target, or NotFound telling how to get one."""
    if target not in Target.values:
        raise NotFound(f"unknown target {target!r}: use purchase or churn")
    version = active_model_version(workspace=workspace, target=target)
    if version is None:
        raise NotFound(no_active_model_message(workspace=workspace, target=target))
    return version


def no_active_model_message(*, workspace: Workspace, target: str) -> str:
    """Why a target cannot be scored, naming the command that trains a model for it."""
    return (f"workspace {workspace.slug!r} has no active {target} model: train one "
            f"(manage.py train --workspace {workspace.slug} --target {target}) or activate a succeeded one")


def contact_scores(*, version: ModelVersion) -> QuerySet:
    """Stored scores of a version, most likely first."""
    return (
        ContactScore.objects.filter(model_version=version, is_current=True)
        .select_related("contact")
        .order_by("-probability", "contact_id")
    )


def contact_score_get(*, version: ModelVersion, contact_id: int) -> ContactScore | None:
    """A contact's stored score under a version, or None."""
    return ContactScore.objects.filter(model_version=version, contact_id=contact_id, is_current=True).first()


def contact_current_scores(*, contact) -> list[ContactScore]:
    """A contact's current score per target (the newest: one current row per contact and target)."""
    return list(ContactScore.objects.filter(contact=contact, is_current=True).order_by("target"))


def prediction_json(score: ContactScore) -> dict:
    """The public form of a stored score (the contract of /api/v1/contacts/{id}/predictions)."""
    return {
        "target": score.target,
        "probability": score.probability,
        "percentile": score.percentile,
        "model_id": score.model_version_id,
        "scored_at": score.scored_at.isoformat(),
        "as_of": score.as_of.isoformat(),
        "base_value": score.base_value,
        "factors": [{"text": f["text"], "value": f.get("value", f.get("contribution"))} for f in score.factors],
        "explained": score.explained_at is not None,
    }


def scoring_run_list(*, workspace: Workspace) -> QuerySet:
    """The workspace's scoring runs, newest first."""
    from predictions.models import ScoringRun

    return ScoringRun.objects.filter(workspace=workspace).order_by("-created_at", "-id")


def scoring_run_get(*, workspace: Workspace, run_id) -> object:
    """One scoring run of this workspace (NotFound for another tenant's id, like an unknown one)."""
    from predictions.models import ScoringRun

    try:
        return ScoringRun.objects.get(workspace=workspace, pk=int(run_id))
    except (ScoringRun.DoesNotExist, TypeError, ValueError):
        raise NotFound(f"scoring run {run_id} does not exist in workspace {workspace.slug!r}") from None


def stage_suggestions(workspace_id: int, *, status: str | None = "pending") -> QuerySet:
    """The CRF's stage suggestions for unmapped event names of a workspace, most confident first."""
    from predictions.models import StageSuggestion

    qs = StageSuggestion.objects.filter(workspace_id=workspace_id).order_by("-confidence", "event_name")
    return qs.filter(status=status) if status else qs
