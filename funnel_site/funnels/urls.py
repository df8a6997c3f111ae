"""/api/v1/funnels...: queries, saved funnels, contacts of a step, the marketing report."""

from django.urls import path

from funnel_site.funnels import apis

urlpatterns = [
    path("funnels", apis.SavedFunnelListApi.as_view(), name="api-funnels"),
    path("funnels/query", apis.FunnelQueryApi.as_view(), name="api-funnel-query"),
    path("funnels/query/contacts", apis.FunnelQueryContactsApi.as_view(), name="api-funnel-query-contacts"),
    path("funnels/marketing", apis.MarketingFunnelApi.as_view(), name="api-funnel-marketing"),
    path("funnels/<int:pk>", apis.SavedFunnelDetailApi.as_view(), name="api-funnel"),
    path("funnels/<int:pk>/results", apis.SavedFunnelResultsApi.as_view(), name="api-funnel-results"),
    path("funnels/<int:pk>/contacts", apis.SavedFunnelContactsApi.as_view(), name="api-funnel-contacts"),
]
