"""The one navigation of the web UI: (label, URL name) entries, reversed per workspace.

An entry whose URL name does not reverse (its app is not merged or not installed) is left out, so a
page appears in the navigation as soon as its URL exists, without editing the template.
"""

from __future__ import annotations

from django.urls import NoReverseMatch, reverse

# Order is the order of the menu. Each URL takes the workspace slug.
WORKSPACE_NAV: tuple[tuple[str, str], ...] = (
    ("Overview", "dashboard:workspace"),
    ("Funnels", "funnels_ui:explorer"),
    ("Marketing funnel", "funnels_ui:marketing"),
    ("Models", "predictions:models"),
    ("Contacts", "dashboard:contacts"),
    ("Segments", "segments_ui:list"),
    ("Destinations", "integrations_ui:destinations"),
    ("Syncs", "integrations_ui:syncs"),
    ("Webhooks", "integrations_ui:webhooks"),
    ("Settings", "dashboard:settings"),
)


def _reverse(url_name: str, slug: str) -> str | None:
    for kwargs in ({"slug": slug}, None):
        try:
            return reverse(url_name, kwargs=kwargs) if kwargs else reverse(url_name, args=[slug])
        except NoReverseMatch:
            continue
    return None


def workspace_nav(*, slug: str, current_path: str) -> list[dict[str, object]]:
    """The menu of workspace `slug`: label, url and whether it is the page being shown."""
    items = []
    for label, url_name in WORKSPACE_NAV:
        url = _reverse(url_name, slug)
        if url is not None:
            items.append({"label": label, "url": url, "url_name": url_name})
    # the longest URL that prefixes the current path is the current page (Overview only on itself)
    best = max((i for i in items if current_path.startswith(i["url"])), key=lambda i: len(i["url"]), default=None)
    for item in items:
        item["current"] = item is best
    return items
