"""Web UI of integrations: destinations (add, test), syncs (create, dry run, sync now, run history,
per-record errors), inbound webhooks (secrets, deliveries accepted and refused, replay)."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from funnel_site.dashboard.views import workspace_for
from integrations.destinations import ADAPTERS
from integrations.models import (
    Destination,
    Sync,
    SyncMode,
    SyncRun,
    WebhookDelivery,
    WebhookRefusal,
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
    webhook_delivery_replay,
    webhook_source_create,
)
from predictions.models import Segment


def _json_field(request, name: str) -> dict:
    text = (request.POST.get(name) or "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise IntegrationError(f"{name} is not JSON: {exc}", name) from None
    if not isinstance(value, dict):
        raise IntegrationError(f"{name} must be a JSON object", name)
    return value


@login_required
def destinations(request, slug: str):
    """The workspace's destinations and the form to add one (admin)."""
    workspace = workspace_for(request, slug, role="admin" if request.method == "POST" else "viewer")
    if request.method == "POST":
        try:
            destination_create(workspace=workspace, kind=request.POST.get("kind", ""),
                               name=request.POST.get("name", "").strip(),
                               settings=_json_field(request, "settings"), credentials=_json_field(request, "credentials"))
            messages.success(request, "destination added; its credentials are stored encrypted and not shown again")
        except IntegrationError as exc:
            messages.error(request, str(exc))
        return redirect("integrations_ui:destinations", slug=slug)
    return render(request, "integrations/destinations.html", {
        "workspace": workspace, "kinds": list(ADAPTERS),
        "destinations": Destination.objects.filter(workspace=workspace).annotate(n_syncs=Count("syncs")),
    })


@login_required
@require_POST
def destination_test_page(request, slug: str, pk: int):
    """Test a destination's connection and say how it went."""
    workspace = workspace_for(request, slug, role="admin")
    destination = get_object_or_404(Destination, workspace=workspace, pk=pk)
    ok, message = destination_test(destination=destination)
    (messages.success if ok else messages.error)(request, f"{destination.name}: {message}")
    return redirect("integrations_ui:destinations", slug=slug)


@login_required
def syncs(request, slug: str):
    """Syncs with their latest runs, and the form to create one (admin)."""
    workspace = workspace_for(request, slug, role="admin" if request.method == "POST" else "viewer")
    if request.method == "POST":
        try:
            sync_create(workspace=workspace, segment=request.POST.get("segment", ""),
                        destination=int(request.POST.get("destination") or 0), mode=request.POST.get("mode", ""),
                        schedule=request.POST.get("schedule", "").strip() or None,
                        field_mapping=_json_field(request, "field_mapping"))
            messages.success(request, "sync created")
        except IntegrationError as exc:
            messages.error(request, str(exc))
        return redirect("integrations_ui:syncs", slug=slug)
    return render(request, "integrations/syncs.html", {
        "workspace": workspace, "modes": SyncMode.choices,
        "segments": Segment.objects.filter(workspace=workspace),
        "destinations": Destination.objects.filter(workspace=workspace),
        "syncs": Sync.objects.filter(workspace=workspace).select_related("segment", "destination"),
        "runs": SyncRun.objects.filter(workspace=workspace).select_related("sync")[:50],
    })


@login_required
@require_POST
def sync_run_page(request, slug: str, pk: int):
    """Sync now, or a dry run (the preview of what would change)."""
    workspace = workspace_for(request, slug, role="admin")
    sync = get_object_or_404(Sync, workspace=workspace, pk=pk)
    run, created = sync_run_request(sync=sync, dry_run=request.POST.get("dry_run") == "1",
                                    confirm_removals=request.POST.get("confirm_removals") == "1")
    if not created:
        messages.info(request, f"run {run.pk} of this sync is still {run.status}")
    return redirect("integrations_ui:run", slug=slug, pk=run.pk)


@login_required
def run_detail(request, slug: str, pk: int):
    """One run: counts, timings, its attempts, and per-record results (errors first)."""
    workspace = workspace_for(request, slug)
    run = get_object_or_404(SyncRun.objects.select_related("sync", "sync__segment", "sync__destination"),
                            workspace=workspace, pk=pk)
    wanted = request.GET.get("status", "")
    page = Paginator(run_records(run=run, status=wanted), 100).get_page(request.GET.get("page"))
    return render(request, "integrations/run.html", {
        "workspace": workspace, "run": run, "page": page, "wanted": wanted,
        "attempts": run.attempts_made.order_by("-id")[:50], "in_flight": run.status in SyncRun.ACTIVE,
    })


@login_required
def webhooks(request, slug: str):
    """Signing secrets, deliveries (accepted, with status) and refusals (counted by reason)."""
    workspace = workspace_for(request, slug, role="admin" if request.method == "POST" else "viewer")
    if request.method == "POST":
        try:
            webhook_source_create(workspace=workspace, source=request.POST.get("source", ""),
                                  secret=request.POST.get("secret", ""))
            messages.success(request, "secret registered")
        except IntegrationError as exc:
            messages.error(request, str(exc))
        return redirect("integrations_ui:webhooks", slug=slug)
    return render(request, "integrations/webhooks.html", {
        "workspace": workspace, "sources": WebhookSourceKind.choices,
        "secrets": WebhookSource.objects.filter(workspace=workspace),
        "deliveries": WebhookDelivery.objects.filter(workspace=workspace)[:100],
        "refusals": WebhookRefusal.objects.filter(workspace=workspace).values("source", "reason")
        .annotate(n=Count("id")).order_by("-n"),
        "recent_refusals": WebhookRefusal.objects.filter(workspace=workspace)[:20],
    })


@login_required
@require_POST
def replay(request, slug: str, pk: int):
    """Process a stored delivery again."""
    workspace = workspace_for(request, slug, role="admin")
    webhook_delivery_replay(delivery=get_object_or_404(WebhookDelivery, workspace=workspace, pk=pk))
    messages.success(request, f"delivery {pk} queued for processing again")
    return redirect("integrations_ui:webhooks", slug=slug)
