"""The funnel pages of a workspace, under /dashboard/<slug>/funnels/."""

from django.urls import path

from funnel_site.funnels import views

app_name = "funnels_ui"
urlpatterns = [
    path("", views.funnel_explorer, name="explorer"),
    path("save", views.funnel_save, name="save"),
    path("<int:pk>/delete", views.funnel_delete, name="delete"),
    path("marketing/", views.marketing_funnel, name="marketing"),
]
