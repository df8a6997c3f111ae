"""Template context for every page: the navigation, the workspace switcher and the user's role."""

from __future__ import annotations

from django.urls import Resolver404, resolve

from funnel_site.dashboard.nav import workspace_nav
from funnel_site.events.roles import ADMIN, EDITOR, role_allows, user_role

SWITCHER_LIMIT = 300


def ui(request) -> dict[str, object]:
    """`nav`, `my_workspaces`, `current_slug`, `role`, `can_edit` and `can_admin` for base.html and pages.

    The role decides which controls a template shows; the views check it again on every write.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from funnel_site.dashboard.selectors import visible_workspaces

    match = getattr(request, "resolver_match", None)
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            match = None
    slug = (match.kwargs.get("slug") if match else None) or ""
    # a superuser of a large platform sees every tenant: the switcher lists the first few hundred
    workspaces = list(visible_workspaces(user).only("slug", "name")[:SWITCHER_LIMIT])
    current = next((w for w in workspaces if w.slug == slug), None)
    if current is None and slug:
        current = visible_workspaces(user).filter(slug=slug).only("slug", "name").first()
        if current is not None:
            workspaces.append(current)
    context: dict[str, object] = {"my_workspaces": workspaces, "current_slug": current.slug if current else ""}
    if current is not None:
        role = user_role(user=user, workspace=current)
        context.update(
            nav=workspace_nav(slug=current.slug, current_path=request.path),
            role=role,
            can_edit=role_allows(role=role, needed=EDITOR),
            can_admin=role_allows(role=role, needed=ADMIN),
        )
    return context
