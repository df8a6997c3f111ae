"""Web UI pages of segments, under /dashboard/<slug>/segments/: the list with sizes, the editor
(new and detail) with a live preview, size over time and the members with their scores.

The editor builds the definition JSON in the browser (plain JS, `segments/editor.js`) and posts it;
the server parses it with the same grammar as the API. Viewers read; editors change segments.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from rest_framework import serializers

from funnel_site.dashboard.views import workspace_for
from funnel_site.events.roles import EDITOR, role_allows, user_role
from funnel_site.events.stages import STAGES
from funnel_site.funnels.models import SavedFunnel
from predictions.models import Target
from predictions.segments.definition import (
    EMAIL_OPS,
    TRAIT_OPS,
    definition_parse,
    definition_summary,
    error_fields,
)
from predictions.segments.evaluate import definition_preview
from predictions.segments.selectors import (
    SegmentNotFound,
    member_rows,
    segment_get,
    segment_history,
    segment_list,
    segment_members,
)
from predictions.segments.services import (
    SegmentError,
    segment_create,
    segment_delete,
    segment_refresh,
    segment_update,
)

MEMBERS_PER_PAGE = 50


def _segment(workspace, segment_id):
    try:
        return segment_get(workspace=workspace, segment_id=segment_id)
    except SegmentNotFound:
        raise Http404("no such segment") from None


def size_chart(sizes, *, width: int = 600, height: int = 140) -> dict:
    """Geometry of an inline SVG line of sizes over time (no JavaScript needed)."""
    if not sizes:
        return {"points": "", "dots": [], "width": width, "height": height, "max": 0}
    top = max(s.size for s in sizes) or 1
    step = width / max(len(sizes) - 1, 1)
    dots = []
    for i, s in enumerate(sizes):
        x = round(i * step if len(sizes) > 1 else width / 2, 1)
        y = round(height - 10 - s.size / top * (height - 20), 1)
        dots.append({"x": x, "y": y, "size": s.size, "at": s.at})
    return {"points": " ".join(f"{d['x']},{d['y']}" for d in dots), "dots": dots, "width": width,
            "height": height, "max": top, "first": sizes[0].at, "last": sizes[-1].at}


def _editor_context(workspace) -> dict:
    funnels = [{"id": f.id, "name": f.name, "steps": f.step_labels}
               for f in SavedFunnel.objects.filter(workspace=workspace).order_by("name")]
    return {"editor_options": {"targets": Target.values, "stages": list(STAGES), "funnels": funnels,
                               "trait_ops": list(TRAIT_OPS), "email_ops": list(EMAIL_OPS)}}


def _parse_form(request, workspace) -> tuple[dict | None, list[dict]]:
    try:
        raw = json.loads(request.POST.get("definition") or "null")
    except json.JSONDecodeError as exc:
        return None, [{"field": "definition", "error": f"not JSON: {exc}"}]
    try:
        return definition_parse(raw, workspace=workspace), []
    except serializers.ValidationError as exc:
        return None, error_fields(exc.detail, "definition")


@login_required
def segment_list_page(request, slug: str):
    """The workspace's segments with their sizes and when they were refreshed."""
    workspace = workspace_for(request, slug)
    can_edit = role_allows(role=user_role(user=request.user, workspace=workspace), needed=EDITOR)
    names = dict(SavedFunnel.objects.filter(workspace=workspace).values_list("id", "name"))
    segments = list(segment_list(workspace=workspace))
    for segment in segments:
        segment.summary = _summary(segment.definition, names)
    return render(request, "segments/list.html", {"workspace": workspace, "segments": segments,
                                                  "can_edit": can_edit})


def _summary(definition: dict, funnel_names: dict[int, str]) -> str:
    try:
        return definition_summary(definition, funnel_names=funnel_names)
    except (KeyError, TypeError, ValueError, StopIteration, AttributeError):  # an old or hand-edited shape
        return json.dumps(definition)


@login_required
def segment_new_page(request, slug: str):
    """The definition editor for a new segment (editors only); POST saves it."""
    workspace = workspace_for(request, slug, role=EDITOR)
    errors: list[dict] = []
    initial = {"name": "", "description": "", "definition": {"score": {"target": "purchase", "top_percent": 10}}}
    if request.method == "POST":
        definition, errors = _parse_form(request, workspace)
        initial = {"name": request.POST.get("name", ""), "description": request.POST.get("description", ""),
                   "definition": definition or _loose_json(request.POST.get("definition"))}
        if not initial["name"].strip():
            errors.append({"field": "name", "error": "give the segment a name"})
        if not errors:
            try:
                segment = segment_create(workspace=workspace, name=initial["name"],
                                         description=initial["description"], definition=definition)
            except SegmentError as exc:
                errors.append({"field": exc.field, "error": exc.reason})
            else:
                messages.success(request, f"Segment {segment.name!r} saved.")
                return redirect("segments_ui:detail", slug=slug, segment_id=segment.pk)
    return render(request, "segments/edit.html", {
        "workspace": workspace, "segment": None, "initial": initial, "errors": errors,
        "initial_json": json.dumps(initial["definition"], indent=1),
        **_editor_context(workspace)})


def _loose_json(text):
    try:
        return json.loads(text or "null")
    except json.JSONDecodeError:
        return None


@login_required
def segment_detail_page(request, slug: str, segment_id: int):
    """A segment: size over time, members with their scores (paginated), and the editor (editors)."""
    workspace = workspace_for(request, slug)
    segment = _segment(workspace, segment_id)
    can_edit = role_allows(role=user_role(user=request.user, workspace=workspace), needed=EDITOR)
    errors: list[dict] = []
    initial = {"name": segment.name, "description": segment.description, "definition": segment.definition}
    if request.method == "POST":
        workspace_for(request, slug, role=EDITOR)
        definition, errors = _parse_form(request, workspace)
        initial = {"name": request.POST.get("name", ""), "description": request.POST.get("description", ""),
                   "definition": definition or _loose_json(request.POST.get("definition"))}
        if not errors:
            try:
                segment_update(segment=segment, name=initial["name"], description=initial["description"],
                               definition=definition)
            except SegmentError as exc:
                errors.append({"field": exc.field, "error": exc.reason})
            else:
                messages.success(request, f"Segment {segment.name!r} saved.")
                return redirect("segments_ui:detail", slug=slug, segment_id=segment.pk)
    paginator = Paginator(segment_members(segment=segment), MEMBERS_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    members = member_rows(segment=segment, memberships=list(page.object_list))
    for row in members:
        row["score_list"] = [(target, row["scores"].get(target)) for target in Target.values]
    return render(request, "segments/detail.html", {
        "workspace": workspace, "segment": segment, "can_edit": can_edit, "initial": initial, "errors": errors,
        "page": page, "members": members, "initial_json": json.dumps(initial["definition"], indent=1),
        "chart": size_chart(segment_history(segment=segment, limit=200)), "targets": Target.values,
        "summary": _summary(segment.definition, dict(SavedFunnel.objects.filter(workspace=workspace)
                                                     .values_list("id", "name"))),
        **_editor_context(workspace)})


@login_required
@require_POST
def segment_preview_page(request, slug: str):
    """JSON for the editor's live preview: `{"size", "sample", "warnings"}` or 400 `{"error", "field"}`."""
    workspace = workspace_for(request, slug)
    try:
        raw = json.loads(request.body or b"null")
    except json.JSONDecodeError as exc:
        return JsonResponse({"error": f"body: not JSON: {exc}", "field": "body"}, status=400)
    try:
        definition = definition_parse((raw or {}).get("definition") if isinstance(raw, dict) else None,
                                      workspace=workspace)
    except serializers.ValidationError as exc:
        errors = error_fields(exc.detail, "definition")
        return JsonResponse({"error": f"{errors[0]['field']}: {errors[0]['error']}", "field": errors[0]["field"],
                             "errors": errors}, status=400)
    return JsonResponse(definition_preview(workspace=workspace, definition=definition, sample=5))


@login_required
@require_POST
def segment_refresh_page(request, slug: str, segment_id: int):
    """Refresh now (editors)."""
    workspace = workspace_for(request, slug, role=EDITOR)
    result = segment_refresh(segment=_segment(workspace, segment_id))
    messages.success(request, f"Refreshed: {result.size} members ({result.entered} entered, {result.exited} exited)."
                     + "".join(f" {w}" for w in result.warnings))
    return redirect("segments_ui:detail", slug=slug, segment_id=segment_id)


@login_required
@require_POST
def segment_delete_page(request, slug: str, segment_id: int):
    """Delete (editors)."""
    workspace = workspace_for(request, slug, role=EDITOR)
    segment = _segment(workspace, segment_id)
    segment_delete(segment=segment)
    messages.success(request, f"Segment {segment.name!r} deleted.")
    return redirect("segments_ui:list", slug=slug)
