"""The /api/v1 models and predictions endpoints (no worker: trainings are only queued here)."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest

from predictions.models import ContactScore, ModelVersion

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_tasks():
    """Nothing reaches a broker: sending is replaced."""
    with mock.patch("predictions.services._send_training") as send, mock.patch("predictions.services.scoring_queue"):
        yield send


@pytest.mark.parametrize("body, message", [
    ({"target": "revenue"}, "target: "),
    ({"target": "purchase", "horizon": "0d"}, "horizon: must be a duration longer than zero"),
    ({"target": "purchase", "horizon": "14d", "lookback": "7d"}, "must not be shorter"),
    ({"target": "purchase", "horizon": "soon"}, "horizon: "),
    ({"target": "purchase", "options": {"units": -1}}, "units must be at least 1"),
])
def test_post_models_refuses_bad_input_before_queuing(api, no_tasks, body, message):
    resp = api.post("/api/v1/models", body, format="json")
    assert resp.status_code == 400 and message in resp.json()["error"], resp.content
    assert not ModelVersion.objects.exists()
    no_tasks.assert_not_called()


def test_post_models_queues_one_training_per_target(api):
    resp = api.post("/api/v1/models", {"target": "purchase", "horizon": "3d", "lookback": "14d", "arch": "gru"},
                    format="json")
    assert resp.status_code == 202 and resp.json()["status"] == "queued" and resp.json()["arch"] == "gru"
    assert resp.json()["horizon_seconds"] == 3 * 86400
    again = api.post("/api/v1/models", {"target": "purchase"}, format="json")
    assert again.status_code == 409 and "already queued" in again.json()["error"]
    listed = api.get("/api/v1/models?target=purchase").json()
    assert listed["count"] == 1 and listed["results"][0]["model_id"] == resp.json()["model_id"]
    model_id = resp.json()["model_id"]
    assert api.post(f"/api/v1/models/{model_id}/activate").status_code == 409
    assert api.post(f"/api/v1/models/{model_id}/cancel").json()["status"] == "cancelled"
    assert api.get("/api/v1/models/424242").status_code == 404


def test_activate_refuses_a_corrupt_artifact_and_keeps_the_active_model(api, synthetic_workspace, make_version):
    active = make_version(synthetic_workspace, active=True)
    candidate = make_version(synthetic_workspace, active=False)
    Path(candidate.artifact_path, "manifest.json").unlink()
    resp = api.post(f"/api/v1/models/{candidate.pk}/activate")
    assert resp.status_code == 409 and "has no manifest.json" in resp.json()["error"]
    active.refresh_from_db()
    assert active.is_active
    body = api.get(f"/api/v1/models/{active.pk}").json()
    assert body["is_active"] and body["metrics"]["roc_auc"] is not None and body["baselines"]


def test_predictions_list_and_detail(api, synthetic_workspace, make_version):
    assert api.get("/api/v1/predictions?target=purchase").status_code == 404  # no active model yet
    version = make_version(synthetic_workspace)
    contacts = list(synthetic_workspace.contacts.order_by("id")[:3])
    for n, contact in enumerate(contacts):
        ContactScore.objects.create(workspace=synthetic_workspace, model_version=version, contact=contact,
                                    target="purchase", probability=0.1 * (n + 1), as_of=version.created_at,
                                    factors=[{"text": "Added to cart 2 days ago", "contribution": 0.2,
                                              "kind": "event"}], explained_at=version.created_at)
    page = api.get("/api/v1/predictions?target=purchase&limit=2").json()
    assert page["count"] == 3 and [r["contact_id"] for r in page["results"]] == [
        contacts[2].external_id, contacts[1].external_id]
    assert api.get("/api/v1/predictions?min_probability=0.25").json()["count"] == 1
    one = api.get(f"/api/v1/predictions/{contacts[0].external_id}?target=purchase")
    assert one.status_code == 200 and one.json()["factors"][0]["text"] == "Added to cart 2 days ago"
    assert api.get("/api/v1/predictions/nobody").status_code == 404
    assert api.get(f"/api/v1/predictions/{contacts[0].external_id}?target=churn").status_code == 404


def test_openapi_schema_lists_the_prediction_endpoints(client):
    schema = client.get("/api/schema/").content.decode()
    for path in ("/api/v1/models", "/api/v1/models/{model_id}/activate", "/api/v1/models/{model_id}/cancel",
                 "/api/v1/predictions", "/api/v1/predictions/{contact_id}"):
        assert path in schema
