from django.contrib.auth import views as auth_views
from django.urls import path

from funnel_site.dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.landing, name="landing"),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="dashboard/login.html"), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="/"), name="logout"),
    path("dashboard/", views.home, name="home"),
    path("dashboard/<slug:slug>/", views.workspace_overview, name="workspace"),
]
