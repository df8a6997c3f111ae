import json

import pytest

from funnel_site.events.loaders import LOADERS, MappingError, SegmentMessageError, segment_message_to_item

from .canonical import assert_canonical

CONTEXT = {"campaign": {"name": "spring_sale", "source": "newsletter", "medium": "email"}}


def test_track():
    item = segment_message_to_item(
        {
            "type": "track",
            "userId": "u1",
            "anonymousId": "a1",
            "event": "Order Completed",
            "properties": {"revenue": 25, "order_id": "o1"},
            "timestamp": "2024-01-01T00:00:00Z",
            "messageId": "m1",
            "context": CONTEXT,
        }
    )
    assert item == {
        "contact_id": "u1",
        "event": "Order Completed",
        "timestamp": "2024-01-01T00:00:00Z",
        "value": 25.0,
        "properties": {"revenue": 25, "order_id": "o1"},
        "campaign": "spring_sale",
        "channel": "email",
        "message_id": "m1",
    }
    assert_canonical(item)


def test_page_screen_and_anonymous_id():
    page = segment_message_to_item(
        {
            "type": "page",
            "anonymousId": "a1",
            "name": "Pricing",
            "properties": {"url": "https://x/p"},
            "originalTimestamp": "t",
            "context": {"campaign": {"source": "google"}},
        }
    )
    assert page == {
        "contact_id": "a1",
        "event": "Page Viewed",
        "timestamp": "t",
        "properties": {"url": "https://x/p", "name": "Pricing"},
        "channel": "google",
    }
    screen = segment_message_to_item({"type": "screen", "userId": 7, "name": "Home", "timestamp": 1})
    assert screen == {
        "contact_id": "7",
        "event": "Screen Viewed",
        "timestamp": 1,
        "properties": {"name": "Home"},
    }


def test_identify():
    item = segment_message_to_item(
        {
            "type": "identify",
            "userId": "u1",
            "traits": {"email": "u@x.io", "plan": "pro"},
            "timestamp": "2024-01-01T00:00:00Z",
            "messageId": "m2",
        }
    )
    assert item == {
        "contact_id": "u1",
        "event": None,
        "timestamp": "2024-01-01T00:00:00Z",
        "traits": {"email": "u@x.io", "plan": "pro"},
        "_type": "identify",
        "email": "u@x.io",
        "message_id": "m2",
    }
    assert_canonical(item, identify_ok=True)


def test_missing_timestamp_is_none_for_the_endpoint_to_fill():
    assert segment_message_to_item({"type": "track", "userId": "u", "event": "A"})["timestamp"] is None


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "alias", "userId": "u", "previousId": "p"}, "type"),
        ({"type": "group", "userId": "u", "groupId": "g"}, "type"),
        ({"userId": "u"}, "type"),
        ({"type": "track", "event": "A"}, "userId"),
        ({"type": "track", "userId": "u"}, "event"),
        ({"type": "track", "userId": "u", "event": "A", "properties": [1]}, "properties"),
    ],
)
def test_refusals_name_the_field(message, field):
    with pytest.raises(SegmentMessageError) as info:
        segment_message_to_item(message)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_file_loader(write):
    lines = [
        json.dumps({"type": "track", "userId": "u1", "event": "A", "timestamp": 1}),
        "",
        "{broken",
        json.dumps(
            {
                "batch": [
                    {"type": "page", "userId": "u1", "name": "Home", "timestamp": 2},
                    {"type": "alias", "userId": "u1", "previousId": "x"},
                ]
            }
        ),
    ]
    result = list(LOADERS["segment"](write("s.jsonl", "\n".join(lines) + "\n"), mapping=None))
    assert [(line, bool(item), error is None) for line, item, error in result] == [
        (1, True, True),
        (3, False, False),
        (4, True, True),
        (4, False, False),
    ]
    assert result[1][2].startswith("invalid JSON (")
    assert result[3][2] == "type: unsupported Segment message type 'alias'"
    with pytest.raises(MappingError):
        LOADERS["segment"](write("t.jsonl", ""), mapping={"contact_id": "x"})
