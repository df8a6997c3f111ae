"""Shared pieces of the file loaders: the row type, the errors, reading text and CSV.

Everything here is pure Python (no Django), streams, and keeps constant memory.

A loader yields ``Row`` tuples ``(line_number, item, error)``:

* ``line_number`` is the 1-based physical line of the file where the row starts
  (for a CSV the header is line 1 and the first data row line 2; a quoted field
  spanning lines makes the next row start further down);
* ``item`` is a canonical event dict (see ``funnel_site.events.loaders``) or ``None``;
* ``error`` is ``None`` or one sentence naming the field, for a row that cannot even be
  turned into an item. The ingest service validates items further.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import os
import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, NamedTuple

try:  # orjson is in requirements.txt; fall back to the standard library.
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised only without orjson
    _orjson = None

Item = dict[str, Any]
Row = tuple[int, "Item | None", "str | None"]

#: The fields of a canonical event item.
CANONICAL_FIELDS = (
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
)
REQUIRED_FIELDS = ("contact_id", "event", "timestamp")

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = codecs.BOM_UTF8


class LoaderError(ValueError):
    """The file as a whole cannot be read: nothing must be imported."""


class MissingColumnError(LoaderError):
    """A required column is absent from the header (raised before any row is yielded)."""

    def __init__(self, column: str, field: str | None = None, source: str | None = None):
        self.column = column
        self.field = field
        self.source = source
        message = f"missing required column '{column}'"
        if field and field != column:
            message += f" (mapped to field '{field}')"
        if source:
            message += f" in {source}"
        super().__init__(message)


class MissingFileError(LoaderError):
    """A directory format lacks one of its files."""

    def __init__(self, name: str, directory: Path | str):
        self.name = name
        self.directory = str(directory)
        super().__init__(f"missing file '{name}' in {directory}")


class MappingError(LoaderError):
    """A ``--map field=column`` option that this format cannot honour."""


# --------------------------------------------------------------------------- text


class Span(NamedTuple):
    """A byte range of a file that starts at a record boundary: ``[start, end)``, and the
    physical line number its first byte is on (see ``loaders.shards``)."""

    start: int
    end: int
    first_line: int


class _RangeReader(io.RawIOBase):
    """The bytes ``[start, end)`` of a file, as a raw stream (end of file at ``end``)."""

    def __init__(self, path: Path | str, start: int, end: int):
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY)
        self._pos = start
        self._end = end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        size = min(len(buffer), self._end - self._pos)
        if size <= 0:
            return 0
        data = os.pread(self._fd, size, self._pos)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def open_span(path: Path | str, span: Span) -> IO[bytes]:
    """Open the byte range ``span`` of an uncompressed file for reading."""
    return io.BufferedReader(_RangeReader(path, span.start, span.end), buffer_size=1 << 20)


class _OwnedGzip(gzip.GzipFile):
    """A GzipFile that closes the underlying file object it was given."""

    def close(self) -> None:
        fileobj = self.fileobj
        try:
            super().close()
        finally:
            if fileobj is not None:
                fileobj.close()


def open_binary(path: Path | str) -> IO[bytes]:
    """Open ``path`` for reading bytes, decompressing gzip transparently.

    Gzip is recognised by its magic bytes, so ``events.csv.gz`` and a gzip file without
    the suffix both work.
    """
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller
    try:
        magic = raw.read(2)
        raw.seek(0)
    except BaseException:
        raw.close()
        raise
    if magic == _GZIP_MAGIC:
        return _OwnedGzip(fileobj=raw, mode="rb")
    return raw


def open_text(path: Path | str) -> IO[str]:
    """Open ``path`` as UTF-8 text (a leading BOM dropped), reading ``.gz`` transparently.

    Newlines are passed through untranslated (``newline=""``), as the csv module wants.
    """
    return io.TextIOWrapper(open_binary(path), encoding="utf-8-sig", newline="")


class LineSource:
    """Decoded physical lines of a binary file, one by one, for ``csv.reader``.

    Each line is decoded on its own so that a byte sequence that is not UTF-8 spoils
    only the row it is on: ``bad_line`` records the first such line since the last
    ``take_bad()``. A UTF-8 BOM at the start is dropped.
    """

    __slots__ = ("_fh", "_first_line", "bad_line", "lineno")

    def __init__(self, fh: IO[bytes], first_line: int = 1):
        self._fh = fh
        self._first_line = first_line
        self.lineno = first_line - 1
        self.bad_line = 0

    def __iter__(self) -> Iterator[str]:
        for lineno, raw in enumerate(self._fh, self._first_line):
            self.lineno = lineno
            if lineno == 1 and raw.startswith(_BOM):
                raw = raw[3:]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                if not self.bad_line:
                    self.bad_line = lineno
                yield raw.decode("utf-8", "replace")

    def take_bad(self) -> int:
        bad, self.bad_line = self.bad_line, 0
        return bad


def iter_binary_lines(fh: IO[bytes], first_line: int = 1) -> Iterator[tuple[int, bytes]]:
    """``(line_number, raw_line)`` for every physical line, the BOM of line 1 dropped."""
    for lineno, raw in enumerate(fh, first_line):
        if lineno == 1 and raw.startswith(_BOM):
            raw = raw[3:]
        yield lineno, raw


class CsvSource:
    """A streaming CSV reader that knows the physical line each record starts on.

    ``header`` is the first non-blank record (stripped names); ``records()`` then yields
    ``(line_number, fields, error)`` where ``error`` reports a line that is not UTF-8 or a
    record the csv module refused (e.g. a field over the size limit). Blank lines are
    skipped. Constant memory. ``first_line`` is the line number of the first byte of ``fh``
    (a byte range of a file that starts further down, see ``open_span``).
    """

    def __init__(self, fh: IO[bytes], *, delimiter: str = ",", has_header: bool = True, first_line: int = 1):
        self._fh = fh
        self._lines = LineSource(fh, first_line)
        self._reader = csv.reader(iter(self._lines), delimiter=delimiter)
        self._base = first_line - 1  # csv.reader counts lines from 1 in its own stream
        self._last = self._base  # physical line where the previous record ended
        self.header: list[str] | None = None
        self.header_line = 0
        self._pending: tuple[int, list[str], str | None] | None = None
        if has_header:
            first = self._next_record()
            if first is not None:
                line, fields, error = first
                if error:
                    raise LoaderError(f"line {line}: unreadable header: {error}")
                self.header = [name.strip() for name in fields]
                self.header_line = line

    def _next_record(self) -> tuple[int, list[str], str | None] | None:
        reader = self._reader
        while True:
            start = self._last + 1
            try:
                fields = next(reader)
            except StopIteration:
                return None
            except csv.Error as exc:
                self._last = self._base + reader.line_num
                self._lines.take_bad()
                return start, [], f"unreadable CSV record ({exc})"
            self._last = self._base + reader.line_num
            bad = self._lines.take_bad()
            if not fields:
                if bad:  # a blank-looking line that was not UTF-8
                    return start, [], f"line {bad} is not valid UTF-8"
                continue
            if bad:
                return start, fields, f"line {bad} is not valid UTF-8"
            if len(fields) == 1 and not fields[0].strip():
                continue  # a line of spaces only
            return start, fields, None

    def peek(self) -> tuple[int, list[str], str | None] | None:
        if self._pending is None:
            self._pending = self._next_record()
        return self._pending

    def records(self) -> Iterator[tuple[int, list[str], str | None]]:
        if self._pending is not None:
            record, self._pending = self._pending, None
            yield record
        while True:
            record = self._next_record()
            if record is None:
                return
            yield record

    def close(self) -> None:
        self._fh.close()


def find_file(directory: Path, *names: str) -> Path:
    """The first of ``names`` (or ``name.gz``) present in ``directory``; ``MissingFileError``."""
    for name in names:
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise MissingFileError(" or ".join(names), directory)


# --------------------------------------------------------------------------- mapping


def resolve_mapping(
    mapping: dict[str, str] | None,
    fields: Iterable[str],
    *,
    aliases: dict[str, str] | None = None,
    format_name: str,
) -> dict[str, str]:
    """Return ``{field: column}`` for every field, applying ``--map field=column``.

    ``aliases`` lets a format with its own column names accept canonical field names as
    keys too (e.g. Taobao's ``contact_id`` stands for its ``user_id`` column).
    """
    fields = tuple(fields)
    resolved = {name: name for name in fields}
    for key, column in (mapping or {}).items():
        field = (aliases or {}).get(key, key)
        if field not in resolved:
            known = ", ".join(sorted(set(fields) | set(aliases or {})))
            raise MappingError(f"unknown field '{key}' in --map for format '{format_name}' (known: {known})")
        if not isinstance(column, str) or not column.strip():
            raise MappingError(f"--map {key}= needs a column name")
        resolved[field] = column.strip()
    return resolved


def reject_mapping(mapping: dict[str, str] | None, format_name: str) -> None:
    if mapping:
        raise MappingError(f"--map is not supported for format '{format_name}'")


def column_indexes(
    header: list[str],
    columns: dict[str, str],
    required: Iterable[str],
    *,
    explicit: Iterable[str] = (),
    source: str | None = None,
) -> dict[str, int]:
    """Positions of the mapped columns; ``MissingColumnError`` for an absent required one.

    A field named in ``explicit`` (it was given with ``--map``) is required as well: the
    user asked for that column.
    """
    positions: dict[str, int] = {}
    for index, name in enumerate(header):
        if name in positions:
            raise LoaderError(
                f"duplicate column '{name}' in the header" + (f" of {source}" if source else "")
            )
        positions[name] = index
    must = set(required) | set(explicit)
    found: dict[str, int] = {}
    for field, column in columns.items():
        if column in positions:
            found[field] = positions[column]
        elif field in must:
            raise MissingColumnError(column, field, source)
    return found


# --------------------------------------------------------------------------- values


if _orjson is not None:
    _JSONDecodeError: tuple[type[Exception], ...] = (_orjson.JSONDecodeError,)
    loads = _orjson.loads
else:  # pragma: no cover
    _JSONDecodeError = (json.JSONDecodeError,)
    loads = json.loads


def json_error_reason(exc: Exception) -> str:
    return str(exc).split("\n", 1)[0] or exc.__class__.__name__


def parse_json_object(text: str | bytes, field: str) -> tuple[dict | None, str | None]:
    """Parse JSON object text; ``(value, None)`` or ``(None, error naming the field)``."""
    try:
        value = loads(text)
    except _JSONDecodeError as exc:
        return None, f"{field}: invalid JSON ({json_error_reason(exc)})"
    except (TypeError, ValueError) as exc:
        return None, f"{field}: invalid JSON ({exc})"
    if not isinstance(value, dict):
        return None, f"{field}: must be a JSON object, not {type(value).__name__}"
    return value, None


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_COMPACT_DATE_RE = re.compile(r"^\d{8}$")


def date_to_timestamp(text: str) -> str | None:
    """``YYYY-MM-DD`` or ``YYYYMMDD`` -> ISO-8601 at noon UTC, or ``None`` if not a date.

    Day-resolution data (CDNOW, Complete Journey, Olist) become noon UTC: that instant
    falls on the same calendar date in every time zone from UTC-11 to UTC+11, so a
    workspace's day buckets keep the date the data set states.
    """
    text = text.strip()
    if _COMPACT_DATE_RE.match(text):
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    elif not _DATE_RE.match(text):
        return None
    try:
        date.fromisoformat(text)
    except ValueError:
        return None
    return f"{text}T12:00:00Z"


def naive_datetime_to_timestamp(text: str) -> str | None:
    """``YYYY-MM-DD HH:MM:SS`` (no zone) -> ISO-8601 in UTC, or ``None`` if unreadable.

    The data sets that write local times without a zone (Complete Journey, Olist) do not
    say which zone; they are read as UTC so that all their events share one clock.
    """
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        return moment.isoformat()
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_float(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return value
