from django.urls import path

from funnel_site.dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.landing, name="landing"),
    path("dashboard/", views.home, name="home"),
    path("dashboard/<slug:slug>/", views.workspace_overview, name="workspace"),
]
