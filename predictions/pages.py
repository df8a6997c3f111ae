"""Web UI pages of predictions: models (list, train form, detail with plots, live status) and a
contact's scores with explanations. Server-rendered; the live status is a small fetch() poll."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from funnel_site.cli import _DURATION, _UNIT_SECONDS
from funnel_site.dashboard.views import workspace_for
from funnel_site.events.models import Contact
from funnel_site.events.roles import ADMIN
from predictions.charts import (
    METRIC_COLUMNS,
    METRIC_NOTES,
    count_rows,
    metrics_rows,
    reliability_spec,
    roc_spec,
)
from predictions.models import Arch, ModelVersion, Target
from predictions.selectors import (
    NotFound,
    active_model_version,
    contact_current_scores,
    contact_scores,
    model_version_get,
    model_version_list,
    prediction_json,
)
from predictions.services import (
    PredictionError,
    model_version_activate,
    model_version_cancel,
    model_version_queue,
    score_explanation_request,
    scoring_run_queue,
)


def _version(workspace, model_id) -> ModelVersion:
    try:
        return model_version_get(workspace=workspace, model_id=model_id)
    except NotFound:
        raise Http404("no such model") from None


def progress_text(version: ModelVersion) -> str:
    """One line on a training's state: phase, epoch, validation AUC, time running."""
    from django.utils import timezone

    from funnel_site.funnels.charts import human_seconds

    p = version.progress or {}
    parts = [p.get("phase", "") or ("waiting for a worker" if version.status == ModelVersion.Status.QUEUED else "")]
    if "epoch" in p:
        parts.append(f"epoch {p['epoch']}" + (f" ({p['arch']})" if p.get("arch") else ""))
    if isinstance(p.get("val_auc"), float):
        parts.append(f"validation AUC {p['val_auc']:.3f}")
    if isinstance(p.get("best_val_auc"), float):
        parts.append(f"best so far {p['best_val_auc']:.3f}")
    if version.in_flight and version.started_at:
        parts.append(f"running for {human_seconds((timezone.now() - version.started_at).total_seconds())}")
    return " · ".join(x for x in parts if x)


def _seconds(text: str, field: str) -> int:
    match = _DURATION.match(text or "")
    if not match:
        raise PredictionError(f"{field} {text!r} is not a duration: write it like 1h, 7d or 2w")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@login_required
def models(request, slug: str):
    """The workspace's models, the active one per target, and the train form (POST queues a training)."""
    workspace = workspace_for(request, slug, role=ADMIN if request.method == "POST" else "viewer")
    if request.method == "POST":
        try:
            version = model_version_queue(
                workspace=workspace, target=request.POST.get("target", ""),
                horizon_seconds=_seconds(request.POST.get("horizon", ""), "horizon"),
                lookback_seconds=_seconds(request.POST.get("lookback", ""), "lookback"),
                arch=request.POST.get("arch", Arch.AUTO), ensemble=bool(request.POST.get("ensemble")),
            )
        except PredictionError as exc:
            messages.error(request, str(exc))
            return redirect("predictions:models", slug=slug)
        return redirect("predictions:detail", slug=slug, model_id=version.pk)
    versions = list(model_version_list(workspace=workspace).defer("curves")[:100])
    context = {
        "workspace": workspace, "versions": versions, "targets": Target.choices, "archs": Arch.choices,
        "in_flight": [v.pk for v in versions if v.in_flight],
        "active": {t: active_model_version(workspace=workspace, target=t) for t in Target.values},
    }
    return render(request, "predictions/models.html", context)


@login_required
def detail(request, slug: str, model_id: int):
    """A model: status (live while training), metrics beside the baselines, ROC and reliability plots."""
    workspace = workspace_for(request, slug)
    version = _version(workspace, model_id)
    top = list(contact_scores(version=version)[:20]) if version.status == ModelVersion.Status.SUCCEEDED else []
    context = {
        "workspace": workspace, "version": version, "progress": progress_text(version),
        "columns": [label for _, label in METRIC_COLUMNS],
        "rows": metrics_rows(f"{version.trained_arch or version.arch} (this model)",
                             version.metrics, version.baselines) if version.metrics else [],
        "roc": roc_spec(version.curves.get("roc", [])),
        "reliability": reliability_spec(version.curves.get("reliability", [])),
        "notes": METRIC_NOTES, "count_rows": count_rows(version.counts or {}),
        "top": top,
        "poll_ids": [version.pk] if version.in_flight else [],
        "last_run": version.scoring_runs.order_by("-created_at", "-id").first(),
    }
    return render(request, "predictions/model_detail.html", context)


@login_required
def status(request, slug: str, model_id: int):
    """JSON for the pages' live status poll."""
    version = _version(workspace_for(request, slug), model_id)
    return JsonResponse({"model_id": version.pk, "status": version.status, "progress": version.progress,
                         "progress_text": progress_text(version), "finished": not version.in_flight})


@login_required
@require_POST
def activate(request, slug: str, model_id: int):
    """Activate a succeeded model (POST)."""
    version = _version(workspace_for(request, slug, role=ADMIN), model_id)
    try:
        model_version_activate(version=version)
        messages.success(request, f"Model {version.pk} is now the active {version.target} model.")
    except PredictionError as exc:
        messages.error(request, str(exc))
    return redirect("predictions:detail", slug=slug, model_id=model_id)


@login_required
@require_POST
def score(request, slug: str, model_id: int):
    """Queue a scoring run of a model (POST, admin); the model page shows its progress."""
    version = _version(workspace_for(request, slug, role="admin"), model_id)
    try:
        run = scoring_run_queue(version=version, trigger="page")
        messages.success(request, f"Scoring run {run.pk} queued: every eligible contact is rescored.")
    except PredictionError as exc:
        messages.error(request, str(exc))
    return redirect("predictions:detail", slug=slug, model_id=model_id)


@login_required
@require_POST
def cancel(request, slug: str, model_id: int):
    """Cancel a queued or running training (POST)."""
    version = _version(workspace_for(request, slug, role=ADMIN), model_id)
    try:
        model_version_cancel(version=version)
        messages.success(request, f"Model {version.pk} cancelled.")
    except PredictionError as exc:
        messages.error(request, str(exc))
    return redirect("predictions:detail", slug=slug, model_id=model_id)


@login_required
def contact(request, slug: str, contact_id: str):
    """A contact's probability per target with the active models, and the factors behind each."""
    workspace = workspace_for(request, slug)
    person = Contact.objects.filter(workspace=workspace, external_id=contact_id).first()
    if person is None:
        raise Http404("no such contact")
    cards, pending = [], False
    current = {score.target: score for score in contact_current_scores(contact=person)}
    for target in Target.values:
        version = active_model_version(workspace=workspace, target=target)
        score = current.get(target)
        card = {"target": target, "version": version, "score": score, "error": "", "unscored": False,
                "factors": prediction_json(score)["factors"] if score is not None else []}
        if version is not None and score is None:
            card["unscored"] = True  # scored by the next run or the contact's next event
        elif score is not None and score.explained_at is None:
            score_explanation_request(score=score)  # a worker explains it once; never waited for here
            pending = True
        cards.append(card)
    return render(request, "predictions/contact.html",
                  {"workspace": workspace, "contact": person, "cards": cards, "pending": pending})
