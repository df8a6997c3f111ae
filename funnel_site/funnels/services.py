"""Writes of the funnels domain: create, update and delete saved funnels (definitions validated)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from funnel_site.events.models import Workspace
from funnel_site.funnels.engine import FunnelDefinitionError
from funnel_site.funnels.models import SavedFunnel
from funnel_site.funnels.spec import funnel_spec_parse


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FunnelDefinitionError(field="name", reason="a saved funnel needs a name")
    if len(value.strip()) > 200:
        raise FunnelDefinitionError(field="name", reason="at most 200 characters")
    return value.strip()


def saved_funnel_create(
    *, workspace: Workspace, name: str, definition: dict[str, Any], description: str = ""
) -> SavedFunnel:
    """Save a validated funnel definition under a name unique in the workspace."""
    spec = funnel_spec_parse(definition)
    try:
        with transaction.atomic():
            return SavedFunnel.objects.create(
                workspace=workspace, name=_name(name), description=description or "", definition=spec.canonical
            )
    except IntegrityError:
        raise FunnelDefinitionError(field="name", reason=f"a saved funnel named {name!r} exists already") from None


def saved_funnel_update(
    *,
    funnel: SavedFunnel,
    name: str | None = None,
    definition: dict[str, Any] | None = None,
    description: str | None = None,
) -> SavedFunnel:
    """Change the name, description and/or definition of a saved funnel (validated)."""
    if name is not None:
        funnel.name = _name(name)
    if description is not None:
        funnel.description = description
    if definition is not None:
        funnel.definition = funnel_spec_parse(definition).canonical
    funnel.updated_at = timezone.now()
    try:
        with transaction.atomic():
            funnel.save()
    except IntegrityError:
        raise FunnelDefinitionError(field="name", reason=f"a saved funnel named {name!r} exists already") from None
    return funnel


def saved_funnel_delete(*, funnel: SavedFunnel) -> None:
    """Delete a saved funnel."""
    funnel.delete()
