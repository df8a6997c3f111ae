"""Turns one raw event item (API, Segment, file row) into a validated event, or a reason naming the field.

The canonical item has `contact_id`, `event`, `timestamp` and optional `campaign`, `channel`, `value`,
`message_id`, `properties` (object or JSON text), `email`, `traits`. An item whose `_type` is
`identify` carries no event, only contact fields.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

MAX_NAME = 200
MAX_ID = 255
MAX_CHANNEL = 100
# What PostgreSQL (text, jsonb) and the JSON encoder accept, checked per item so that one bad item
# is rejected with its reason instead of aborting its batch: no NUL character anywhere (text and
# jsonb refuse \u0000), no lone surrogate (not UTF-8), `properties`/`traits` at most MAX_DEPTH
# levels deep (orjson stops at 255; deep values are no use to funnels or models) and MAX_JSON_BYTES
# encoded.
MAX_DEPTH = 32
MAX_JSON_BYTES = 64 * 1024
# \u0000 in orjson's output, not preceded by an escaped backslash (the text `\\u0000` is harmless)
_ENCODED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_MS_THRESHOLD = 100_000_000_000  # numbers above this are unix milliseconds (year 5138 in seconds)


class ItemError(ValueError):
    """An item cannot be accepted; `field` names the offending field."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


@dataclass(slots=True)
class ValidEvent:
    """A validated event (or, when `name` is None, a contact-only identify)."""

    contact_id: str
    name: str | None
    timestamp: datetime | None
    campaign: str
    channel: str
    value: float | None
    properties: dict
    message_id: str
    email: str = ""
    traits: dict = field(default_factory=dict)


def parse_timestamp(raw: object, *, now: datetime, max_future: timedelta) -> datetime:
    """ISO-8601 text (naive means UTC) or unix seconds / milliseconds as a number or numeric text."""
    if raw is None or raw == "":
        raise ItemError("timestamp", "is required")
    if isinstance(raw, bool):
        raise ItemError("timestamp", f"must be ISO-8601 or unix seconds/milliseconds, got {raw!r}")
    seconds: float | None = None
    if isinstance(raw, (int, float)):
        seconds = float(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                raise ItemError(
                    "timestamp", f"could not parse {raw!r} as ISO-8601 or unix seconds/milliseconds"
                ) from None
            ts = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
            seconds = None
    else:
        raise ItemError("timestamp", f"must be a string or a number, got {type(raw).__name__}")
    if seconds is not None:
        if not math.isfinite(seconds):
            raise ItemError("timestamp", f"{raw!r} is not a finite number")
        if abs(seconds) >= _MS_THRESHOLD:
            seconds /= 1000.0
        try:
            ts = datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ItemError("timestamp", f"{raw!r} is out of range") from None
    if ts < EARLIEST:
        raise ItemError("timestamp", f"{raw!r} is before 1970-01-01")
    if ts > now + max_future:
        raise ItemError(
            "timestamp", f"{raw!r} lies more than {int(max_future.total_seconds() // 3600)}h in the future"
        )
    return ts


def _text(item: dict, name: str, *, required: bool, limit: int) -> str:
    raw = item.get(name)
    if raw is None or raw == "":
        if required:
            raise ItemError(name, "is required")
        return ""
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise ItemError(name, f"must be a string, got {type(raw).__name__}")
    text = str(raw).strip()
    if required and not text:
        raise ItemError(name, "is required")
    if len(text) > limit:
        raise ItemError(name, f"is longer than {limit} characters")
    _check_characters(text, name)
    return text


def _check_characters(text: str, name: str) -> None:
    """ItemError when `text` holds a character PostgreSQL's text type refuses."""
    if "\x00" in text:
        raise ItemError(name, f"contains a NUL character (\\u0000) at position {text.index(chr(0))}")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ItemError(name, f"contains a lone surrogate (\\u{ord(text[exc.start]):04x}) at position "
                                  f"{exc.start}: not valid Unicode text") from None


def _depth(value: object) -> int:
    """Nesting depth of a JSON value (a scalar is 0, {} or [] is 1), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            return level
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def check_json_object(value: dict, name: str) -> dict:
    """`value` if PostgreSQL's jsonb and the encoder take it: ItemError naming `name` otherwise."""
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        if "surrogates" in str(exc):
            raise ItemError(name, "contains a lone surrogate: not valid Unicode text") from None
        if "ecursion" in str(exc):
            raise ItemError(name, f"is nested more than {MAX_DEPTH} levels deep") from None
        raise ItemError(name, f"cannot be stored as JSON ({exc})") from None
    if len(encoded) > MAX_JSON_BYTES:
        raise ItemError(name, f"is {len(encoded)} bytes as JSON, over the limit of {MAX_JSON_BYTES}")
    if b"\\u0000" in encoded and _ENCODED_NUL.search(encoded):
        raise ItemError(name, "contains a NUL character (\\u0000) in a key or a value")
    # every level opens a bracket: few brackets cannot be deep (strings may hold brackets too)
    if encoded.count(b"{") + encoded.count(b"[") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise ItemError(name, f"is nested more than {MAX_DEPTH} levels deep")
    return value


def _properties(raw: object, name: str = "properties") -> dict:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ItemError(name, f"is not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ItemError(name, f"must be a JSON object, got {type(raw).__name__}")
    return check_json_object(raw, name)


def _value(raw: object) -> float | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise ItemError("value", "must be a number, got a boolean")
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise ItemError("value", f"must be a number, got {raw!r}") from None
    if not math.isfinite(number):
        raise ItemError("value", f"must be finite, got {raw!r}")
    return number


def content_message_id(contact_id: str, name: str, ts: datetime, campaign: str, channel: str,
                       value: float | None, properties: dict) -> str:
    """A stable id from the event's content, so that a retried item without message_id dedupes."""
    payload = orjson.dumps(
        [contact_id, name, ts.isoformat(), campaign, channel, value, properties],
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
    )
    return "h:" + hashlib.sha256(payload).hexdigest()[:48]


def _fast_text(raw: object, limit: int) -> str | None:
    """The stripped text of a plain, non-empty string within `limit`; None sends the caller to `_text`.

    Bulk ingestion validates every field of millions of items: this common case costs one call
    instead of `_text`'s chain of checks, and anything unusual takes `_text` for its exact error.
    """
    if raw.__class__ is str:
        text = raw.strip()
        if text and len(text) <= limit and text.isascii() and "\x00" not in text:
            return text
    return None


def _fast_timestamp(raw: object, *, latest: datetime) -> datetime | None:
    """The common timestamps (ISO-8601 text, unix seconds as an int) without exceptions; None sends
    the caller to `parse_timestamp`, which handles (and words the errors of) everything else."""
    cls = raw.__class__
    if cls is str:
        # ISO text first: trying float() on it first would raise and catch a ValueError per item.
        if len(raw) >= 10 and raw[4] == "-":
            try:
                ts = datetime.fromisoformat(raw)
            except ValueError:
                return None
            if ts.tzinfo is None:
                ts = ts.replace(tzinfo=UTC)
        else:
            return None
    elif cls is int and 0 <= raw < _MS_THRESHOLD:
        ts = datetime.fromtimestamp(raw, tz=UTC)
    else:
        return None
    if EARLIEST <= ts <= latest:
        return ts
    return None


def _json_ok(value: dict) -> bool:
    """True when `check_json_object` accepts `value` (the caller words the error otherwise)."""
    try:
        check_json_object(value, "properties")
    except ItemError:
        return False
    return True


def validate_record(record: tuple, *, now: datetime, max_future: timedelta) -> ValidEvent:
    """Validate a canonical CSV record (``loaders.canonical_csv.CanonicalRecord``) as `validate_item`
    validates the same row as an item dict: same event, same errors.

    File imports of millions of rows come here: the common row (plain texts within their limits,
    an ISO-8601 or unix-seconds timestamp, a plain number) is checked inline without building a
    dict; any other row is handed to `validate_item`, which words the error.
    """
    contact_id, name, raw_ts, campaign, channel, raw_value, message_id, properties, email, traits = record
    latest = now + max_future
    if (
        contact_id is not None and len(contact_id) <= MAX_ID
        and name is not None and len(name) <= MAX_NAME
        and raw_ts is not None
        and len(campaign) <= MAX_NAME and len(channel) <= MAX_CHANNEL
        and len(message_id) <= MAX_ID and len(email) <= 254
        and "\x00" not in contact_id and "\x00" not in name and "\x00" not in campaign
        and "\x00" not in channel and "\x00" not in message_id and "\x00" not in email
        and (not properties or _json_ok(properties)) and (not traits or _json_ok(traits))
    ):
        # unix seconds as text take the int path (milliseconds, with more digits, validate_item's)
        seconds = raw_ts.isdigit() and len(raw_ts) <= 11
        ts = _fast_timestamp(int(raw_ts) if seconds else raw_ts, latest=latest)
        value = None
        if raw_value:
            try:
                value = float(raw_value)
            except ValueError:
                ts = None  # not a number: let validate_item word it
            else:
                if not math.isfinite(value):
                    ts = None
        if ts is not None:
            properties = properties or {}
            if not message_id:
                message_id = content_message_id(contact_id, name, ts, campaign, channel, value, properties)
            return ValidEvent(contact_id, name, ts, campaign, channel, value, properties, message_id, email,
                              traits or {})
    from funnel_site.events.loaders.canonical_csv import record_to_item

    return validate_item(record_to_item(record), now=now, max_future=max_future)


def validate_item(item: object, *, now: datetime, max_future: timedelta) -> ValidEvent:
    """Validate one raw item; raises ItemError naming the field and the reason."""
    if not isinstance(item, dict):
        raise ItemError("item", f"must be a JSON object, got {type(item).__name__}")
    if "_invalid" in item:  # a source adapter (e.g. Segment) could not map the message
        field_name, reason = item["_invalid"]
        raise ItemError(field_name, reason)
    get = item.get
    contact_id = _fast_text(get("contact_id"), MAX_ID) or _text(item, "contact_id", required=True, limit=MAX_ID)
    raw = get("email")
    email = "" if raw is None else _fast_text(raw, 254) or _text(item, "email", required=False, limit=254)
    raw = get("traits")
    traits = {} if raw is None else _properties(raw, "traits")
    if get("_type") == "identify":
        return ValidEvent(contact_id, None, None, "", "", None, {}, "", email, traits)
    name = _fast_text(get("event"), MAX_NAME) or _text(item, "event", required=True, limit=MAX_NAME)
    raw = get("timestamp")
    ts = _fast_timestamp(raw, latest=now + max_future) or parse_timestamp(raw, now=now, max_future=max_future)
    raw = get("campaign")
    campaign = "" if raw is None else _fast_text(raw, MAX_NAME) or _text(item, "campaign", required=False, limit=MAX_NAME)
    raw = get("channel")
    channel = (
        "" if raw is None else _fast_text(raw, MAX_CHANNEL) or _text(item, "channel", required=False, limit=MAX_CHANNEL)
    )
    raw = get("value")
    if raw is None:
        value = None
    elif raw.__class__ is float and math.isfinite(raw):
        value = raw
    else:
        value = _value(raw)
    raw = get("properties")
    properties = raw if raw.__class__ is dict and not raw else _properties(raw)
    raw = get("message_id")
    message_id = (
        "" if raw is None else _fast_text(raw, MAX_ID) or _text(item, "message_id", required=False, limit=MAX_ID)
    )
    if not message_id:
        message_id = content_message_id(contact_id, name, ts, campaign, channel, value, properties)
    return ValidEvent(contact_id, name, ts, campaign, channel, value, properties, message_id, email, traits)
