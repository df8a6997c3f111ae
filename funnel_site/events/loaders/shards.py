"""Splitting a large file into byte ranges that start on record boundaries, for a parallel import.

A CSV record may span lines (a quoted field holding a newline), so a byte offset is a record
boundary only if the reader is outside quotes there. `csv_boundaries` finds the first boundary at
or after each target offset by running the state machine of Python's csv reader (the ``excel``
dialect that ``CsvSource`` uses, fed line by line as ``LineSource`` does) over the raw bytes: the
characters it acts on (``"``, ``,``, CR, LF) are ASCII, which UTF-8 never uses inside a multi-byte
character, so bytes and decoded text agree. Compiled with numba, the scan reads about 1 GB/s from
a memory map: a second or so for ten million rows, against minutes of import.

A file the scan cannot vouch for (gzip, a record the reader would refuse, a field near the csv
module's size limit, too few records) is not split: the import then runs in one process.
"""

# ruff: noqa: SIM109 - plain comparisons compile to the simplest code in numba
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import _BOM, _GZIP_MAGIC, Span

try:  # numba ships with shap (a requirement); without it the scan runs as plain (slow) Python.
    from numba import njit as _njit

    def _compiled(function):
        return _njit(cache=True, nogil=True)(function)
except ImportError:  # pragma: no cover
    def _compiled(function):
        return function

#: Python's csv module refuses a field longer than this (``csv.field_size_limit()``); a file with a
#: field anywhere near it is not split, since the reader resets after that error and the scan
#: would no longer know where records start.
_FIELD_LIMIT = 131_072

_START_RECORD, _START_FIELD, _IN_FIELD, _IN_QUOTED, _QUOTE_IN_QUOTED, _EAT_CRNL = range(6)
_LF, _CR, _QUOTE, _COMMA = 10, 13, 34, 44


@_compiled
def _scan(data, start, targets, quoted):  # pragma: no cover - compiled
    """For each target offset (ascending), the first record boundary at or after it and the
    1-based line number there; -1 when the file ends first or cannot be vouched for."""
    cuts = np.full(len(targets), -1, dtype=np.int64)
    lines = np.zeros(len(targets), dtype=np.int64)
    state = _START_RECORD
    line = 1
    field = 0
    k = 0
    n = len(data)
    for i in range(start, n):
        c = data[i]
        if quoted:  # one character through the csv reader's states (non-strict excel dialect)
            if state == _START_RECORD or state == _START_FIELD:  # the reader treats them alike here
                if c == _LF or c == _CR:
                    state = _EAT_CRNL
                elif c == _QUOTE:
                    state = _IN_QUOTED
                    field = 0
                elif c == _COMMA:
                    state = _START_FIELD
                else:
                    state = _IN_FIELD
                    field = 1
            elif state == _IN_FIELD:
                if c == _LF or c == _CR:
                    state = _EAT_CRNL
                elif c == _COMMA:
                    state = _START_FIELD
                else:
                    field += 1
            elif state == _IN_QUOTED:
                if c == _QUOTE:
                    state = _QUOTE_IN_QUOTED
                else:
                    field += 1
            elif state == _QUOTE_IN_QUOTED:
                if c == _QUOTE:
                    state = _IN_QUOTED
                    field += 1
                elif c == _COMMA:
                    state = _START_FIELD
                elif c == _LF or c == _CR:
                    state = _EAT_CRNL
                else:
                    state = _IN_FIELD
                    field += 1
            elif c != _LF and c != _CR:  # _EAT_CRNL: a character after a bare CR is a csv.Error
                return cuts, lines, False
            if field >= _FIELD_LIMIT:
                return cuts, lines, False
        # Unquoted (JSON lines), the state stays _START_RECORD: every line is a record.
        if c == _LF:  # the end of a physical line: the reader's end-of-line step
            line += 1
            if state == _START_FIELD or state == _IN_FIELD or state == _QUOTE_IN_QUOTED or state == _EAT_CRNL:
                state = _START_RECORD
            if state == _START_RECORD:
                field = 0
                while k < len(targets) and i + 1 >= targets[k]:
                    if i + 1 < n:
                        cuts[k] = i + 1
                        lines[k] = line
                    k += 1
                if k == len(targets):
                    break
    return cuts, lines, True


def split(path: Path | str, parts: int, *, quoted: bool = True, min_bytes: int = 1) -> list[Span] | None:
    """Cut the file at ``path`` into up to ``parts`` spans starting on record boundaries.

    ``quoted``: records are CSV (quotes may hold newlines); else every line is a record (JSON
    lines). The first span starts at byte 0 (a header is read there). ``None`` when the file
    should be read in one piece: compressed, smaller than ``min_bytes`` a part, or no cut found.
    """
    path = Path(path)
    size = path.stat().st_size
    parts = min(parts, size // max(min_bytes, 1))
    if parts < 2:
        return None
    with open(path, "rb") as fh:
        head = fh.read(3)
    if head[:2] == _GZIP_MAGIC:
        return None
    data = np.memmap(path, dtype=np.uint8, mode="r")
    targets = np.array([size * k // parts for k in range(1, parts)], dtype=np.int64)
    # the reader never sees a leading BOM (LineSource drops it)
    cuts, lines, vouched = _scan(data, 3 if head == _BOM else 0, targets, quoted)
    del data
    if not vouched:
        return None
    spans: list[Span] = []
    start, first_line = 0, 1
    for cut, line in zip(cuts.tolist(), lines.tolist(), strict=True):
        if cut <= start:  # no boundary before the end, or the same one as the previous target
            continue
        spans.append(Span(start, cut, first_line))
        start, first_line = cut, line
    spans.append(Span(start, size, first_line))
    return spans if len(spans) > 1 else None
