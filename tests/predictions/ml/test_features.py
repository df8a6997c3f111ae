import numpy as np

from predictions.ml.config import TrainConfig
from predictions.ml.data import EventFrame
from predictions.ml.features import AGGREGATE_FEATURES, NUMERIC_FEATURES, OOV, PAD, Preprocessor
from predictions.ml.labels import Samples, build_split

DAY = 86400


def samples(contacts, cutoff):
    return Samples(
        np.array(contacts, np.int64),
        np.full(len(contacts), cutoff, np.int64),
        np.zeros(len(contacts), np.int8),
    )


def fitted(frame, config=None):
    config = config or TrainConfig(min_positives=1, min_negatives=1, min_validation_per_class=1)
    split = build_split(frame, config)
    preprocessor = Preprocessor(max_events=16, lookback_seconds=config.lookback_seconds).fit(
        frame, split.train
    )
    return preprocessor, split


def test_changing_events_after_the_cutoff_changes_no_feature(small_frame):
    preprocessor, split = fitted(small_frame)
    cutoff = split.validation_cutoff
    contacts = split.validation.contacts
    before = preprocessor.transform(small_frame, samples(contacts, cutoff))

    # Rewrite everything at or after the cut-off: other names, stages, values, and extra events.
    after = small_frame.ts >= cutoff
    rng = np.random.default_rng(3)
    name = small_frame.name.copy()
    name[after] = "something_else"
    value = small_frame.value.copy()
    value[after] = 1e6
    extra = rng.choice(contacts, 200)
    changed = EventFrame.from_arrays(
        np.concatenate([small_frame.contact, extra]),
        np.concatenate([small_frame.ts, cutoff + rng.integers(0, 5 * DAY, 200)]),
        np.concatenate([name, np.full(200, "buy", object)]),
        np.concatenate([np.where(after, "purchase", small_frame.stage), np.full(200, "purchase", object)]),
        np.concatenate([small_frame.is_purchase | after, np.ones(200, bool)]),
        np.concatenate([small_frame.campaign, np.full(200, "x", object)]),
        np.concatenate([small_frame.channel, np.full(200, "sms", object)]),
        np.concatenate([value, np.full(200, 5.0)]),
    )
    later = preprocessor.transform(changed, samples(contacts, cutoff))
    for key, array in before.inputs().items():
        np.testing.assert_array_equal(array, later.inputs()[key], err_msg=key)
    np.testing.assert_array_equal(before.raw_aggregates, later.raw_aggregates)


def test_sequence_is_left_padded_newest_last_and_unseen_names_are_oov():
    frame = EventFrame.from_records(
        [(1, 10 * DAY + i * 3600, n, "interest") for i, n in enumerate(["pv", "cart", "pv"])]
        + [(2, 5 * DAY, "pv"), (2, 40 * DAY, "brand_new_event")]
    )
    preprocessor = Preprocessor(max_events=4, lookback_seconds=28 * DAY).fit(frame, samples([1, 2], 20 * DAY))
    assert preprocessor.vocabulary == ["pv", "cart"]  # most frequent first, only events before the cut-off
    batch = preprocessor.transform(frame, samples([1, 2, 99], 41 * DAY))
    pv, cart = 2, 3
    assert batch.event_name[0].tolist() == [PAD, pv, cart, pv]
    assert batch.event_name[1].tolist() == [PAD, PAD, pv, OOV]
    assert batch.event_name[2].tolist() == [PAD] * 4  # unknown contact: all padding
    assert (batch.numeric[0, 0] == 0).all() and batch.numeric[0, 1:, 0].tolist() == [1, 1, 1]
    assert batch.event_rows[0].tolist() == [-1, 0, 1, 2]
    assert batch.numeric.shape == (3, 4, len(NUMERIC_FEATURES))
    assert batch.aggregates.shape == (3, len(AGGREGATE_FEATURES))
    assert batch.aggregates.min() >= 0 and batch.aggregates.max() <= 1


def test_aggregates_in_natural_units():
    frame = EventFrame.from_records(
        [
            {"contact": 1, "ts": 1 * DAY, "name": "buy", "stage": "purchase", "value": 10},
            {"contact": 1, "ts": 20 * DAY, "name": "pv", "stage": "interest"},
            {
                "contact": 1,
                "ts": 25 * DAY,
                "name": "buy",
                "stage": "loyalty",
                "is_purchase": True,
                "value": 30,
            },
            {"contact": 1, "ts": 35 * DAY, "name": "pv", "stage": "interest"},  # after the cut-off
        ]
    )
    preprocessor = Preprocessor(max_events=8, lookback_seconds=7 * DAY).fit(frame, samples([1], 30 * DAY))
    raw = dict(
        zip(
            AGGREGATE_FEATURES,
            preprocessor.transform(frame, samples([1], 30 * DAY)).raw_aggregates[0],
            strict=False,
        )
    )
    assert raw["seconds_since_last_event"] == 5 * DAY
    assert raw["events_in_lookback"] == 1 and raw["events_total"] == 3
    assert raw["purchases_in_lookback"] == 1 and raw["purchases_total"] == 2
    assert raw["value_in_lookback"] == 30
    assert raw["seconds_since_last_purchase"] == 5 * DAY and raw["has_purchased"] == 1
    assert raw["tenure_seconds"] == 29 * DAY
    assert raw["loyalty_events_in_lookback"] == 1 and raw["interest_events_in_lookback"] == 0


def test_save_and_load_give_the_same_transform(small_frame, tmp_path):
    preprocessor, split = fitted(small_frame)
    preprocessor.save(tmp_path / "pre")
    loaded = Preprocessor.load(tmp_path / "pre")
    a = preprocessor.transform(small_frame, split.validation)
    b = loaded.transform(small_frame, split.validation)
    for key in a.inputs():
        np.testing.assert_array_equal(a.inputs()[key], b.inputs()[key])
