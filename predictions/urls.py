"""/api/v1 routes of predictions (included by funnel_site/urls.py)."""

from django.urls import path

from predictions import apis, scoring_apis

urlpatterns = [
    path("models", apis.ModelListApi.as_view(), name="api-models"),
    path("models/<int:model_id>", apis.ModelDetailApi.as_view(), name="api-model"),
    path("models/<int:model_id>/activate", apis.ModelActivateApi.as_view(), name="api-model-activate"),
    path("models/<int:model_id>/cancel", apis.ModelCancelApi.as_view(), name="api-model-cancel"),
    path("predictions", apis.PredictionListApi.as_view(), name="api-predictions"),
    path("predictions/<str:contact_id>", apis.PredictionDetailApi.as_view(), name="api-prediction"),
    path("scoring-runs", scoring_apis.ScoringRunListApi.as_view(), name="api-scoring-runs"),
    path("scoring-runs/<int:run_id>", scoring_apis.ScoringRunDetailApi.as_view(), name="api-scoring-run"),
    path("contacts/<str:contact_id>/predictions", scoring_apis.ContactPredictionsApi.as_view(),
         name="api-contact-predictions"),
    path("predict", scoring_apis.PredictApi.as_view(), name="api-predict"),
]
