"""Writes of the web UI's settings pages: members and roles, the stage map, API keys, workspaces."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from funnel_site.events.models import ApiKey, Membership, StageMapping, Workspace
from funnel_site.events.stages import STAGES


class SettingsError(ValueError):
    """A settings change cannot be made; the message names the field and the reason."""


def membership_set(*, workspace: Workspace, username: str, role: str) -> Membership:
    """Give an existing user `role` in the workspace (adding it as a member when it is not one)."""
    if role not in Membership.Role.values:
        raise SettingsError(f"role: {role!r} is not one of {', '.join(Membership.Role.values)}")
    user = get_user_model().objects.filter(username=(username or "").strip()).first()
    if user is None:
        raise SettingsError(f"username: no user named {username!r} (create it in the admin first)")
    with transaction.atomic():
        membership, _ = Membership.objects.select_for_update().get_or_create(
            workspace=workspace, user=user, defaults={"role": role})
        if membership.role != role:
            _keep_an_admin(workspace, membership, role)
            membership.role = role
            membership.save(update_fields=["role"])
    return membership


def membership_remove(*, workspace: Workspace, membership_id: int) -> None:
    """Remove a member (never the last admin: someone must be able to manage the workspace)."""
    with transaction.atomic():
        membership = Membership.objects.select_for_update().filter(workspace=workspace, pk=membership_id).first()
        if membership is None:
            raise SettingsError(f"member: no member {membership_id} in workspace {workspace.slug!r}")
        _keep_an_admin(workspace, membership, None)
        membership.delete()


def _keep_an_admin(workspace: Workspace, membership: Membership, new_role: str | None) -> None:
    if membership.role == Membership.Role.ADMIN and new_role != Membership.Role.ADMIN:
        others = Membership.objects.filter(workspace=workspace, role=Membership.Role.ADMIN).exclude(pk=membership.pk)
        if not others.exists():
            raise SettingsError(f"role: {membership.user.username} is the last admin of {workspace.slug!r}")


def stage_mapping_set(*, workspace: Workspace, event_name: str, stage: str) -> StageMapping | None:
    """Map an event name to a stage for events received from now on; `stage="default"` removes the override.

    A blank stage means "no stage". Stored events keep the stage they were given when received.
    """
    event_name = (event_name or "").strip()
    if not event_name:
        raise SettingsError("event_name: give the event name to map")
    if stage == "default":
        StageMapping.objects.filter(workspace=workspace, event_name=event_name).delete()
        return None
    if stage and stage not in STAGES:
        raise SettingsError(f"stage: {stage!r} is not one of {', '.join(STAGES)} (or blank for none)")
    mapping, _ = StageMapping.objects.update_or_create(
        workspace=workspace, event_name=event_name, defaults={"stage": stage})
    return mapping


def api_key_issue(*, workspace: Workspace, name: str, role: str) -> tuple[ApiKey, str]:
    """Create an API key with a role; returns (key, the clear key, to be shown once)."""
    from funnel_site.events.services import api_key_create

    if role not in Membership.Role.values:
        raise SettingsError(f"role: {role!r} is not one of {', '.join(Membership.Role.values)}")
    with transaction.atomic():
        api_key, clear = api_key_create(workspace=workspace, name=(name or "").strip()[:100] or "default")
        api_key.role = role
        api_key.save(update_fields=["role"])
    return api_key, clear


def api_key_withdraw(*, workspace: Workspace, key_id: int) -> ApiKey:
    """Revoke one of the workspace's keys by id (another tenant's id is not found)."""
    from funnel_site.events.services import api_key_revoke

    api_key = ApiKey.objects.filter(workspace=workspace, pk=key_id).first()
    if api_key is None:
        raise SettingsError(f"key: no API key {key_id} in workspace {workspace.slug!r}")
    api_key_revoke(api_key=api_key)
    return api_key


def workspace_open(*, slug: str, name: str, time_zone: str, creator) -> tuple[Workspace, str]:
    """Create a workspace from the UI with its first key, its creator an admin member."""
    from funnel_site.events.services import WorkspaceError, workspace_create

    try:
        with transaction.atomic():
            workspace, key = workspace_create(slug=(slug or "").strip(), name=(name or "").strip(),
                                              time_zone=(time_zone or "UTC").strip() or "UTC")
            Membership.objects.get_or_create(workspace=workspace, user=creator, defaults={"role": Membership.Role.ADMIN})
    except WorkspaceError as exc:
        raise SettingsError(f"slug: {exc}") from None
    return workspace, key
