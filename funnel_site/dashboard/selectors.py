"""Reads of the web UI's own pages (overview, contacts, settings), always within one workspace."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.apps import apps
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDay

from funnel_site.events.models import ApiKey, Contact, Event, Membership, StageMapping, Workspace
from funnel_site.events.stages import STAGES

CONTACTS_PAGE = 50
TIMELINE_LIMIT = 100
# Runs shown on the overview when their app is merged: (heading, "app_label.Model").
OVERVIEW_RUN_MODELS = (("Scoring runs", "predictions.ScoringRun"), ("Sync runs", "integrations.SyncRun"))
FAILED = ("failed", "error", "errored")


def visible_workspaces(user) -> QuerySet:
    """Workspaces the user may open: all for superusers, else those it is a member of."""
    qs = Workspace.objects.order_by("slug")
    return qs if user.is_superuser else qs.filter(membership__user=user)


def workspace_list(*, user) -> QuerySet:
    """The user's workspaces with their contact counts."""
    return visible_workspaces(user).annotate(n_contacts=Count("contacts", distinct=True))


def events_per_day(*, workspace: Workspace, days: int = 60) -> list[tuple[str, int]]:
    """(YYYY-MM-DD, events) for the last `days` days up to the newest event (from the first event when
    that is later), days without events as 0."""
    events = Event.objects.filter(workspace=workspace).order_by("timestamp").values_list("timestamp", flat=True)
    newest, oldest = events.last(), events.first()
    if newest is None:
        return []
    start = max(newest - timedelta(days=days - 1), oldest).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = (
        Event.objects.filter(workspace=workspace, timestamp__gte=start)
        .annotate(day=TruncDay("timestamp")).values("day").annotate(n=Count("id")).order_by("day")
    )
    counts = {r["day"].date().isoformat(): r["n"] for r in rows}
    out = []
    day = start.date()
    while day <= newest.date():
        out.append((day.isoformat(), counts.get(day.isoformat(), 0)))
        day += timedelta(days=1)
    return out


def workspace_overview(*, workspace: Workspace) -> dict[str, Any]:
    """Totals, events per day, the five-stage funnel, top events, latest runs and what failed."""
    from funnel_site.funnels.marketing import marketing_funnel_report

    events = Event.objects.filter(workspace=workspace)
    n_events = events.count()
    context: dict[str, Any] = {
        "n_events": n_events,
        "n_contacts": Contact.objects.filter(workspace=workspace).count(),
        "newest": events.order_by("-timestamp").values_list("timestamp", flat=True).first(),
        "per_day": events_per_day(workspace=workspace),
        "top_events": list(events.values("name").annotate(n=Count("id")).order_by("-n", "name")[:10]),
        "api_keys": ApiKey.objects.filter(workspace=workspace, revoked_at__isnull=True).count(),
    }
    # events per stage, as the read model derives them (the stages funnels and models use)
    from funnel_site.events.selectors import event_stage_counts

    stage_counts = event_stage_counts(workspace_id=workspace.id) if n_events else {}
    context["stages"] = [(s, stage_counts.get(s, 0)) for s in STAGES] + [("(none)", stage_counts.get("", 0))]
    context["marketing"] = marketing_funnel_report(workspace=workspace, since=None, until=None) if n_events else None
    context["trainings"], context["failures"] = _training_runs(workspace)
    context["runs"] = []
    for heading, label in OVERVIEW_RUN_MODELS:
        rows = _latest_rows(label, workspace)
        if rows is not None:
            context["runs"].append({"heading": heading, "rows": rows})
            context["failures"] += [r for r in rows if r["failed"]]
    return context


def _training_runs(workspace: Workspace) -> tuple[list, list]:
    from predictions.models import ModelVersion

    latest = list(ModelVersion.objects.filter(workspace=workspace).defer("curves").order_by("-created_at", "-id")[:5])
    failures = [
        {"what": f"training of {v.target} model #{v.pk}", "status": v.status, "reason": v.failure_reason,
         "at": v.finished_at or v.created_at, "failed": True}
        for v in latest if v.status == "failed"
    ]
    return latest, failures


def _latest_rows(label: str, workspace: Workspace) -> list[dict[str, Any]] | None:
    """The five newest rows of an optional run model (None when that app is not installed)."""
    try:
        model = apps.get_model(label)
    except LookupError:
        return None
    if not _has_field(model, "workspace"):  # not a per-workspace run model: nothing to show safely
        return None
    order = next((f for f in ("started_at", "created_at", "at") if _has_field(model, f)), "pk")
    rows = []
    for obj in model.objects.filter(workspace=workspace).order_by(f"-{order}")[:5]:
        status = str(getattr(obj, "status", "") or "")
        rows.append({"what": str(obj), "status": status, "at": getattr(obj, order, None),
                     "reason": str(getattr(obj, "error", "") or getattr(obj, "failure_reason", "") or ""),
                     "failed": status in FAILED})
    return rows


def _has_field(model, name: str) -> bool:
    return any(f.name == name for f in model._meta.get_fields())


def contact_search(*, workspace: Workspace, query: str = "") -> QuerySet:
    """Contacts whose id or e-mail contains `query` (all when empty), most recently seen first."""
    qs = Contact.objects.filter(workspace=workspace)
    query = (query or "").strip()
    if query:
        qs = qs.filter(Q(external_id__icontains=query) | Q(email__icontains=query))
    return qs.order_by("-last_seen", "external_id")


def contact_get(*, workspace: Workspace, external_id: str) -> Contact | None:
    """One contact of this workspace by its external id, or None (another tenant's id included)."""
    return Contact.objects.filter(workspace=workspace, external_id=external_id).first()


def contact_timeline(*, contact: Contact, limit: int = TIMELINE_LIMIT) -> list[Event]:
    """The contact's newest events, newest first (its campaign with it)."""
    return list(Event.objects.filter(contact=contact).select_related("campaign").order_by("-timestamp", "-id")[:limit])


def contact_segment_history(*, contact: Contact) -> list[dict[str, Any]]:
    """Each stay of the contact in a segment: name, entered, exited (None while a member)."""
    from predictions.models import SegmentMembership

    rows = SegmentMembership.objects.filter(contact=contact).select_related("segment").order_by("-entered_at")
    return [{"segment": m.segment.name, "entered_at": m.entered_at, "exited_at": m.exited_at} for m in rows[:100]]


def contact_latest_scores(*, contact: Contact) -> list:
    """The contact's newest stored score per target (any model version), with its factors."""
    from predictions.models import ContactScore

    out, seen = [], set()
    for score in ContactScore.objects.filter(contact=contact, is_current=True).select_related("model_version").order_by("-scored_at"):
        if score.target not in seen:
            seen.add(score.target)
            out.append(score)
    return out


def workspace_event_names(*, workspace: Workspace, limit: int = 300) -> list[str]:
    """The workspace's event names, most frequent first (for step pickers)."""
    rows = Event.objects.filter(workspace=workspace).values("name").annotate(n=Count("id")).order_by("-n", "name")
    return [r["name"] for r in rows[:limit]]


def workspace_settings(*, workspace: Workspace) -> dict[str, Any]:
    """The stage map (overrides and the names seen with their stage), API keys and members.

    A name's stage is the map's (funnel_site.events.stages: the one derivation); a repeat purchase
    is loyalty per event, which a per-name table cannot show."""
    from funnel_site.events.stages import StageResolver

    resolver = StageResolver.for_workspace(workspace.id)
    names = [
        {**row, "stage": resolver.stage_of(row["name"])}
        for row in Event.objects.filter(workspace=workspace).values("name").annotate(n=Count("id")).order_by("-n")[:100]
    ]
    return {
        "mappings": list(StageMapping.objects.filter(workspace=workspace).order_by("event_name")),
        "seen_names": names,
        "stages": STAGES,
        "api_keys": list(ApiKey.objects.filter(workspace=workspace).order_by("revoked_at", "-created_at")),
        "members": list(Membership.objects.filter(workspace=workspace).select_related("user").order_by("user__username")),
        "roles": Membership.Role.choices,
    }


def model_scores(*, workspace: Workspace, model_id: int):
    """(the model version or None, an iterator of (contact id, e-mail, probability, as_of)), most likely first."""
    from predictions.models import ContactScore, ModelVersion

    version = ModelVersion.objects.filter(workspace=workspace, pk=model_id).defer("curves").first()
    if version is None:
        return None, iter(())
    rows = (ContactScore.objects.filter(model_version=version, is_current=True).order_by("-probability", "contact_id")
            .values_list("contact__external_id", "contact__email", "probability", "as_of").iterator(chunk_size=5000))
    return version, rows
