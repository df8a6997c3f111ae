"""URL map: the admin, the dashboard, /api/v1, the Segment-compatible /v1, docs and health probes."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from funnel_site import health

api_v1 = [
    path("", include("funnel_site.events.urls")),
    path("", include("funnel_site.funnels.urls")),
    path("", include("predictions.urls")),
    path("", include("predictions.segments.urls")),
    path("", include("integrations.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("v1/", include("funnel_site.events.segment_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("dashboard/<slug:slug>/funnels/", include("funnel_site.funnels.ui_urls")),
    path("dashboard/<slug:slug>/models/", include("predictions.page_urls")),
    path("dashboard/<slug:slug>/segments/", include("predictions.segments.page_urls")),
    path("dashboard/<slug:slug>/", include("integrations.page_urls")),
    path("webhooks/", include("integrations.webhooks.urls")),
    path("", include("funnel_site.dashboard.urls")),
]

handler404 = "funnel_site.errors.not_found"
handler500 = "funnel_site.errors.server_error"
