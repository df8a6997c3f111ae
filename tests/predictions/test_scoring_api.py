"""The scores API: scoring runs (admin), a contact's stored predictions, inline scoring, bad input,
roles and tenancy (acme's ids tried with globex's key)."""

from __future__ import annotations

import json

import pytest

from funnel_site.events.models import ApiKey, Contact, Event
from predictions.models import ContactScore, ScoringRun
from predictions.scoring import scoring_run_execute
from predictions.services import scoring_run_queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def scored(synthetic_workspace, make_version):
    """acme with an active purchase model and a finished scoring run."""
    version = make_version(synthetic_workspace)
    run = scoring_run_execute(run_id=scoring_run_queue(version=version, send=False).pk)
    assert run.status == "succeeded"
    return version, run


def _key_with_role(workspace, role: str):
    from rest_framework.test import APIClient

    from funnel_site.events.services import api_key_create

    api_key, key = api_key_create(workspace=workspace, name=role)
    ApiKey.objects.filter(pk=api_key.pk).update(role=role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_contact_predictions_are_served_from_stored_rows_and_explained_once(api, scored):
    score = ContactScore.objects.filter(is_current=True).select_related("contact").first()
    url = f"/api/v1/contacts/{score.contact.external_id}/predictions"
    resp = api.get(url)
    assert resp.status_code == 200
    [item] = resp.json()
    assert set(item) >= {"target", "probability", "percentile", "model_id", "scored_at", "base_value", "factors"}
    assert item["target"] == "purchase" and item["model_id"] == score.model_version_id
    assert item["probability"] == pytest.approx(score.probability) and item["explained"] is False
    score.refresh_from_db()
    asked = score.explain_requested_at
    assert asked is not None, "the first read asks a worker once"
    api.get(url)
    score.refresh_from_db()
    assert score.explain_requested_at == asked, "a second poll does not ask again"

    # once the worker stored it, every read serves it as stored
    from predictions.realtime import score_explain

    explained = score_explain(score_id=score.pk)
    [item] = api.get(url).json()
    assert item["explained"] is True and item["base_value"] == pytest.approx(explained.base_value)
    assert item["factors"] and all(set(f) == {"text", "value"} for f in item["factors"])


def test_explanations_add_up_to_the_probability(scored):
    from predictions.realtime import score_explain

    score = ContactScore.objects.filter(is_current=True).first()
    explained = score_explain(score_id=score.pk)
    from predictions.frames import contacts_frame
    from predictions.ml.explain import explain_contacts
    from predictions.scoring import scorer_for

    frame = contacts_frame(workspace_id=score.workspace_id, contact_ids=[score.contact_id], before=score.as_of)
    [full] = explain_contacts(scorer_for(score.model_version), frame, [score.contact_id],
                              cutoff=int(score.as_of.timestamp()))
    assert full.probability == pytest.approx(score.probability, abs=1e-6)
    assert full.base_value + sum(f.contribution for f in full.factors) + full.other == pytest.approx(
        full.probability, abs=1e-9)
    assert explained.base_value == pytest.approx(full.base_value)


def test_unknown_contact_is_404_and_not_echoed(api, scored):
    resp = api.get("/api/v1/contacts/nobody-here/predictions")
    assert resp.status_code == 404 and b"nobody-here" not in resp.content


def test_the_old_prediction_route_never_waits(api, scored):
    score = ContactScore.objects.filter(is_current=True).select_related("contact").first()
    resp = api.get(f"/api/v1/predictions/{score.contact.external_id}")
    assert resp.status_code == 200 and resp.json()["probability"] == pytest.approx(score.probability)
    assert resp.json()["status_url"].endswith(f"/api/v1/contacts/{score.contact.external_id}/predictions")
    unscored = Contact.objects.exclude(pk__in=ContactScore.objects.values("contact_id")).first()
    resp = api.get(f"/api/v1/predictions/{unscored.external_id}")
    assert resp.status_code == 202 and "status_url" in resp.json()


def _contact_events(contact) -> list[dict]:
    return [{"event": e.name, "timestamp": e.timestamp.isoformat(), "campaign": e.campaign.key if e.campaign else None,
             "channel": e.channel or None, "value": e.value}
            for e in Event.objects.filter(contact=contact).select_related("campaign").order_by("timestamp", "id")]


def test_predict_scores_an_inline_sequence_like_the_stored_model(api, scored):
    version, run = scored
    score = ContactScore.objects.filter(is_current=True).select_related("contact").order_by("-probability").first()
    events = [{k: v for k, v in e.items() if v is not None} for e in _contact_events(score.contact)]
    body = {"target": "purchase", "events": events, "as_of": run.as_of.isoformat()}
    resp = api.post("/api/v1/predict", json.dumps(body), content_type="application/json")
    assert resp.status_code == 200, resp.content
    answer = resp.json()
    assert answer["probability"] == pytest.approx(score.probability, abs=1e-5)
    assert answer["raw_score"] == pytest.approx(score.raw_score, abs=1e-5)
    assert answer["model_id"] == version.pk and answer["unknown_events"] == []

    body["events"] = events + [{"event": "Teleported To Mars", "timestamp": events[-1]["timestamp"]}]
    answer = api.post("/api/v1/predict", json.dumps(body), content_type="application/json").json()
    assert answer["unknown_events"] == ["Teleported To Mars"] and "out-of-vocabulary" in answer["note"]


def test_predict_serves_a_newly_activated_model_and_its_newest_run(api, scored, synthetic_workspace, make_version):
    """Each process keeps the loaded model and the run's quantiles: an activation or a finished run
    is served on the very next request."""
    from predictions.services import model_version_activate

    version, run = scored
    score = ContactScore.objects.filter(is_current=True).select_related("contact").first()
    events = [{k: v for k, v in e.items() if v is not None} for e in _contact_events(score.contact)]
    body = json.dumps({"target": "purchase", "events": events, "as_of": run.as_of.isoformat()})
    first = api.post("/api/v1/predict", body, content_type="application/json").json()
    assert first["model_id"] == version.pk and first["percentile"] is not None
    assert first["percentile"] == pytest.approx(score.percentile, abs=1.0)

    newer = make_version(synthetic_workspace, active=False)
    model_version_activate(version=newer)
    answer = api.post("/api/v1/predict", body, content_type="application/json").json()
    # the new model has no run yet: no percentile, rather than one from another model's scores
    assert answer["model_id"] == newer.pk and answer["percentile"] is None

    assert scoring_run_execute(run_id=scoring_run_queue(version=newer, send=False).pk).status == "succeeded"
    answer = api.post("/api/v1/predict", body, content_type="application/json").json()
    assert answer["model_id"] == newer.pk and answer["percentile"] == pytest.approx(first["percentile"], abs=1.0)


def test_predict_bad_input_names_the_field(api, scored):
    bad = {"events": [{"event": "Product Viewed", "timestamp": "2026-01-02T00:00:00Z"},
                      {"event": "Product Viewed", "timestamp": "yesterday-ish"}]}
    resp = api.post("/api/v1/predict", json.dumps(bad), content_type="application/json")
    assert resp.status_code == 400 and resp.json()["errors"][0]["field"] == "events[1].timestamp"
    resp = api.post("/api/v1/predict", json.dumps({"target": "purchase"}), content_type="application/json")
    assert resp.status_code == 400 and "events" in resp.json()["detail"]
    resp = api.post("/api/v1/predict", json.dumps({"target": "love", "events": bad["events"][:1]}),
                    content_type="application/json")
    assert resp.status_code == 400 and "target" in resp.json()["detail"]


def test_predict_without_an_active_model_is_409_naming_the_train_command(api, scored):
    body = {"target": "churn", "events": [{"event": "Product Viewed", "timestamp": "2026-01-02T00:00:00Z"}]}
    resp = api.post("/api/v1/predict", json.dumps(body), content_type="application/json")
    assert resp.status_code == 409 and "manage.py train --workspace acme --target churn" in resp.json()["error"]


def test_scoring_runs_roles_and_detail(api, scored, synthetic_workspace, django_capture_on_commit_callbacks):
    version, run = scored
    for role in ("viewer", "editor"):
        client = _key_with_role(synthetic_workspace, role)
        assert client.post("/api/v1/scoring-runs", {}, format="json").status_code == 403
        assert client.get(f"/api/v1/scoring-runs/{run.pk}").status_code == 200
    detail = api.get(f"/api/v1/scoring-runs/{run.pk}").json()
    assert detail["status"] == "succeeded" and detail["counts"]["scored"] == run.counts["scored"]
    assert detail["model_id"] == version.pk and detail["duration_seconds"] > 0
    with django_capture_on_commit_callbacks(execute=False) as callbacks:  # the worker would start it
        resp = api.post("/api/v1/scoring-runs", {"target": "purchase"}, format="json")
    assert resp.status_code == 202 and resp.json()["status"] == "queued" and len(callbacks) == 1
    again = api.post("/api/v1/scoring-runs", {"target": "purchase"}, format="json")
    assert again.status_code == 409 and again.json()["run"]["run_id"] == resp.json()["run_id"]
    assert api.post("/api/v1/scoring-runs", {"target": "churn"}, format="json").status_code == 409
    assert api.get("/api/v1/scoring-runs").json()["results"][0]["run_id"] == resp.json()["run_id"]


def test_another_workspace_never_sees_acmes_runs_or_scores(other_api, scored):
    version, run = scored
    score = ContactScore.objects.filter(is_current=True).select_related("contact").first()
    assert other_api.get(f"/api/v1/scoring-runs/{run.pk}").status_code == 404
    assert other_api.get("/api/v1/scoring-runs").json()["results"] == []
    assert other_api.get(f"/api/v1/contacts/{score.contact.external_id}/predictions").status_code == 404
    resp = other_api.post("/api/v1/scoring-runs", {"model_id": version.pk}, format="json")
    assert resp.status_code == 404
    assert ScoringRun.objects.count() == 1
    body = {"target": "purchase", "events": [{"event": "Product Viewed", "timestamp": "2026-01-02T00:00:00Z"}]}
    assert other_api.post("/api/v1/predict", json.dumps(body), content_type="application/json").status_code == 409


def _predict_expected(workspace, events: list[dict], target: str = "purchase") -> float:
    """The probability of `events` with the stage map read afresh (no per-process cache), as /predict computes it."""
    from datetime import timedelta

    from django.utils import timezone

    from funnel_site.events.validation import validate_item
    from predictions.models import ModelVersion
    from predictions.serving import light_scorer_load, sequence_frame

    version = ModelVersion.objects.get(workspace=workspace, target=target, is_active=True)
    light = light_scorer_load(version.artifact_path)
    valid = [validate_item({"message_id": "inline", **e, "contact_id": "inline"}, now=timezone.now(),
                           max_future=timedelta(days=1)) for e in events]
    frame, cutoff = sequence_frame(workspace_id=workspace.pk, events=valid)
    return float(light.score_frame(frame, [0], cutoff)[0][0])


def test_predict_sees_a_stage_map_change_on_the_next_request(api, scored, synthetic_workspace):
    """The stage map is kept per process under the text of the mappings that the request's one
    query returns: a mapping added, changed or removed is used by the very next /predict."""
    from funnel_site.dashboard.services import stage_mapping_set
    from funnel_site.events.stages import StageResolver
    from predictions.inline import served_inline

    score = ContactScore.objects.filter(is_current=True).select_related("contact").first()
    events = [{k: v for k, v in e.items() if v is not None} for e in _contact_events(score.contact)]
    name = events[0]["event"]
    body = json.dumps({"target": "purchase", "events": events})  # no as_of: the lean validation path
    seen = []
    for stage in ("purchase", "", "consideration", "default"):  # added, changed, changed again, removed
        stage_mapping_set(workspace=synthetic_workspace, event_name=name, stage=stage)
        resolver = served_inline(workspace_id=synthetic_workspace.pk, target="purchase")[1]
        expected_stage = {"default": None}.get(stage, stage)
        if expected_stage is not None:
            assert resolver.stage_of(name) == expected_stage
        resp = api.post("/api/v1/predict", body, content_type="application/json")
        assert resp.status_code == 200, resp.content
        assert resp.json()["probability"] == pytest.approx(_predict_expected(synthetic_workspace, events), abs=1e-9)
        seen.append(resolver.stage_of(name))
    assert seen == ["purchase", "", "consideration", StageResolver().stage_of(name)]


def test_predict_lean_validation_equals_the_serializer(api, scored):
    """`_predict_body` takes only bodies the serializer accepts, with the same values; anything else
    gets the serializer's own error."""
    from rest_framework.exceptions import ValidationError

    from predictions.scoring_apis import MAX_PREDICT_EVENTS, PredictRequestSerializer, _predict_body

    event = {"event": "Product Viewed", "timestamp": "2026-01-02T00:00:00Z"}
    good = [{"events": [event]}, {"target": "churn", "events": [event] * 3}]
    for data in good:
        serializer = PredictRequestSerializer(data=data)
        assert serializer.is_valid()
        lean = _predict_body(data)
        assert lean["target"] == serializer.validated_data["target"]
        assert lean["events"] == serializer.validated_data["events"]
    bad = [{"target": "love", "events": [event]}, {"events": []}, {"events": [event] * (MAX_PREDICT_EVENTS + 1)},
           {"events": [event, "not an object"]}, {"events": "nope"}, {"target": None, "events": [event]},
           {"target": 3, "events": [event]}, {}, ["a list"]]
    for data in bad:
        serializer = PredictRequestSerializer(data=data)
        assert not serializer.is_valid()
        with pytest.raises(ValidationError) as caught:
            _predict_body(data)
        assert caught.value.detail == serializer.errors
        resp = api.post("/api/v1/predict", json.dumps(data), content_type="application/json")
        assert resp.status_code == 400
