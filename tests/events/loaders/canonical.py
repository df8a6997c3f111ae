"""A checker of the canonical event item contract, shared by the loader and generator tests."""

from __future__ import annotations

ALLOWED = {
    "contact_id",
    "event",
    "timestamp",
    "campaign",
    "channel",
    "value",
    "message_id",
    "properties",
    "email",
    "traits",
    "_type",
}


def assert_canonical(item: dict, *, identify_ok: bool = False) -> None:
    assert isinstance(item, dict)
    assert set(item) <= ALLOWED, set(item) - ALLOWED
    assert isinstance(item["contact_id"], str) and item["contact_id"]
    if item.get("_type") == "identify":
        assert identify_ok and item["event"] is None
    else:
        assert isinstance(item["event"], str) and item["event"]
    ts = item["timestamp"]
    assert isinstance(ts, (str, int, float)) and not isinstance(ts, bool)
    for key in ("campaign", "channel", "message_id", "email"):
        if key in item:
            assert isinstance(item[key], str) and item[key], key
    if "value" in item:
        assert isinstance(item["value"], (float, str)), item["value"]
    for key in ("properties", "traits"):
        if key in item:
            assert isinstance(item[key], dict), key
