"""Error pages: JSON under /api/ and /v1/ (clients parse one error body), HTML elsewhere."""

from __future__ import annotations

from django.http import JsonResponse
from django.views import defaults

_API_PREFIXES = ("/api/", "/v1/")


def not_found(request, exception):
    """404 for a URL no route matches (e.g. /api/v1/models/abc)."""
    if request.path.startswith(_API_PREFIXES):
        return JsonResponse({"error": f"no such endpoint or object: {request.path}", "field": None}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """500: JSON for API clients (no details: those are in the log, with the traceback)."""
    if request.path.startswith(_API_PREFIXES):
        return JsonResponse({"error": "internal error: it is logged; retrying may help", "field": None}, status=500)
    return defaults.server_error(request)
