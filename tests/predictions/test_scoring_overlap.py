"""A run in one process outside a transaction stages each shard in a second thread (PostgreSQL):
the same scores as the model on the whole workspace, each contact once, percentiles by raw score."""

from __future__ import annotations

import pytest
from django.db import connection

from predictions.frames import workspace_frame
from predictions.models import ContactScore, ScoringRun
from predictions.scoring import scorer_for, scoring_run_execute
from predictions.services import scoring_run_queue

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_run_in_one_process_stages_shards_beside_the_next_one(synthetic_workspace, make_version, settings):
    if connection.vendor != "postgresql":
        pytest.skip("the overlapped staging runs on PostgreSQL only (SQLite: shard after shard inline)")
    settings.PREDICTION_SCORE_SHARD_SIZE = 70
    version = make_version(synthetic_workspace)
    for _ in range(2):  # the second run replaces the first one's current rows
        run = scoring_run_execute(run_id=scoring_run_queue(version=version, trigger="cli", send=False).pk)
        assert run.status == ScoringRun.Status.SUCCEEDED, run.error
    assert run.shards >= 3 and all("write" in shard for shard in run.timings["shards"])

    reference = scorer_for(version).score(workspace_frame(workspace_id=synthetic_workspace.pk),
                                          cutoff=int(run.as_of.timestamp()))
    rows = {s.contact_id: s for s in ContactScore.objects.filter(workspace=synthetic_workspace, is_current=True)}
    assert set(rows) == set(reference.contacts.tolist())
    assert ContactScore.objects.filter(workspace=synthetic_workspace).count() == len(rows)  # nothing staged twice
    assert run.counts["scored"] == run.counts["current"] == len(rows)
    for contact, probability in zip(reference.contacts.tolist(), reference.probabilities.tolist(), strict=True):
        assert rows[contact].probability == pytest.approx(probability, abs=1e-6)
        assert rows[contact].scoring_run_id == run.pk
    keys = sorted((r.raw_score, c) for c, r in rows.items())
    for rank, (_, contact) in enumerate(keys, start=1):
        assert rows[contact].percentile == pytest.approx(100.0 * rank / len(keys), abs=1e-6)
