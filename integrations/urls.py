"""/api/v1 routes of integrations (included by funnel_site/urls.py)."""

from django.urls import path

from integrations import apis

urlpatterns = [
    path("destinations", apis.DestinationListApi.as_view(), name="api-destinations"),
    path("destinations/<int:pk>", apis.DestinationDetailApi.as_view(), name="api-destination"),
    path("destinations/<int:pk>/test", apis.DestinationTestApi.as_view(), name="api-destination-test"),
    path("syncs", apis.SyncListApi.as_view(), name="api-syncs"),
    path("syncs/<int:pk>", apis.SyncDetailApi.as_view(), name="api-sync"),
    path("syncs/<int:pk>/run", apis.SyncRunApi.as_view(), name="api-sync-run"),
    path("sync-runs", apis.SyncRunListApi.as_view(), name="api-sync-runs"),
    path("sync-runs/<int:pk>", apis.SyncRunDetailApi.as_view(), name="api-sync-run-detail"),
    path("sync-runs/<int:pk>/records", apis.SyncRunRecordsApi.as_view(), name="api-sync-run-records"),
    path("webhook-sources", apis.WebhookSourceListApi.as_view(), name="api-webhook-sources"),
    path("webhook-sources/<int:pk>", apis.WebhookSourceDetailApi.as_view(), name="api-webhook-source"),
    path("webhook-deliveries", apis.WebhookDeliveryListApi.as_view(), name="api-webhook-deliveries"),
    path("webhook-deliveries/<int:pk>/replay", apis.WebhookDeliveryReplayApi.as_view(), name="api-webhook-replay"),
]
