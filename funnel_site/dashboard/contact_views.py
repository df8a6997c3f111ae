"""Contact pages: search and list, and one contact's timeline, scores with factors, and segments."""

from __future__ import annotations

import csv

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render

from funnel_site.dashboard import selectors
from funnel_site.dashboard.views import workspace_for


@login_required
def contact_list(request, slug: str):
    """Contacts matching `q` (id or e-mail), most recently seen first, 50 a page."""
    workspace = workspace_for(request, slug)
    query = request.GET.get("q", "").strip()
    page = Paginator(selectors.contact_search(workspace=workspace, query=query), selectors.CONTACTS_PAGE)
    return render(request, "dashboard/contacts.html", {
        "workspace": workspace, "query": query, "page": page.get_page(request.GET.get("page")),
    })


def waterfall(factors: list[dict]) -> dict:
    """Chart data of a score's factors as a waterfall: each bar runs from the running total before it
    to the total after it (raising factors in one colour, lowering ones in another)."""
    labels, spans, colours, total = [], [], [], 0.0
    for factor in factors[:12]:
        contribution = float(factor.get("contribution") or 0)
        labels.append(str(factor.get("text", ""))[:60])
        spans.append([round(total, 4), round(total + contribution, 4)])
        colours.append("#12b76a" if contribution >= 0 else "#f04438")
        total += contribution
    return {"type": "waterfall", "labels": labels, "series": [{"label": "contribution", "data": spans,
            "colors": colours}], "x_title": "contribution to the score", "horizontal": True}


@login_required
def contact_detail(request, slug: str, contact_id: str):
    """One contact: traits, scores and the factors behind each, segments entered and exited, events."""
    workspace = workspace_for(request, slug)
    contact = selectors.contact_get(workspace=workspace, external_id=contact_id)
    if contact is None:
        raise Http404("no such contact")
    scores = [{"score": s, "chart": waterfall(s.factors) if s.factors else None}
              for s in selectors.contact_latest_scores(contact=contact)]
    return render(request, "dashboard/contact.html", {
        "workspace": workspace, "contact": contact, "scores": scores,
        "segments": selectors.contact_segment_history(contact=contact),
        "events": selectors.contact_timeline(contact=contact), "timeline_limit": selectors.TIMELINE_LIMIT,
    })


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer rows."""

    def write(self, value: str) -> str:
        return value


@login_required
def scores_csv(request, slug: str, model_id: int):
    """A model's stored scores as CSV, most likely first (streamed: a workspace may have millions)."""
    workspace = workspace_for(request, slug)
    version, rows = selectors.model_scores(workspace=workspace, model_id=model_id)
    if version is None:
        raise Http404("no such model")
    writer = csv.writer(_Echo())
    header = ["contact_id", "email", "probability", "above_threshold", "model_id", "as_of"]

    def lines():
        yield writer.writerow(header)
        for external_id, email, probability, as_of in rows:
            yield writer.writerow([external_id, email, f"{probability:.6f}", int(probability >= version.threshold),
                                   version.pk, as_of.isoformat()])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="scores-{slug}-{version.target}-{version.pk}.csv"'
    return response
