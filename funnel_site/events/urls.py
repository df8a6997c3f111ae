from django.urls import path

from funnel_site.events import apis

urlpatterns = [
    path("events", apis.EventsApi.as_view(), name="api-events"),
    path("contacts", apis.ContactListApi.as_view(), name="api-contacts"),
    path("contacts/<str:external_id>", apis.ContactDetailApi.as_view(), name="api-contact"),
    path("campaigns", apis.CampaignListApi.as_view(), name="api-campaigns"),
    path("workspace", apis.WorkspaceApi.as_view(), name="api-workspace"),
]
