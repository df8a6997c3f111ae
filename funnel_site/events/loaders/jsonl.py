"""JSON Lines: one canonical event object per line.

Keys are the canonical field names (renamed with ``--map field=key``); other keys are
ignored. ``properties``/``traits`` may be objects or JSON object text. A line that is not
JSON, or not an object, becomes a row error with the parse reason; blank lines are
skipped. A numeric ``contact_id`` is turned into its string.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .base import (
    CANONICAL_FIELDS,
    REQUIRED_FIELDS,
    Row,
    Span,
    _JSONDecodeError,
    iter_binary_lines,
    json_error_reason,
    loads,
    open_binary,
    open_span,
    parse_json_object,
    resolve_mapping,
)

FORMAT = "jsonl"


def read(path: Path, *, mapping: dict[str, str] | None = None, span: Span | None = None) -> Iterator[Row]:
    """Stream the lines as items; ``span`` reads one byte range (see ``loaders.shards``)."""
    columns = resolve_mapping(mapping, CANONICAL_FIELDS, format_name=FORMAT)
    if span is not None:
        return _rows(open_span(path, span), columns, span.first_line)
    return _rows(open_binary(path), columns)


def parse_line(raw: bytes | str) -> tuple[object, str | None]:
    """Parse one JSON line: ``(value, None)`` or ``(None, "invalid JSON (reason)")``."""
    try:
        return loads(raw), None
    except _JSONDecodeError as exc:
        return None, f"invalid JSON ({json_error_reason(exc)})"


def object_to_item(obj: dict, columns: dict[str, str]) -> tuple[dict | None, str | None]:
    item: dict = {}
    for field, key in columns.items():
        if key in obj:
            item[field] = obj[key]
        elif field in REQUIRED_FIELDS:
            item[field] = None
    contact_id = item.get("contact_id")
    if isinstance(contact_id, int) and not isinstance(contact_id, bool):
        item["contact_id"] = str(contact_id)
    for field in ("properties", "traits"):
        value = item.get(field)
        if value is None:
            item.pop(field, None)
        elif isinstance(value, str):
            if not value.strip():
                del item[field]
                continue
            parsed, error = parse_json_object(value, field)
            if error:
                return None, error
            item[field] = parsed
        elif not isinstance(value, dict):
            return None, f"{field}: must be an object, not {type(value).__name__}"
    return item, None


def _rows(fh, columns: dict[str, str], first_line: int = 1) -> Iterator[Row]:
    try:
        for line, raw in iter_binary_lines(fh, first_line):
            if not raw.strip():
                continue
            obj, error = parse_line(raw)
            if error:
                yield line, None, error
                continue
            if not isinstance(obj, dict):
                yield line, None, f"the line is a JSON {type(obj).__name__}, not an object"
                continue
            item, error = object_to_item(obj, columns)
            yield line, item, error
    finally:
        fh.close()
