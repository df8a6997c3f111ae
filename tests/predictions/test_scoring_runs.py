"""Scoring runs in this process: shards, the atomic switch to a run's scores, percentiles, failures.

Oracles come from the definitions: a run scores every contact with an own event in the lookback
before the cut-off (the newest activity + 1 s), with the stored model's probabilities; its percentile
is 100 x the share of the run's contacts whose raw score is at or below the contact's.
"""

from __future__ import annotations

import numpy as np
import pytest

from funnel_site.events.models import Contact
from predictions.frames import contacts_frame, workspace_frame
from predictions.models import ContactScore, ScoringRun
from predictions.scoring import (
    scorer_for,
    scoring_run_execute,
    scoring_run_finish,
    scoring_run_plan,
    scoring_shard_run,
)
from predictions.services import ScoringInProgress, scoring_run_queue
from predictions.signals import scores_updated

pytestmark = pytest.mark.django_db


@pytest.fixture
def received():
    """Every scores_updated sent during the test."""
    got = []

    def listener(sender, signal, **kwargs):
        got.append(kwargs)

    scores_updated.connect(listener, dispatch_uid="test-scoring-runs")
    yield got
    scores_updated.disconnect(dispatch_uid="test-scoring-runs")


def _run(version, **kwargs):
    run = scoring_run_queue(version=version, trigger="cli", send=False)
    return scoring_run_execute(run_id=run.pk)


def test_a_sharded_run_scores_every_eligible_contact_like_the_model_on_the_whole_workspace(
    synthetic_workspace, make_version, settings, received, django_capture_on_commit_callbacks
):
    settings.PREDICTION_SCORE_SHARD_SIZE = 60
    version = make_version(synthetic_workspace)
    with django_capture_on_commit_callbacks(execute=True):
        run = _run(version)
    assert run.status == ScoringRun.Status.SUCCEEDED, run.error
    assert run.shards >= 3

    # the reference: the model on the whole workspace's frame, as of the newest own event + 1 s
    frame = workspace_frame(workspace_id=synthetic_workspace.pk)
    reference = scorer_for(version).score(frame, cutoff=int(run.as_of.timestamp()))
    rows = {s.contact_id: s for s in ContactScore.objects.filter(workspace=synthetic_workspace, is_current=True)}
    assert set(rows) == set(reference.contacts.tolist())
    assert run.counts["scored"] == len(rows) == run.counts["eligible"]
    for contact, probability in zip(reference.contacts.tolist(), reference.probabilities.tolist(), strict=True):
        assert rows[contact].probability == pytest.approx(probability, abs=1e-6)
        assert rows[contact].scoring_run_id == run.pk and rows[contact].model_version_id == version.pk

    # percentile: share of the run ranked at or below, by raw score (equal raw scores: by contact id,
    # so no tie decides a top-N list), so ranking by it is ranking by raw score
    keys = [(r.raw_score, c) for c, r in rows.items()]
    for contact, row in rows.items():
        at_or_below = sum(k <= (row.raw_score, contact) for k in keys)
        assert row.percentile == pytest.approx(100.0 * at_or_below / len(keys), abs=1e-6)
    assert len({r.percentile for r in rows.values()}) == len(rows)
    by_percentile = sorted(rows, key=lambda c: rows[c].percentile)
    assert by_percentile == sorted(rows, key=lambda c: (rows[c].raw_score, c))
    assert received == [{"workspace_id": synthetic_workspace.pk, "target": "purchase", "contact_ids": None,
                         "scoring_run_id": run.pk}]


def test_a_shard_read_only_its_own_contacts_events(synthetic_workspace):
    ids = sorted(Contact.objects.filter(workspace=synthetic_workspace).values_list("pk", flat=True))
    lo, hi = ids[10], ids[40]
    frame = contacts_frame(workspace_id=synthetic_workspace.pk, contact_range=(lo, hi))
    whole = workspace_frame(workspace_id=synthetic_workspace.pk)
    mine = whole.select((whole.contact >= lo) & (whole.contact <= hi))
    assert len(frame) == len(mine) > 0
    assert np.array_equal(frame.contact, mine.contact) and np.array_equal(frame.ts, mine.ts)
    assert list(frame.name) == list(mine.name) and list(frame.stage) == list(mine.stage)


def test_a_redelivered_shard_writes_nothing_twice(synthetic_workspace, make_version, settings):
    settings.PREDICTION_SCORE_SHARD_SIZE = 100
    version = make_version(synthetic_workspace)
    run = scoring_run_queue(version=version, send=False)
    bounds = scoring_run_plan(run_id=run.pk)
    first = scoring_shard_run(run_id=run.pk, first_contact=bounds[0][0], last_contact=bounds[0][1])
    again = scoring_shard_run(run_id=run.pk, first_contact=bounds[0][0], last_contact=bounds[0][1])
    assert first["scored"] == again["scored"] > 0
    assert ContactScore.objects.filter(scoring_run=run).count() == first["scored"]
    # staged rows are nobody's current scores until the run finishes
    assert not ContactScore.objects.filter(scoring_run=run, is_current=True).exists()
    results = [first] + [scoring_shard_run(run_id=run.pk, first_contact=lo, last_contact=hi) for lo, hi in bounds[1:]]
    run = scoring_run_finish(run_id=run.pk, shard_results=results)
    assert run.counts["current"] == ContactScore.objects.filter(is_current=True).count() == run.counts["scored"]


def test_a_failed_run_keeps_the_previous_scores_and_names_the_reason(synthetic_workspace, make_version):
    version = make_version(synthetic_workspace)
    first = _run(version)
    before = sorted(ContactScore.objects.filter(is_current=True).values_list("contact_id", "probability",
                                                                               "scoring_run_id"))
    assert before and first.status == "succeeded"
    from pathlib import Path

    (Path(version.artifact_path) / "calibration.json").write_bytes(b"not a calibration")  # corrupt artifact
    second = _run(version)
    assert second.status == ScoringRun.Status.FAILED
    assert "checksum" in second.error or "cannot be loaded" in second.error, second.error
    assert sorted(ContactScore.objects.filter(is_current=True).values_list(
        "contact_id", "probability", "scoring_run_id")) == before
    assert not ContactScore.objects.filter(scoring_run=second).exists()


def test_a_missing_artifact_fails_the_run(synthetic_workspace, make_version):
    import shutil

    version = make_version(synthetic_workspace)
    shutil.rmtree(version.artifact_path)
    run = _run(version)
    assert run.status == "failed" and str(version.pk) in run.error


def test_one_run_in_flight_per_model(synthetic_workspace, make_version):
    version = make_version(synthetic_workspace)
    queued = scoring_run_queue(version=version, send=False)
    with pytest.raises(ScoringInProgress) as caught:
        scoring_run_queue(version=version, send=False)
    assert caught.value.run.pk == queued.pk


def test_a_new_models_run_replaces_the_targets_current_scores(synthetic_workspace, make_version):
    old = make_version(synthetic_workspace)
    _run(old)
    old.is_active = False
    old.save(update_fields=["is_active"])
    new = make_version(synthetic_workspace)
    run = _run(new)
    current = ContactScore.objects.filter(workspace=synthetic_workspace, target="purchase", is_current=True)
    assert current.count() == run.counts["scored"]
    assert set(current.values_list("model_version_id", flat=True)) == {new.pk}


def test_the_nightly_task_queues_one_run_per_active_model(synthetic_workspace, other_workspace_with_key,
                                                          make_version, django_capture_on_commit_callbacks):
    from predictions.models import ModelVersion
    from predictions.tasks import score_active_models

    ours = make_version(synthetic_workspace)
    broken = make_version(other_workspace_with_key[0])
    ModelVersion.objects.filter(pk=broken.pk).update(artifact_path="")  # no artifact: skipped, not fatal
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run_ids = score_active_models()
    [run] = ScoringRun.objects.filter(pk__in=run_ids)
    assert run.model_version_id == ours.pk and run.trigger == "nightly" and run.status == "queued"
    assert len(callbacks) == 1, "its start task is sent once committed"
