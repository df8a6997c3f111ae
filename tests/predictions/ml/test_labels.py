import numpy as np
import pytest

from predictions.ml.config import TrainConfig
from predictions.ml.data import EventFrame
from predictions.ml.errors import NotEnoughData
from predictions.ml.labels import build_split, cutoff_schedule, label_cutoff

H = 10
CONFIG = TrainConfig(
    horizon_seconds=H,
    lookback_seconds=20,
    n_cutoffs=2,
    min_positives=1,
    min_negatives=1,
    min_validation_per_class=1,
)


def frame_of(rows):
    contact, ts, name = zip(*rows, strict=False)
    return EventFrame.from_arrays(contact, ts, name, is_purchase=[n == "buy" for n in name])


def test_purchase_and_churn_labels_follow_the_definition():
    frame = frame_of(
        [
            (1, 95, "pv"),
            (1, 100, "buy"),  # buys at the cut-off: inside [c, c + h)
            (2, 81, "pv"),
            (2, 109, "pv"),  # active in the horizon, no purchase
            (3, 85, "pv"),
            (3, 110, "buy"),  # buys at c + h: outside the horizon
            (4, 70, "pv"),
            (4, 105, "buy"),  # last event before c is older than the lookback: not eligible
            (5, 100, "pv"),  # first event at the cut-off: not eligible (features are strictly before)
        ]
    )
    purchase = label_cutoff(frame, 100, CONFIG)
    assert purchase.contacts.tolist() == [1, 2, 3]
    assert purchase.labels.tolist() == [1, 0, 0]
    churn = label_cutoff(frame, 100, CONFIG.replace(target="churn"))
    assert churn.contacts.tolist() == [1, 2, 3]
    assert churn.labels.tolist() == [0, 0, 1]


def test_cutoffs_step_back_by_the_horizon_from_the_latest_complete_one():
    frame = frame_of([(1, 0, "pv"), (1, 99, "pv")])
    train, validation = cutoff_schedule(frame, CONFIG.replace(n_cutoffs=3))
    assert validation == 100 - H  # newest event + 1 - horizon: the horizon [90, 100) is fully observed
    assert train == [60, 70, 80]
    assert cutoff_schedule(frame, CONFIG.replace(n_cutoffs=20))[0][0] > 0  # none before the data


def test_split_is_by_time_and_counts_are_reported():
    rng = np.random.default_rng(0)
    rows = [
        (c, int(t), "buy" if rng.random() < 0.3 else "pv") for c in range(50) for t in rng.integers(0, 100, 8)
    ]
    split = build_split(frame_of(rows), CONFIG)
    assert set(split.train.cutoffs.tolist()) == set(split.train_cutoffs)
    assert max(split.train_cutoffs) < split.validation_cutoff
    assert set(split.validation.cutoffs.tolist()) == {split.validation_cutoff}
    assert sum(split.counts().values()) == len(split.train) + len(split.validation)


def test_not_enough_data_names_the_counts():
    frame = frame_of([(c, t, "pv") for c in range(5) for t in (10, 50, 80)] + [(0, 96, "buy")])
    with pytest.raises(NotEnoughData) as raised:
        build_split(frame, CONFIG.replace(min_positives=100, min_negatives=100))
    message = str(raised.value)
    assert "positives (need 100)" in message and "negatives (need 100)" in message
    assert raised.value.counts["validation_positives"] == 1
