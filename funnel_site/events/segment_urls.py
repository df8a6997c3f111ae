from django.urls import path

from funnel_site.events import segment_apis

urlpatterns = [
    path("batch", segment_apis.SegmentBatchApi.as_view(), name="segment-batch"),
    path("track", segment_apis.SegmentTrackApi.as_view(), name="segment-track"),
    path("identify", segment_apis.SegmentIdentifyApi.as_view(), name="segment-identify"),
    path("page", segment_apis.SegmentPageApi.as_view(), name="segment-page"),
    path("screen", segment_apis.SegmentScreenApi.as_view(), name="segment-screen"),
]
