"""The train / score / explain commands keep the public contract: JSON keys, exit codes, CSV header."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from predictions.models import ContactScore, ModelVersion

pytestmark = pytest.mark.django_db


def run(*args) -> dict:
    out = io.StringIO()
    call_command(*args, "--json", stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.mark.parametrize("args, message", [
    (["--horizon", "0d"], "--horizon must be longer than zero"),
    (["--horizon", "soon"], "is not a duration"),
    (["--horizon", "14d", "--lookback", "7d"], "must not be shorter than the horizon"),
    (["--cutoff", "yesterday"], "is not an ISO-8601"),
    (["--epochs", "0"], "epochs must be at least 1"),
])
def test_train_refuses_bad_input_before_queuing(workspace_with_key, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("train", "--workspace", "acme", "--target", "purchase", *args)
    assert not ModelVersion.objects.exists()


def test_train_refuses_an_unknown_workspace_and_target(db):
    with pytest.raises(CommandError, match="workspace 'nosuch' does not exist"):
        call_command("train", "--workspace", "nosuch", "--target", "purchase")
    with pytest.raises(CommandError):
        call_command("train", "--workspace", "nosuch", "--target", "revenue")


def test_train_without_wait_prints_the_queued_model(workspace_with_key, monkeypatch):
    monkeypatch.setattr("predictions.services._send_training", lambda version: None)
    payload = run("train", "--workspace", "acme", "--target", "churn", "--horizon", "7d", "--lookback", "14d")
    assert {"model_id", "status", "metrics", "baselines"} <= set(payload) and payload["status"] == "queued"
    assert ModelVersion.objects.get(pk=payload["model_id"]).config["train"]["lookback_seconds"] == 14 * 86400


def test_score_writes_csv_of_every_eligible_contact_and_stores_scores(synthetic_workspace, make_version, tmp_path):
    version = make_version(synthetic_workspace)
    output = tmp_path / "scores.csv"
    payload = run("score", "--workspace", "acme", "--target", "purchase", "--output", str(output))
    assert {"model_id", "target", "as_of", "scored", "output"} <= set(payload)
    assert payload["model_id"] == version.pk and payload["scored"] > 100
    rows = list(csv.reader(output.open()))
    assert rows[0][:2] == ["contact_id", "probability"]
    assert len(rows) - 1 == payload["scored"] == ContactScore.objects.filter(model_version=version).count()
    probabilities = [float(r[1]) for r in rows[1:]]
    assert probabilities == sorted(probabilities, reverse=True) and all(0 < p < 1 for p in probabilities)
    assert rows[1][0].startswith("syn3-")  # the contact's own id, not a database id
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_score_without_an_active_model_or_with_a_corrupt_one_fails_with_the_reason(synthetic_workspace,
                                                                                  make_version, tmp_path):
    with pytest.raises(CommandError, match="has no active churn model"):
        call_command("score", "--workspace", "acme", "--target", "churn")
    version = make_version(synthetic_workspace)
    Path(version.artifact_path, "calibration.json").write_text("{}")
    output = tmp_path / "x.csv"
    with pytest.raises(CommandError, match="calibration.json is corrupt"):
        call_command("score", "--workspace", "acme", "--output", str(output))
    assert not output.exists()
    with pytest.raises(CommandError, match="model 99999 does not exist"):
        call_command("score", "--workspace", "acme", "--model", "99999")


def test_explain_gives_the_score_and_factors_in_words(synthetic_workspace, make_version):
    version = make_version(synthetic_workspace)
    # the same list as GET /api/v1/contacts/{id}/predictions: newest score per target
    [payload] = run("explain", "--workspace", "acme", "--contact", "syn3-1")
    assert {"target", "probability", "percentile", "model_id", "scored_at", "base_value", "factors"} <= set(payload)
    assert payload["model_id"] == version.pk and payload["target"] == "purchase"
    assert 0 < payload["probability"] < 1 and 1 <= len(payload["factors"]) <= 3
    assert all(isinstance(f["text"], str) and f["text"] and isinstance(f["value"], float)
               for f in payload["factors"])
    out = io.StringIO()
    call_command("explain", "--workspace", "acme", "--contact", "syn3-1", stdout=out)
    assert "chance it buys within 7 days" in out.getvalue()
    with pytest.raises(CommandError, match="contact 'ghost' does not exist"):
        call_command("explain", "--workspace", "acme", "--contact", "ghost")


@pytest.mark.django_db(transaction=True)
def test_score_waits_for_a_run_in_flight_then_scores_itself(synthetic_workspace, make_version):
    """Activation queues a scoring run; `score` right after it waits for that run, then runs its own
    (the contract smoke test calls `score` just after `train --wait`)."""
    import threading

    from predictions.models import ScoringRun

    version = make_version(synthetic_workspace)
    busy = ScoringRun.objects.create(workspace=version.workspace, model_version=version, target=version.target,
                                     trigger="activation")

    def finish() -> None:
        from django.db import connection

        ScoringRun.objects.filter(pk=busy.pk).update(status=ScoringRun.Status.FAILED, error="test: ended")
        connection.close()

    threading.Timer(1.5, finish).start()
    payload = run("score", "--workspace", "acme", "--target", "purchase")
    assert payload["status"] == "succeeded" and payload["run_id"] != busy.pk and payload["scored"] > 100
