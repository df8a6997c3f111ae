"""Web UI routes of segments, under /dashboard/<slug>/segments/ (included by funnel_site/urls.py)."""

from django.urls import path

from predictions.segments import pages

app_name = "segments_ui"
urlpatterns = [
    path("", pages.segment_list_page, name="list"),
    path("new/", pages.segment_new_page, name="new"),
    path("preview", pages.segment_preview_page, name="preview"),
    path("<int:segment_id>/", pages.segment_detail_page, name="detail"),
    path("<int:segment_id>/refresh", pages.segment_refresh_page, name="refresh"),
    path("<int:segment_id>/delete", pages.segment_delete_page, name="delete"),
]
