"""The canonical CSV: ``contact_id,event,timestamp`` plus optional columns.

Optional columns: ``campaign, channel, value, message_id, properties`` (JSON object
text), ``email``, ``traits`` (JSON object text). Other columns are ignored. Values are
stripped of surrounding spaces; an empty optional value is left out of the item, an empty
required one is passed on as ``None`` for the ingest service to reject with its reason.

Quoted fields (also spanning lines), a UTF-8 BOM, blank lines, CRLF and gzip are handled.
A row with the wrong number of fields, invalid JSON in ``properties``/``traits`` or bytes
that are not UTF-8 becomes a row error.
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
    column_indexes,
    open_binary,
    parse_json_object,
    resolve_mapping,
)

FORMAT = "csv"
JSON_FIELDS = ("properties", "traits")


def read(path: Path, *, mapping: dict[str, str] | None = None) -> Iterator[Row]:
    """Validate the header now (``MissingColumnError``), then stream the rows lazily."""
    columns = resolve_mapping(mapping, CANONICAL_FIELDS, format_name=FORMAT)
    fh = open_binary(path)
    try:
        source = CsvSource(fh)
        if source.header is None:
            raise LoaderError("the file is empty: it has no header line (contact_id,event,timestamp)")
        indexes = column_indexes(source.header, columns, REQUIRED_FIELDS, explicit=(mapping or {}).keys())
    except BaseException:
        fh.close()
        raise
    return _rows(source, indexes, len(source.header))


def _rows(source: CsvSource, indexes: dict[str, int], width: int) -> Iterator[Row]:
    required = [(f, indexes[f]) for f in REQUIRED_FIELDS]
    plain = [(f, i) for f, i in indexes.items() if f not in REQUIRED_FIELDS and f not in JSON_FIELDS]
    as_json = [(f, i) for f, i in indexes.items() if f in JSON_FIELDS]
    try:
        for line, fields, error in source.records():
            if error:
                yield line, None, error
                continue
            if len(fields) != width:
                yield line, None, f"expected {width} columns as in the header, got {len(fields)}"
                continue
            item = {}
            for field, index in required:
                item[field] = fields[index].strip() or None
            for field, index in plain:
                value = fields[index].strip()
                if value:
                    item[field] = value
            for field, index in as_json:
                text = fields[index].strip()
                if text:
                    value, error = parse_json_object(text, field)
                    if error:
                        break
                    item[field] = value
            if error:
                yield line, None, error
                continue
            yield line, item, None
    finally:
        source.close()
