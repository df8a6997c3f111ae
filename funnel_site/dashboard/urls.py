from django.contrib.auth import views as auth_views
from django.urls import path

from funnel_site.dashboard import contact_views, settings_views, views

app_name = "dashboard"
urlpatterns = [
    path("", views.landing, name="landing"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="dashboard/login.html"), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="/"), name="logout"),
    path("dashboard/", views.home, name="home"),
    path("dashboard/go", views.workspace_go, name="go"),
    path("dashboard/new", views.workspace_create, name="create"),
    path("dashboard/<slug:slug>/", views.workspace_overview, name="workspace"),
    path("dashboard/<slug:slug>/contacts/", contact_views.contact_list, name="contacts"),
    path("dashboard/<slug:slug>/contacts/<str:contact_id>/", contact_views.contact_detail, name="contact"),
    path("dashboard/<slug:slug>/scores/<int:model_id>.csv", contact_views.scores_csv, name="scores-csv"),
    path("dashboard/<slug:slug>/settings/", settings_views.settings_page, name="settings"),
    path("dashboard/<slug:slug>/settings/stages", settings_views.stage_map_save, name="stage-map"),
    path("dashboard/<slug:slug>/settings/keys", settings_views.api_key_new, name="key-create"),
    path("dashboard/<slug:slug>/settings/keys/<int:key_id>/revoke", settings_views.api_key_revoke, name="key-revoke"),
    path("dashboard/<slug:slug>/settings/members", settings_views.member_save, name="member-save"),
    path("dashboard/<slug:slug>/settings/members/<int:member_id>/remove", settings_views.member_remove,
         name="member-remove"),
]
