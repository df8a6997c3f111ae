"""Web UI routes of predictions, under /dashboard/<slug>/models/ (included by funnel_site/urls.py)."""

from django.urls import path

from predictions import pages

app_name = "predictions"
urlpatterns = [
    path("", pages.models, name="models"),
    path("<int:model_id>/", pages.detail, name="detail"),
    path("<int:model_id>/status", pages.status, name="status"),
    path("<int:model_id>/activate", pages.activate, name="activate"),
    path("<int:model_id>/cancel", pages.cancel, name="cancel"),
    path("<int:model_id>/score", pages.score, name="score"),
    path("contacts/<str:contact_id>/", pages.contact, name="contact"),
]
