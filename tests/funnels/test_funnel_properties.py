"""Property value lookups and filters (no database needed)."""

from __future__ import annotations

import numpy as np
import pytest

from funnel_site.funnels.engine import MISSING, PropertyFilter
from funnel_site.funnels.properties import ValueLookup, matching_codes, value_matches


@pytest.mark.parametrize("offset", [0, 10**12])  # dense ids (a table) and sparse ones (a binary search)
def test_codes_for_aligns_by_id(offset):
    ids = np.array([7, 3, 11, 5], dtype=np.int64) * (1 if offset == 0 else 10**9) + offset
    lookup = ValueLookup(ids=ids, codes=np.array([0, 1, 1, 2]), labels=["a", "b", "c"])
    keys = np.array([ids[2], ids[0], ids[3] + 1, ids[1], -5], dtype=np.int64)
    assert lookup.codes_for(keys).tolist() == [1, 0, MISSING, 1, MISSING]
    assert ValueLookup(np.zeros(0, np.int64), np.zeros(0, np.int64), []).codes_for(keys).tolist() == [MISSING] * 5


@pytest.mark.parametrize(
    ("text", "operator", "value", "expected"),
    [
        ("pro", "eq", "pro", True), ("5", "eq", 5, True), ("5.0", "eq", 5, True), ("true", "eq", True, True),
        ("1", "eq", True, True), ("false", "eq", True, False), ("b", "in", ("a", "b"), True),
        ("hello", "contains", "ell", True), ("12", "gt", 10, True), ("x", "gt", 1, False), ("3", "lt", 4, True),
    ],
)
def test_value_matches_by_the_filters_type(text, operator, value, expected):
    assert value_matches(text, PropertyFilter(key="k", operator=operator, value=value)) is expected


def test_matching_codes_tests_each_distinct_value_once():
    lookup = ValueLookup(np.zeros(0, np.int64), np.zeros(0, np.int64), ["3", "15", "n/a", "40"])
    assert matching_codes(lookup, PropertyFilter(key="k", operator="gt", value=10)).tolist() == [1, 3]
