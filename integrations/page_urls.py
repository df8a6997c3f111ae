"""Web UI routes of integrations under /dashboard/<slug>/ (included by funnel_site/urls.py)."""

from django.urls import path

from integrations import pages

app_name = "integrations_ui"
urlpatterns = [
    path("destinations/", pages.destinations, name="destinations"),
    path("destinations/<int:pk>/test", pages.destination_test_page, name="destination-test"),
    path("syncs/", pages.syncs, name="syncs"),
    path("syncs/<int:pk>/run", pages.sync_run_page, name="sync-run"),
    path("syncs/runs/<int:pk>/", pages.run_detail, name="run"),
    path("webhooks/", pages.webhooks, name="webhooks"),
    path("webhooks/<int:pk>/replay", pages.replay, name="replay"),
]
