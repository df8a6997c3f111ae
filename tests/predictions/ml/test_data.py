import numpy as np
import pytest

from predictions.ml.data import EventFrame


def test_from_records_accepts_dicts_and_tuples_sorts_and_drops_malformed():
    frame = EventFrame.from_records(
        [
            {"contact": 2, "ts": 50, "name": "buy", "stage": "purchase", "value": "12.5"},
            (1, 30, "pv", "interest", False, "spring", "web", None),
            (1, 10, "cart"),
            {"contact": "x", "ts": 1, "name": "pv"},  # malformed contact
            {"contact": 3, "ts": None, "name": "pv"},  # malformed time
            {"contact": 3, "ts": 5, "name": ""},  # no name
        ]
    )
    assert frame.contact.tolist() == [1, 1, 2]
    assert frame.ts.tolist() == [10, 30, 50]
    assert frame.name.tolist() == ["cart", "pv", "buy"]
    assert frame.is_purchase.tolist() == [False, False, True]  # defaults to stage == purchase
    assert frame.campaign.tolist() == ["", "spring", ""]
    assert np.isnan(frame.value[0]) and frame.value[2] == 12.5


def test_unknown_stage_becomes_empty_and_repeat_purchase_keeps_flag():
    frame = EventFrame.from_records(
        [
            {"contact": 1, "ts": 1, "name": "buy", "stage": "loyalty", "is_purchase": True},
            {"contact": 1, "ts": 2, "name": "x", "stage": "bogus"},
        ]
    )
    assert frame.stage.tolist() == ["loyalty", ""]
    assert frame.is_purchase.tolist() == [True, False]


def test_unsorted_columns_are_rejected_and_groups_are_correct():
    with pytest.raises(ValueError, match="sorted"):
        EventFrame(
            *(
                np.array(v)
                for v in (
                    [2, 1],
                    [1, 1],
                    ["a", "b"],
                    ["", ""],
                    [False, False],
                    ["", ""],
                    ["", ""],
                    [1.0, 1.0],
                )
            )
        )
    frame = EventFrame.from_arrays([5, 5, 7], [3, 1, 2], ["a", "b", "c"])
    ids, starts, ends, index = frame.groups()
    assert ids.tolist() == [5, 7] and starts.tolist() == [0, 2] and ends.tolist() == [2, 3]
    assert index.tolist() == [0, 0, 1]
    assert frame.end_ts == 4
    assert len(frame.before(2)) == 1
