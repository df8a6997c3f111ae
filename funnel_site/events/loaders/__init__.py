"""File loaders: each turns one file format into canonical event items, streaming.

Pure Python, no Django: ``import_events`` calls them and hands the items to the ingest
service, which parses and validates timestamps and everything else.

The canonical event item is a dict:

==============  ======================================================================
``contact_id``  str
``event``       str (``None`` only in a Segment identify item, marked ``_type="identify"``)
``timestamp``   as given: ISO-8601 text, or unix seconds/ms (a number or numeric text)
``campaign``    optional str key
``channel``     optional str
``value``       optional float or numeric str
``message_id``  optional str (the loaders of id-less data sets derive a stable one)
``properties``  optional dict
``email``       optional str (contact attribute)
``traits``      optional dict (contact attribute)
==============  ======================================================================

Every loader has the signature::

    read(path: Path, *, mapping: dict[str, str] | None = None) -> Iterator[Row]

with ``Row = (line_number, item | None, error | None)``. Calling ``read`` validates the
header (or the folder's files) at once and raises ``MissingColumnError`` ("missing
required column 'event'"), ``MissingFileError``, ``MappingError`` or another
``LoaderError`` before anything is yielded; the rows are then produced lazily with
constant memory (``completejourney`` keeps one small aggregate per basket, see there).
``mapping`` is ``--map field=column``: ``{"contact_id": "user"}`` reads the field
``contact_id`` from the column ``user``. Gzip files are read transparently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from . import canonical_csv, cdnow, completejourney, jsonl, olist, segment, taobao
from .base import (
    CANONICAL_FIELDS,
    REQUIRED_FIELDS,
    LoaderError,
    MappingError,
    MissingColumnError,
    MissingFileError,
    Row,
    open_binary,
    open_text,
)
from .segment import SegmentMessageError, segment_message_to_item

Loader = Callable[..., Iterator[Row]]

LOADERS: dict[str, Loader] = {
    "csv": canonical_csv.read,
    "jsonl": jsonl.read,
    "segment": segment.read,
    "taobao": taobao.read,
    "cdnow": cdnow.read,
    "completejourney": completejourney.read,
    "olist": olist.read,
}
#: Formats that also yield rows as tuples the ingest service validates without a dict (fast path).
RECORD_LOADERS: dict[str, Loader] = {"csv": canonical_csv.read_records}
FORMATS: tuple[str, ...] = tuple(LOADERS)
#: Formats whose PATH is a folder of tables rather than one file.
DIRECTORY_FORMATS = frozenset({"completejourney", "olist"})


def get_loader(format_name: str) -> Loader:
    try:
        return LOADERS[format_name]
    except KeyError:
        raise LoaderError(f"unknown format '{format_name}' (one of {', '.join(FORMATS)})") from None


def read(
    path: Path | str, format_name: str = "csv", *, mapping: dict[str, str] | None = None
) -> Iterator[Row]:
    """``LOADERS[format_name](Path(path), mapping=mapping)``."""
    return get_loader(format_name)(Path(path), mapping=mapping)


def guess_format(path: Path | str) -> str:
    """A best guess of the format from the path (for a default; ``--format`` wins)."""
    path = Path(path)
    if path.is_dir():
        if (path / "campaign_descriptions.csv").exists() or (path / "campaign_descriptions.csv.gz").exists():
            return "completejourney"
        if any(path.glob("olist_*")):
            return "olist"
        raise LoaderError(f"cannot tell the format of the folder {path}: pass --format")
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.startswith("cdnow") and name.endswith(".txt"):
        return "cdnow"
    if name.startswith("userbehavior"):
        return "taobao"
    return "csv"


__all__ = [
    "CANONICAL_FIELDS",
    "DIRECTORY_FORMATS",
    "FORMATS",
    "LOADERS",
    "REQUIRED_FIELDS",
    "LoaderError",
    "MappingError",
    "MissingColumnError",
    "MissingFileError",
    "RECORD_LOADERS",
    "Row",
    "SegmentMessageError",
    "get_loader",
    "guess_format",
    "open_binary",
    "open_text",
    "read",
    "segment_message_to_item",
]
