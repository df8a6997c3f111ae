"""Workspace settings: the stage map (with the CRF's suggestions once that part is merged), API keys
created and shown once, revoked, and members with their roles. Every change needs the admin role."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from funnel_site.dashboard import selectors, services
from funnel_site.dashboard.views import _new_key, workspace_for
from funnel_site.events.roles import ADMIN


def _stage_suggestions(workspace) -> list | None:
    """The tournament's CRF stage suggestions, or None while that selector is not merged."""
    try:
        from predictions.selectors import stage_suggestions
    except ImportError:
        return None
    return list(stage_suggestions(workspace.pk))


@login_required
def settings_page(request, slug: str):
    """Settings for every member to read; the forms only for admins."""
    workspace = workspace_for(request, slug)
    context = {"workspace": workspace, **selectors.workspace_settings(workspace=workspace), **_new_key(request, workspace),
               "suggestions": _stage_suggestions(workspace)}
    return render(request, "dashboard/settings.html", context)


def _done(request, slug: str, call, success: str):
    try:
        result = call()
    except services.SettingsError as exc:
        messages.error(request, str(exc))
        return None
    messages.success(request, success)
    return result or True


@login_required
@require_POST
def stage_map_save(request, slug: str):
    """Map one event name to a stage (or back to the default)."""
    workspace = workspace_for(request, slug, role=ADMIN)
    name, stage = request.POST.get("event_name", ""), request.POST.get("stage", "")
    _done(request, slug, lambda: services.stage_mapping_set(workspace=workspace, event_name=name, stage=stage),
          f"{name.strip()!r} now maps to {'the default stage' if stage == 'default' else stage or 'no stage'}")
    return redirect("dashboard:settings", slug=slug)


@login_required
@require_POST
def api_key_new(request, slug: str):
    """Create a key; its clear value is shown on the next page only."""
    workspace = workspace_for(request, slug, role=ADMIN)
    result = _done(request, slug, lambda: services.api_key_issue(
        workspace=workspace, name=request.POST.get("name", ""), role=request.POST.get("role", "admin")),
        "API key created: copy it now, it is not shown again")
    if result:
        api_key, clear = result
        request.session["new_api_key"] = {"slug": slug, "key": clear, "name": api_key.name}
    return redirect("dashboard:settings", slug=slug)


@login_required
@require_POST
def api_key_revoke(request, slug: str, key_id: int):
    """Revoke a key: requests with it get 401 from now on."""
    workspace = workspace_for(request, slug, role=ADMIN)
    _done(request, slug, lambda: services.api_key_withdraw(workspace=workspace, key_id=key_id), "API key revoked")
    return redirect("dashboard:settings", slug=slug)


@login_required
@require_POST
def member_save(request, slug: str):
    """Add a user as a member, or change a member's role."""
    workspace = workspace_for(request, slug, role=ADMIN)
    username, role = request.POST.get("username", ""), request.POST.get("role", "")
    _done(request, slug, lambda: services.membership_set(workspace=workspace, username=username, role=role),
          f"{username.strip()} is now {role} of {slug}")
    return redirect("dashboard:settings", slug=slug)


@login_required
@require_POST
def member_remove(request, slug: str, member_id: int):
    """Remove a member (not the last admin)."""
    workspace = workspace_for(request, slug, role=ADMIN)
    _done(request, slug, lambda: services.membership_remove(workspace=workspace, membership_id=member_id),
          "member removed")
    return redirect("dashboard:settings", slug=slug)
