"""Roles per workspace, checked on the server: one place says who may do what.

A viewer reads; an editor also changes funnels and segments; an admin also trains, activates, and
manages API keys, destinations, syncs and members (DESIGN section 5). A web user's role comes from
its Membership (a superuser is an admin everywhere); an API request's from the key's `role`.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from funnel_site.events.models import Membership, Workspace

VIEWER = Membership.Role.VIEWER.value
EDITOR = Membership.Role.EDITOR.value
ADMIN = Membership.Role.ADMIN.value
ROLE_RANK = {VIEWER: 0, EDITOR: 1, ADMIN: 2}


def role_allows(*, role: str | None, needed: str) -> bool:
    """True when `role` is at least `needed` (None: no access at all)."""
    return role is not None and ROLE_RANK.get(role, -1) >= ROLE_RANK[needed]


def user_role(*, user, workspace: Workspace) -> str | None:
    """The role of a web user in a workspace, or None when it is not a member."""
    if not getattr(user, "is_authenticated", False):
        return None
    if user.is_superuser:
        return ADMIN
    return Membership.objects.filter(workspace=workspace, user=user).values_list("role", flat=True).first()


def require_page_role(*, request, workspace: Workspace, needed: str) -> None:
    """Raise PermissionDenied (403) unless the request's user has `needed` in `workspace`."""
    if not role_allows(role=user_role(user=request.user, workspace=workspace), needed=needed):
        raise PermissionDenied(f"this needs the {needed} role in workspace {workspace.slug}")
