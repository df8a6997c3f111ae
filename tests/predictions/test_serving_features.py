"""A scoring shard's features are training's features, bit for bit, for the same contacts and cut-off.

Training builds its inputs from the whole workspace's frame (`workspace_frame`) with the model's
preprocessor (`build_inputs`); a shard reads only its contact range (`contacts_frame`, slices of
the read model) as of the run's cut-off and builds them through the scorer, a batch at a time
with the frame encoded once. The oracle is the training path itself: every array must be equal
(floats compared by their bytes), and each step must point at the same event (contact, time, name).
"""

from __future__ import annotations

import numpy as np
import pytest

from funnel_site.events.models import Contact
from predictions.frames import contacts_frame, unix_to_datetime, workspace_frame
from predictions.ml.inputs import build_inputs
from predictions.ml.labels import Samples, eligible_contacts
from predictions.scoring import _raw_scores, scorer_for

pytestmark = pytest.mark.django_db


def _bytes_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == \
        np.ascontiguousarray(b).tobytes()


def test_shard_features_equal_training_features_for_the_same_contacts(synthetic_workspace, make_version):
    version = make_version(synthetic_workspace)
    scorer = scorer_for(version)
    whole = workspace_frame(workspace_id=synthetic_workspace.pk)
    cutoff = whole.end_ts
    ids = sorted(Contact.objects.filter(workspace=synthetic_workspace).values_list("pk", flat=True))
    first, last = ids[40], ids[260]

    shard = contacts_frame(workspace_id=synthetic_workspace.pk, contact_range=(first, last),
                           before=unix_to_datetime(cutoff))
    eligible = eligible_contacts(shard, cutoff, version.lookback_seconds)
    assert len(eligible) > 100
    samples = scorer.samples(shard, cutoff, eligible)
    # training's path: the whole workspace's frame, the same samples
    trained = build_inputs(scorer.preprocessor, whole, samples, scorer.target)
    served = scorer.inputs(shard, samples)

    for key in ("event_name", "stage", "campaign", "channel", "numeric", "aggregates", "raw_aggregates"):
        assert _bytes_equal(getattr(served.batch, key), getattr(trained.batch, key)), key
    assert _bytes_equal(served.history, trained.history) and _bytes_equal(served.symbols, trained.symbols)
    # every step is the same event of the same contact (row numbers differ: other frames)
    real = served.batch.event_rows >= 0
    assert np.array_equal(real, trained.batch.event_rows >= 0) and real.any()
    for column in ("contact", "ts", "name", "channel", "campaign"):
        assert np.array_equal(getattr(shard, column)[served.batch.event_rows[real]],
                              getattr(whole, column)[trained.batch.event_rows[real]]), column

    # the shard's batched scoring gives the whole-batch scores exactly (the encoding is reused, not stale)
    raw, _, _ = _raw_scores(scorer, shard, samples, batch=37)
    assert _bytes_equal(raw, scorer.raw_scores(trained))
    other = Samples(samples.contacts[::-1].copy(), samples.cutoffs, samples.labels)
    assert _bytes_equal(scorer.inputs(shard, other).batch.numeric, served.batch.numeric[::-1])
