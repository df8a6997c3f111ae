"""Segment messages (HTTP Tracking API spec), one JSON message per line.

``segment_message_to_item`` is the single mapping from a Segment message to a canonical
item; the ``/v1/track|page|screen|identify|batch`` endpoints reuse it.

=============  ==========================================================================
Segment        canonical item
=============  ==========================================================================
userId         ``contact_id`` (``anonymousId`` when there is no userId; numbers -> str)
type=track     ``event`` = ``event``
type=page      ``event`` = "Page Viewed", ``properties.name`` = ``name`` (and ``category``)
type=screen    ``event`` = "Screen Viewed", ``properties.name`` = ``name``
type=identify  ``event`` = None, ``traits``, ``email`` = traits.email, ``_type`` = "identify"
timestamp      ``timestamp`` as given; else ``originalTimestamp``, ``receivedAt``,
               ``sentAt``; else None (the HTTP endpoint fills in the time it received it)
messageId      ``message_id``
properties     ``properties``; ``value`` = properties.revenue, else .value, else .total
               (when a number or numeric text)
context        ``campaign`` = context.campaign.name, ``channel`` = context.campaign.medium
               or else .source; ``email`` = context.traits.email when present
=============  ==========================================================================

``group`` and ``alias`` messages (and unknown types) are refused with
``SegmentMessageError`` naming the field. A file line may also hold a whole batch
(``{"batch": [...]}``): each message becomes a row with that line number.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .base import Row, iter_binary_lines, open_binary, reject_mapping
from .jsonl import parse_line

FORMAT = "segment"

EVENT_FOR_TYPE = {"page": "Page Viewed", "screen": "Screen Viewed"}
SUPPORTED_TYPES = ("track", "page", "screen", "identify")
_TIME_KEYS = ("timestamp", "originalTimestamp", "receivedAt", "sentAt")
_VALUE_KEYS = ("revenue", "value", "total")


class SegmentMessageError(ValueError):
    """A Segment message that cannot become an item; ``str()`` names the field."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


def _object(msg: dict, key: str) -> dict:
    value = msg.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SegmentMessageError(key, f"must be an object, not {type(value).__name__}")
    return value


def _id(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def _number(value: Any) -> float | str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return None
        return value.strip()
    return None


def segment_message_to_item(msg: dict) -> dict:
    """Map one Segment message to a canonical item; ``SegmentMessageError`` if impossible."""
    if not isinstance(msg, dict):
        raise SegmentMessageError("message", f"must be an object, not {type(msg).__name__}")
    kind = msg.get("type")
    if kind is None:
        kind = "track" if "event" in msg else None
    if not isinstance(kind, str) or not kind:
        raise SegmentMessageError("type", "missing (one of track, page, screen, identify)")
    kind = kind.lower()
    if kind not in SUPPORTED_TYPES:
        raise SegmentMessageError("type", f"unsupported Segment message type '{kind}'")

    contact_id = _id(msg.get("userId")) or _id(msg.get("anonymousId"))
    if contact_id is None:
        raise SegmentMessageError("userId", "neither userId nor anonymousId is set")

    timestamp = None
    for key in _TIME_KEYS:
        if msg.get(key) not in (None, ""):
            timestamp = msg[key]
            break

    context = _object(msg, "context")
    campaign = context.get("campaign")
    campaign = campaign if isinstance(campaign, dict) else {}
    context_traits = context.get("traits")
    context_traits = context_traits if isinstance(context_traits, dict) else {}

    item: dict[str, Any] = {"contact_id": contact_id}
    if kind == "identify":
        traits = _object(msg, "traits")
        item["event"] = None
        item["timestamp"] = timestamp
        item["traits"] = traits
        item["_type"] = "identify"
        email = traits.get("email") or context_traits.get("email")
    else:
        properties = dict(_object(msg, "properties"))
        if kind == "track":
            event = msg.get("event")
            if not isinstance(event, str) or not event.strip():
                raise SegmentMessageError("event", "a track message needs an event name")
            item["event"] = event
        else:
            item["event"] = EVENT_FOR_TYPE[kind]
            name = msg.get("name")
            if name is not None:
                properties["name"] = name
            if kind == "page" and msg.get("category") is not None:
                properties.setdefault("category", msg["category"])
        item["timestamp"] = timestamp
        for key in _VALUE_KEYS:
            value = _number(properties.get(key))
            if value is not None:
                item["value"] = value
                break
        if properties:
            item["properties"] = properties
        email = context_traits.get("email")

    name = campaign.get("name")
    if isinstance(name, str) and name.strip():
        item["campaign"] = name.strip()
    channel = campaign.get("medium") or campaign.get("source")
    if isinstance(channel, str) and channel.strip():
        item["channel"] = channel.strip()
    message_id = _id(msg.get("messageId"))
    if message_id:
        item["message_id"] = message_id
    if isinstance(email, str) and email.strip():
        item["email"] = email.strip()
    return item


def read(path: Path, *, mapping: dict[str, str] | None = None) -> Iterator[Row]:
    reject_mapping(mapping, FORMAT)
    return _rows(open_binary(path))


def _convert(line: int, msg: Any) -> Row:
    try:
        return line, segment_message_to_item(msg), None
    except SegmentMessageError as exc:
        return line, None, str(exc)


def _rows(fh) -> Iterator[Row]:
    try:
        for line, raw in iter_binary_lines(fh):
            if not raw.strip():
                continue
            obj, error = parse_line(raw)
            if error:
                yield line, None, error
                continue
            if isinstance(obj, dict) and isinstance(obj.get("batch"), list) and "type" not in obj:
                for msg in obj["batch"]:
                    yield _convert(line, msg)
                continue
            yield _convert(line, obj)
    finally:
        fh.close()
