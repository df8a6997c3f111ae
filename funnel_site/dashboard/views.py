"""The admin web UI: a landing page, the workspaces a user may see, and each workspace's overview."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.db.models.functions import TruncDay
from django.http import Http404
from django.shortcuts import render

from funnel_site.events.models import Contact, Event, Workspace
from funnel_site.events.selectors import event_stage_counts
from funnel_site.events.stages import STAGES


def visible_workspaces(user):
    """Workspaces the user may open: all for superusers, else those it is a member of."""
    qs = Workspace.objects.order_by("slug")
    return qs if user.is_superuser else qs.filter(membership__user=user)


def workspace_for(request, slug: str, role: str = "viewer") -> Workspace:
    """The workspace `slug` if the user may see it (404 otherwise, never another tenant's data),
    and 403 when the user's role there is below `role`."""
    from funnel_site.events.roles import require_page_role

    ws = visible_workspaces(request.user).filter(slug=slug).first()
    if ws is None:
        raise Http404("no such workspace")
    if role != "viewer":
        require_page_role(request=request, workspace=ws, needed=role)
    return ws


def landing(request):
    """Links to the dashboard, the admin and the API docs."""
    return render(request, "dashboard/landing.html", {})


@login_required
def home(request):
    """The user's workspaces with their sizes."""
    workspaces = visible_workspaces(request.user).annotate(n_contacts=Count("contacts", distinct=True))
    return render(request, "dashboard/home.html", {"workspaces": workspaces})


def bar_chart(points: list[tuple[str, int]], *, width: int = 720, height: int = 160) -> dict:
    """Geometry for an inline SVG bar chart (no JavaScript needed)."""
    top = max((v for _, v in points), default=0) or 1
    bar_w = width / max(len(points), 1)
    bars = []
    for i, (label, value) in enumerate(points):
        h = round(value / top * (height - 20), 1)
        bars.append(
            {"x": round(i * bar_w, 1), "y": round(height - h, 1), "w": max(round(bar_w - 2, 1), 1),
             "h": h, "label": label, "value": value}
        )
    return {"bars": bars, "width": width, "height": height, "max": top}


@login_required
def workspace_overview(request, slug: str):
    """Events and contacts of a workspace: totals, events per day (last 60 days seen), stages."""
    ws = workspace_for(request, slug)
    events = Event.objects.filter(workspace=ws)
    newest = events.order_by("-timestamp").values_list("timestamp", flat=True).first()
    per_day: list[tuple[str, int]] = []
    if newest is not None:
        rows = (
            events.filter(timestamp__gte=newest - timedelta(days=60))
            .annotate(day=TruncDay("timestamp"))
            .values("day")
            .annotate(n=Count("id"))
            .order_by("day")
        )
        per_day = [(r["day"].strftime("%Y-%m-%d"), r["n"]) for r in rows]
    # the derived stages of the read model: the same ones funnels and models use
    stage_counts = event_stage_counts(workspace_id=ws.id)
    top_events = events.values("name").annotate(n=Count("id")).order_by("-n")[:15]
    context = {
        "workspace": ws,
        "n_events": events.count(),
        "n_contacts": Contact.objects.filter(workspace=ws).count(),
        "newest": newest,
        "chart": bar_chart(per_day),
        "stages": [(s, stage_counts.get(s, 0)) for s in STAGES] + [("(none)", stage_counts.get("", 0))],
        "top_events": top_events,
    }
    return render(request, "dashboard/workspace.html", context)
