"""/api/v1/segments routes (included by funnel_site/urls.py)."""

from django.urls import path

from predictions.segments import apis

urlpatterns = [
    path("segments", apis.SegmentListApi.as_view(), name="api-segments"),
    path("segments/preview", apis.SegmentPreviewApi.as_view(), name="api-segment-preview"),
    path("segments/<int:segment_id>", apis.SegmentDetailApi.as_view(), name="api-segment"),
    path("segments/<int:segment_id>/members", apis.SegmentMembersApi.as_view(), name="api-segment-members"),
    path("segments/<int:segment_id>/refresh", apis.SegmentRefreshApi.as_view(), name="api-segment-refresh"),
    path("segments/<int:segment_id>/history", apis.SegmentHistoryApi.as_view(), name="api-segment-history"),
]
