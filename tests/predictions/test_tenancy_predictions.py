"""Another workspace's key never reads, activates or cancels acme's models or reads its scores."""

from __future__ import annotations

from unittest import mock

import pytest

from predictions.models import ContactScore, ModelVersion

pytestmark = pytest.mark.django_db


def test_models_and_scores_of_acme_are_invisible_to_globex(api, other_api, synthetic_workspace, make_version):
    active = make_version(synthetic_workspace, active=True)
    queued = ModelVersion.objects.create(workspace=synthetic_workspace, target="churn", config={})
    contact = synthetic_workspace.contacts.first()
    ContactScore.objects.create(workspace=synthetic_workspace, model_version=active, contact=contact,
                                target="purchase", probability=0.9, as_of=active.created_at,
                                factors=[{"text": "x", "contribution": 1, "kind": "event"}],
                                explained_at=active.created_at)
    for path in (f"/api/v1/models/{active.pk}", f"/api/v1/models/{queued.pk}"):
        assert other_api.get(path).status_code == 404
    with mock.patch("predictions.services.scoring_queue"):
        assert other_api.post(f"/api/v1/models/{active.pk}/activate").status_code == 404
        assert other_api.post(f"/api/v1/models/{queued.pk}/cancel").status_code == 404
    assert other_api.get("/api/v1/models").json()["count"] == 0
    assert other_api.get("/api/v1/predictions").status_code == 404  # globex has no active model
    assert other_api.get(f"/api/v1/predictions/{contact.external_id}").status_code == 404
    queued.refresh_from_db()
    assert queued.status == "queued"
    # and acme itself sees all of it
    assert api.get("/api/v1/models").json()["count"] == 2
    assert api.get(f"/api/v1/predictions/{contact.external_id}").json()["probability"] == 0.9
