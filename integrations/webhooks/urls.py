"""/webhooks/<source>/<workspace>/ (included by funnel_site/urls.py)."""

from django.urls import path

from integrations.webhooks.hubspot import HubSpotWebhookView
from integrations.webhooks.segment import SegmentWebhookView
from integrations.webhooks.standard import StandardWebhookView

urlpatterns = [
    path("hubspot/<slug:workspace>/", HubSpotWebhookView.as_view(), name="webhook-hubspot"),
    path("segment/<slug:workspace>/", SegmentWebhookView.as_view(), name="webhook-segment"),
    path("standard/<slug:workspace>/", StandardWebhookView.as_view(), name="webhook-standard"),
]
