"""The web UI's own pages: landing, the user's workspaces, the switcher, a workspace's overview,
creating a workspace, and the favicon. Thin: check access, call a selector or service, render."""

from __future__ import annotations

import zoneinfo
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.views.decorators.cache import cache_control

from funnel_site.dashboard import charts, selectors
from funnel_site.dashboard.selectors import visible_workspaces  # noqa: F401  (imported from here by other apps)
from funnel_site.events.models import Workspace

FAVICON = Path(__file__).parent / "static" / "dashboard" / "favicon.ico"


def workspace_for(request, slug: str, role: str = "viewer") -> Workspace:
    """The workspace `slug` if the user may see it (404 otherwise, never another tenant's data),
    and 403 when the user's role there is below `role`."""
    from funnel_site.events.roles import require_page_role

    ws = selectors.visible_workspaces(request.user).filter(slug=slug).first()
    if ws is None:
        raise Http404("no such workspace")
    if role != "viewer":
        require_page_role(request=request, workspace=ws, needed=role)
    return ws


def landing(request):
    """What the product does, and links to the dashboard, the admin and the API docs."""
    return render(request, "dashboard/landing.html", {})


@cache_control(max_age=86400, public=True)
def favicon(request):
    """/favicon.ico: the product's icon (browsers ask for it at the root)."""
    return FileResponse(FAVICON.open("rb"), content_type="image/x-icon")


@login_required
def home(request):
    """The user's workspaces with their sizes (and, for staff, the form to create one)."""
    return render(request, "dashboard/home.html", {"workspaces": selectors.workspace_list(user=request.user)})


@login_required
def workspace_go(request):
    """The workspace switcher's target: the overview of the chosen workspace."""
    slug = request.GET.get("slug", "")
    workspace_for(request, slug)
    return redirect("dashboard:workspace", slug=slug)


@login_required
def workspace_create(request):
    """Create a workspace (superusers and staff); shows its first API key once."""
    from funnel_site.dashboard.services import SettingsError, workspace_open

    if not (request.user.is_superuser or request.user.is_staff):
        raise PermissionDenied("only staff can create workspaces")
    values = {"slug": "", "name": "", "time_zone": "UTC"}
    if request.method == "POST":
        values = {k: request.POST.get(k, "").strip() for k in values}
        try:
            zoneinfo.ZoneInfo(values["time_zone"] or "UTC")
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            messages.error(request, f"time_zone: {values['time_zone']!r} is not a time zone (e.g. UTC, Europe/Paris)")
        else:
            try:
                workspace, key = workspace_open(creator=request.user, **values)
            except SettingsError as exc:
                messages.error(request, str(exc))
            else:
                request.session["new_api_key"] = {"slug": workspace.slug, "key": key, "name": "default"}
                messages.success(request, f"workspace {workspace.slug!r} created")
                return redirect("dashboard:workspace", slug=workspace.slug)
    return render(request, "dashboard/workspace_create.html", {"values": values})


@login_required
def workspace_overview(request, slug: str):
    """Totals, events per day, the five-stage funnel, latest runs and failures, or first steps when empty."""
    ws = workspace_for(request, slug)
    context = {"workspace": ws, **selectors.workspace_overview(workspace=ws), **_new_key(request, ws)}
    context["chart_per_day"] = charts.bar_spec([d for d, _ in context["per_day"]], [n for _, n in context["per_day"]],
                                               x_title="day (UTC)", y_title="events", series_label="events")
    if context["marketing"]:
        stages = context["marketing"]["stages"]
        context["stage_chart"] = charts.funnel_spec([s["stage"] for s in stages], [s["reached"] for s in stages],
                                                    [s["conversion_from_start"] for s in stages])
    return render(request, "dashboard/workspace.html", context)


def _new_key(request, workspace: Workspace) -> dict:
    """A key created on the previous request, shown once (then forgotten)."""
    new = request.session.get("new_api_key")
    if new and new.get("slug") == workspace.slug:
        del request.session["new_api_key"]
        return {"new_api_key": new}
    return {}
