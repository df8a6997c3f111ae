"""The canonical CSV: ``contact_id,event,timestamp`` plus optional columns.

Optional columns: ``campaign, channel, value, message_id, properties`` (JSON object
text), ``email``, ``traits`` (JSON object text). Other columns are ignored. Values are
stripped of surrounding spaces; an empty optional value is left out of the item, an empty
required one is passed on as ``None`` for the ingest service to reject with its reason.

Quoted fields (also spanning lines), a UTF-8 BOM, blank lines, CRLF and gzip are handled.
A row with the wrong number of fields, invalid JSON in ``properties``/``traits`` or bytes
that are not UTF-8 becomes a row error.

Two forms of the same rows: ``read`` yields canonical item dicts, like every loader;
``read_records`` yields each row as a ``CanonicalRecord`` tuple, which the ingest service
validates without building a dict (``validation.validate_record``): the file import of
millions of rows takes that path. ``span`` reads one byte range of the file (see
``loaders.shards``), so that several processes can import one large file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .base import (
    CANONICAL_FIELDS,
    REQUIRED_FIELDS,
    CsvSource,
    LoaderError,
    Row,
    Span,
    column_indexes,
    open_binary,
    open_span,
    parse_json_object,
    resolve_mapping,
)

FORMAT = "csv"

#: ``(contact_id, event, timestamp, campaign, channel, value, message_id, properties, email, traits)``
#: in ``CANONICAL_FIELDS`` order: required texts stripped (``None`` when empty), optional texts
#: stripped (``""`` when absent or empty), ``properties``/``traits`` parsed dicts or ``None``.
CanonicalRecord = tuple


def read(path: Path, *, mapping: dict[str, str] | None = None, span: Span | None = None) -> Iterator[Row]:
    """Validate the header now (``MissingColumnError``), then stream the rows as item dicts."""
    records = read_records(path, mapping=mapping, span=span)
    return ((line, None if record is None else record_to_item(record), error) for line, record, error in records)


def read_records(
    path: Path, *, mapping: dict[str, str] | None = None, span: Span | None = None
) -> Iterator[tuple[int, CanonicalRecord | None, str | None]]:
    """Validate the header now, then stream ``(line, CanonicalRecord | None, error | None)``."""
    columns = resolve_mapping(mapping, CANONICAL_FIELDS, format_name=FORMAT)
    # The first span holds the header; a later one is read after the header of the whole file.
    fh = open_binary(path) if span is None or span.start > 0 else open_span(path, span)
    try:
        source = CsvSource(fh)
        if source.header is None:
            raise LoaderError("the file is empty: it has no header line (contact_id,event,timestamp)")
        indexes = column_indexes(source.header, columns, REQUIRED_FIELDS, explicit=(mapping or {}).keys())
        width = len(source.header)
        if span is not None and span.start > 0:
            fh.close()
            source = CsvSource(open_span(path, span), has_header=False, first_line=span.first_line)
    except BaseException:
        fh.close()
        raise
    return _records(source, indexes, width)


def record_to_item(record: CanonicalRecord) -> dict:
    """The canonical item dict of a record: required fields always, optional ones when present."""
    item = {"contact_id": record[0], "event": record[1], "timestamp": record[2]}
    for field, value in zip(CANONICAL_FIELDS[3:], record[3:], strict=True):
        if value:  # "" and None (absent) are left out; an empty dict is absent too
            item[field] = value
    return item


def _records(source: CsvSource, indexes: dict[str, int], width: int) -> Iterator[tuple[int, tuple | None, str | None]]:
    # Positions of the ten canonical fields in a row; -1 for a column the file does not have.
    at = [indexes.get(field, -1) for field in CANONICAL_FIELDS]
    i_contact, i_event, i_ts, i_campaign, i_channel, i_value, i_message, i_props, i_email, i_traits = at
    try:
        for line, fields, error in source.records():
            if error:
                yield line, None, error
                continue
            if len(fields) != width:
                yield line, None, f"expected {width} columns as in the header, got {len(fields)}"
                continue
            properties = traits = None
            if i_props >= 0:
                text = fields[i_props].strip()
                if text:
                    properties, error = parse_json_object(text, "properties")
                    if error:
                        yield line, None, error
                        continue
            if i_traits >= 0:
                text = fields[i_traits].strip()
                if text:
                    traits, error = parse_json_object(text, "traits")
                    if error:
                        yield line, None, error
                        continue
            yield line, (
                fields[i_contact].strip() or None,
                fields[i_event].strip() or None,
                fields[i_ts].strip() or None,
                fields[i_campaign].strip() if i_campaign >= 0 else "",
                fields[i_channel].strip() if i_channel >= 0 else "",
                fields[i_value].strip() if i_value >= 0 else "",
                fields[i_message].strip() if i_message >= 0 else "",
                properties,
                fields[i_email].strip() if i_email >= 0 else "",
                traits,
            ), None
    finally:
        source.close()
