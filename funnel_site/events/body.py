"""Reads a JSON ingestion body with a size limit, gzip support and errors that say what is wrong."""

from __future__ import annotations

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
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BodyError(400, f"body is not valid gzip ({exc})") from None
    if len(out) > limit or decompressor.unconsumed_tail:
        raise BodyError(413, f"decompressed body is larger than the limit of {limit} bytes")
    return out


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
        raise BodyError(400, f"malformed JSON: {exc}") from None

