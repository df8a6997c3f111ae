"""The funnel pages of the web UI: the explorer (form, bars, histogram, breakdown, trend, saved
funnels) and the five-stage marketing funnel. Thin: parse the form, call a selector, render."""

from __future__ import annotations

import csv
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from funnel_site.dashboard import charts as ui_charts
from funnel_site.dashboard.selectors import workspace_event_names
from funnel_site.dashboard.views import workspace_for
from funnel_site.events.columns import ReadModelUnavailable
from funnel_site.events.roles import EDITOR
from funnel_site.events.stages import STAGES
from funnel_site.funnels import charts
from funnel_site.funnels.engine import FunnelDefinitionError, FunnelTimeoutError
from funnel_site.funnels.forms import FunnelExplorerForm, initial_from_definition
from funnel_site.funnels.marketing import marketing_funnel_report
from funnel_site.funnels.selectors import (
    funnel_contacts_page,
    funnel_query,
    saved_funnel_get,
    saved_funnel_list,
)
from funnel_site.funnels.services import saved_funnel_create, saved_funnel_delete
from funnel_site.funnels.spec import funnel_spec_parse, parse_moment

EXAMPLE_STEPS = "Page Viewed,Product Added,Checkout Started,Order Completed"


def _result_context(payload: dict[str, Any]) -> dict[str, Any]:
    steps = [
        {**s, "from_previous": charts.percent(s["conversion_from_previous"]),
         "from_start": charts.percent(s["conversion_from_start"]),
         "median": charts.human_seconds(s["median_seconds_from_previous"])}
        for s in payload["steps"]
    ]
    breakdown = [
        {"value": item["value"] if item["value"] is not None else "(none)",
         "cells": [{"count": s["count"], "rate": charts.percent(s["conversion_from_start"])} for s in item["steps"]]}
        for item in payload.get("breakdown") or []
    ]
    unit = "attempts" if payload.get("count") == "totals" else "contacts"
    return {
        "result": payload,
        "steps": steps,
        "bars": ui_charts.funnel_spec([s["event"] for s in payload["steps"]], [s["count"] for s in payload["steps"]],
                                      [s["conversion_from_start"] for s in payload["steps"]], y_title=unit),
        "histogram": charts.histogram_spec(payload["time_to_convert_histogram"]),
        "trend": charts.trend_spec(payload["trend"]),
        "breakdown_rows": breakdown,
    }


def _csv(payload: dict[str, Any], name: str) -> HttpResponse:
    """The steps (and the breakdown, one row per value and step) as CSV."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    writer = csv.writer(response)
    writer.writerow(["breakdown", "step", "event", "count", "conversion_from_previous", "conversion_from_start",
                     "median_seconds_from_previous"])
    for s in payload["steps"]:
        writer.writerow(["", s["step"], s["event"], s["count"], s["conversion_from_previous"],
                         s["conversion_from_start"], s["median_seconds_from_previous"]])
    for item in payload.get("breakdown") or []:
        for i, s in enumerate(item["steps"], start=1):
            writer.writerow([item["value"] if item["value"] is not None else "(none)", i, payload["steps"][i - 1]["event"],
                             s["count"], s.get("conversion_from_previous"), s.get("conversion_from_start"), ""])
    return response


@login_required
def funnel_explorer(request, slug: str):
    """The explorer: a query from the form (or a saved funnel, `?saved=ID`) and its charts."""
    workspace = workspace_for(request, slug)
    context: dict[str, Any] = {"workspace": workspace, "saved": saved_funnel_list(workspace=workspace),
                               "event_names": workspace_event_names(workspace=workspace), "stages": STAGES}
    saved_id = request.GET.get("saved")
    saved_definition = None
    if saved_id and saved_id.isdigit():
        funnel = saved_funnel_get(workspace=workspace, funnel_id=int(saved_id))
        form = FunnelExplorerForm(initial_from_definition(funnel.definition))
        saved_definition = funnel.definition  # run as saved: its filters are not all in the form
        context["current_saved"] = funnel
    elif "steps" in request.GET:
        form = FunnelExplorerForm(request.GET)
    else:
        form = FunnelExplorerForm(initial={"steps": EXAMPLE_STEPS, "window": "14d"})
    context["form"] = form
    if form.is_bound and form.is_valid():
        try:
            spec = funnel_spec_parse(saved_definition or form.to_query())
            run = funnel_query(workspace=workspace, spec=spec)
        except FunnelDefinitionError as exc:
            context["error"] = f"{exc.field}: {exc.reason}"
        except (FunnelTimeoutError, ReadModelUnavailable) as exc:
            context["error"] = str(exc)
        else:
            if request.GET.get("format") == "csv":
                return _csv(run.payload, f"funnel-{workspace.slug}")
            context.update(_result_context(run.payload))
            dropped = request.GET.get("dropped", "")
            if dropped.isdigit() and 2 <= int(dropped) <= len(run.payload["steps"]):
                context["dropped"] = funnel_contacts_page(run=run, step=int(dropped), status="dropped", limit=50)
            context["query_string"] = urlencode(form.to_query_string()) if not saved_definition else f"saved={saved_id}"
    return render(request, "funnels/explorer.html", context)


@login_required
@require_POST
def funnel_save(request, slug: str):
    """Save the explorer's current query under a name, then open it."""
    workspace = workspace_for(request, slug, role=EDITOR)
    form = FunnelExplorerForm(request.POST)
    explorer = reverse("funnels_ui:explorer", args=[slug])
    if not form.is_valid():
        messages.error(request, "the funnel to save is incomplete: give its steps")
        return redirect(explorer)
    try:
        funnel = saved_funnel_create(workspace=workspace, name=request.POST.get("name", ""), definition=form.to_query())
    except FunnelDefinitionError as exc:
        messages.error(request, f"not saved: {exc.field}: {exc.reason}")
        return redirect(f"{explorer}?{urlencode(form.to_query_string())}")
    messages.success(request, f"saved funnel {funnel.name!r}")
    return redirect(f"{explorer}?saved={funnel.id}")


@login_required
@require_POST
def funnel_delete(request, slug: str, pk: int):
    """Delete a saved funnel."""
    workspace = workspace_for(request, slug, role=EDITOR)
    funnel = saved_funnel_get(workspace=workspace, funnel_id=pk)
    saved_funnel_delete(funnel=funnel)
    messages.success(request, f"deleted funnel {funnel.name!r}")
    return redirect("funnels_ui:explorer", slug=slug)


@login_required
def marketing_funnel(request, slug: str):
    """Awareness -> interest -> consideration -> purchase -> loyalty, overall, per campaign and channel."""
    workspace = workspace_for(request, slug)
    context: dict[str, Any] = {"workspace": workspace, "since": request.GET.get("since", ""),
                               "until": request.GET.get("until", "")}
    try:
        since = parse_moment(context["since"], "since")
        until = parse_moment(context["until"], "until")
        if since and until and since >= until:
            raise FunnelDefinitionError(field="until", reason="`until` must be after `since`")
    except FunnelDefinitionError as exc:
        context["error"] = f"{exc.field}: {exc.reason}"
        return render(request, "funnels/marketing.html", context)
    report = marketing_funnel_report(workspace=workspace, since=since, until=until)
    for row in report["stages"]:
        row["from_previous"] = charts.percent(row["conversion_from_previous"])
        row["from_start"] = charts.percent(row["conversion_from_start"])
    for group in report["by_campaign"] + report["by_channel"]:
        group["cells"] = [{"reached": s["reached"], "rate": charts.percent(s["conversion_from_previous"])}
                          for s in group["stages"]]
    context["report"] = report
    context["bars"] = ui_charts.funnel_spec([s["stage"] for s in report["stages"]], [s["reached"] for s in report["stages"]],
                                            [s["conversion_from_start"] for s in report["stages"]])
    return render(request, "funnels/marketing.html", context)
