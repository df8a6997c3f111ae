"""Reads a JSON ingestion body with a size limit, gzip support and errors that say what is wrong."""

from __future__ import annotations

import json
import zlib

import orjson
from django.conf import settings


class BodyError(Exception):
    """The body cannot be read; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _gunzip(data: bytes, limit: int) -> bytes:
    """Every member of a gzip body (RFC 1952 allows several, concatenated), at most `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    while data:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out = decompressor.decompress(data, limit + 1 - size)
        except zlib.error as exc:
            raise BodyError(400, f"body is not valid gzip ({exc})") from None
        size += len(out)
        if size > limit or decompressor.unconsumed_tail:
            raise BodyError(413, f"decompressed body is larger than the limit of {limit} bytes")
        if not decompressor.eof:
            raise BodyError(400, "body is not valid gzip (truncated member)")
        parts.append(out)
        data = decompressor.unused_data
        if data.strip(b"\x00") == b"":  # trailing zero padding after the last member is allowed
            break
    return b"".join(parts)


def read_json_body(request) -> object:
    """The parsed JSON body of a Django request; BodyError with 400/413 otherwise."""
    limit = settings.INGEST_MAX_BODY_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        raise BodyError(413, f"body of {length} bytes is larger than the limit of {limit} bytes")
    data = request.body
    if len(data) > limit:
        raise BodyError(413, f"body is larger than the limit of {limit} bytes")
    encoding = request.META.get("HTTP_CONTENT_ENCODING", "").lower()
    if encoding == "gzip" or data[:2] == b"\x1f\x8b":
        data = _gunzip(data, limit)
    elif encoding not in ("", "identity"):
        raise BodyError(415, f"Content-Encoding {encoding!r} is not supported (use gzip)")
    if not data.strip():
        raise BodyError(400, "body is empty: send a JSON object or a list of objects")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return _loads_lenient(data, exc)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _loads_lenient(data: bytes, first_error: Exception) -> object:
    """Parse what orjson refuses but is still JSON (an escaped lone surrogate such as "\\ud800"),
    so that validation rejects that one item and keeps the others; BodyError when it is not JSON."""
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except RecursionError:
        raise BodyError(400, "malformed JSON: nested too deep to read") from None
    except (ValueError, UnicodeDecodeError):
        raise BodyError(400, f"malformed JSON: {first_error}") from None

