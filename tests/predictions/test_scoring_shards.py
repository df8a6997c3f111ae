"""Scoring in shards on a real worker process: `scoring_run_start` splits the candidate contacts into
contact-id ranges and runs a chord of `score_shard` then `score_finish` on the `scoring` queue.

The split is decided where `scoring_run_start` runs, from `PREDICTION_SCORE_SHARD_SIZE`. The session
worker may already be running (started by an earlier test with the default of 50,000), so the test
runs `scoring_run_start` itself with a small shard size: the shards and the chord's callback run
in the worker, which stages every score and switches to the run's scores at the end.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta

import numpy as np
import pytest

from funnel_site.events.models import Contact
from predictions.frames import unix_to_datetime, workspace_frame
from predictions.models import ContactScore, ScoringRun
from predictions.scoring import eligibles, scorer_for
from predictions.services import scoring_run_queue
from predictions.tasks import scoring_run_start
from tests.predictions.conftest import START

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SHARD_SIZE = 60


def ingest(workspace, *, first_contact: int, contacts: int, seed: int) -> None:
    """Synthetic contacts `first_contact ..` through the product's ingestion service."""
    from funnel_site.events.services import events_ingest
    from funnel_site.events.synthetic import generate

    items = list(generate(contacts=contacts, seed=seed, start=START, days=60, first_contact=first_contact))
    assert events_ingest(workspace=workspace, items=list(enumerate(items))).rejected == 0


def snapshot(queryset) -> dict:
    return {row.pk: (row.contact_id, row.probability, row.as_of, row.scored_at)
            for row in queryset.order_by("pk")}


def test_sharded_scoring_on_the_worker_equals_unsharded_scoring(
    celery_worker_process, workspace_with_key, other_workspace_with_key, make_version, settings
):
    acme, globex = workspace_with_key[0], other_workspace_with_key[0]
    # Interleaved contact ids: acme's shard ranges span globex's contacts, which must stay out.
    ingest(acme, first_contact=0, contacts=150, seed=3)
    ingest(globex, first_contact=0, contacts=150, seed=5)
    ingest(acme, first_contact=150, contacts=150, seed=3)
    version = make_version(acme)
    theirs = make_version(globex)

    frame = workspace_frame(workspace_id=acme.pk)
    as_of = frame.end_ts
    eligible = eligibles(version, frame, as_of)
    acme_contacts = set(Contact.objects.filter(workspace=acme).values_list("pk", flat=True))
    globex_contacts = set(Contact.objects.filter(workspace=globex).values_list("pk", flat=True))
    assert min(globex_contacts) < max(eligible) and max(globex_contacts) > min(eligible)
    ineligible = sorted(acme_contacts - set(eligible.tolist()))
    assert ineligible, "the data must hold contacts with no activity in the lookback"

    # Current scores of an earlier run: one of a contact no longer eligible (gone after the run), one
    # of an eligible contact (replaced); globex's scores (left alone).
    earlier = unix_to_datetime(as_of) - timedelta(days=1)
    gone = ContactScore.objects.create(workspace=acme, model_version=version, contact_id=ineligible[0],
                                       target="purchase", probability=0.5, as_of=earlier)
    replaced = ContactScore.objects.create(workspace=acme, model_version=version, contact_id=int(eligible[0]),
                                           target="purchase", probability=0.0, as_of=earlier)
    for contact_id in sorted(globex_contacts)[:20]:
        ContactScore.objects.create(workspace=globex, model_version=theirs, contact_id=contact_id,
                                    target="purchase", probability=0.75, as_of=earlier)
    others_before = snapshot(ContactScore.objects.filter(workspace=globex))

    # The split is decided where scoring_run_start runs: here, with a small shard size; the shards and
    # the chord's callback run in the worker.
    settings.PREDICTION_SCORE_SHARD_SIZE = SHARD_SIZE
    run = scoring_run_queue(version=version, trigger="api", send=False)
    started = time.monotonic()
    answer = scoring_run_start(run.pk)
    shards = math.ceil(len(set(Contact.objects.filter(workspace=acme, last_seen__gte=unix_to_datetime(
        as_of - version.lookback_seconds)).values_list("pk", flat=True))) / SHARD_SIZE)
    assert answer == {"run": run.pk, "shards": shards} and shards >= 3

    deadline = time.monotonic() + 180
    while True:
        run.refresh_from_db()
        if run.status not in ScoringRun.IN_FLIGHT:
            break
        assert time.monotonic() < deadline, f"the chord did not finish: {run.status} {run.counts}"
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    assert run.status == ScoringRun.Status.SUCCEEDED, run.error
    assert run.counts["shards_done"] == shards

    rows = list(ContactScore.objects.filter(workspace=acme, is_current=True).select_related("contact"))
    contacts = [row.contact_id for row in rows]
    assert len(contacts) == len(set(contacts)) == len(eligible), "exactly one score per eligible contact"
    assert set(contacts) == set(eligible.tolist())
    assert not ContactScore.objects.filter(pk__in=[gone.pk, replaced.pk]).exists()
    assert all(row.as_of == unix_to_datetime(as_of) and row.scoring_run_id == run.pk for row in rows)
    assert all(row.contact.workspace_id == acme.pk for row in rows)
    assert not ContactScore.objects.filter(workspace=acme, is_current=False).exists(), "no staged row left"

    # The same model and cut-off scored in one piece in this process gives the same probabilities.
    reference = scorer_for(version).score(frame, cutoff=as_of)
    expected = dict(zip(reference.contacts.tolist(), reference.probabilities.tolist(), strict=True))
    got = np.array([row.probability for row in rows])
    want = np.array([expected[row.contact_id] for row in rows])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)

    # globex was not touched
    assert snapshot(ContactScore.objects.filter(workspace=globex)) == others_before
    print(f"{len(eligible)} contacts in {shards} shards scored by the worker in {elapsed:.1f}s")
