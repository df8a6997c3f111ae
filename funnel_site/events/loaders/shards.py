"""Splitting a large file into byte ranges that start on record boundaries, for a parallel import.

A CSV record may span lines (a quoted field holding a newline), so a byte offset is a record
boundary only if the reader is outside quotes there. `csv_boundaries` finds the first boundary at
or after each target offset by running the state machine of Python's csv reader (the ``excel``
dialect that ``CsvSource`` uses, fed line by line as ``LineSource`` does) over the raw bytes: the
characters it acts on (``"``, ``,``, CR, LF) are ASCII, which UTF-8 never uses inside a multi-byte
character, so bytes and decoded text agree. Compiled with numba, the scan reads about 1 GB/s, block by
block: a second or so for ten million rows, against minutes of import.

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

_BLOCK = 1 << 22  # bytes read per call of the scan

_START_RECORD, _START_FIELD, _IN_FIELD, _IN_QUOTED, _QUOTE_IN_QUOTED, _EAT_CRNL = range(6)
_LF, _CR, _QUOTE, _COMMA = 10, 13, 34, 44


@_compiled
def _scan(data, length, base, size, targets, cuts, lines, k, state, line, field, quoted):  # pragma: no cover
    """Run the reader's states over ``data[:length]``, the bytes of the file from offset ``base``.

    For each target offset (ascending, from index ``k``), records in ``cuts``/``lines`` the first
    record boundary at or after it and the 1-based line number there. Returns the scan's state to
    carry into the next block: ``(k, state, line, field, vouched)``; ``vouched`` is False when the
    reader would lose track of records (a csv.Error, a field near the size limit).
    """
    for i in range(length):
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
                return k, state, line, field, False
            if field >= _FIELD_LIMIT:
                return k, state, line, field, False
        # Unquoted (JSON lines), the state stays _START_RECORD: every line is a record.
        if c == _LF:  # the end of a physical line: the reader's end-of-line step
            line += 1
            if state == _START_FIELD or state == _IN_FIELD or state == _QUOTE_IN_QUOTED or state == _EAT_CRNL:
                state = _START_RECORD
            if state == _START_RECORD:
                field = 0
                end = base + i + 1  # a boundary: the offset after this line end
                while k < len(targets) and end >= targets[k]:
                    if end < size:
                        cuts[k] = end
                        lines[k] = line
                    k += 1
                if k == len(targets):
                    break
    return k, state, line, field, True


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
    targets = np.array([size * k // parts for k in range(1, parts)], dtype=np.int64)
    cuts = np.full(len(targets), -1, dtype=np.int64)
    lines = np.zeros(len(targets), dtype=np.int64)
    k, state, line, field = 0, _START_RECORD, 1, 0
    block = np.empty(_BLOCK, dtype=np.uint8)  # read block by block: memory stays small and flat
    with open(path, "rb", buffering=0) as fh:
        base = 3 if head == _BOM else 0  # the reader never sees a leading BOM (LineSource drops it)
        fh.seek(base)
        while k < len(targets) and (length := fh.readinto(memoryview(block))):
            k, state, line, field, vouched = _scan(block, length, base, size, targets, cuts, lines, k, state,
                                                   line, field, quoted)
            if not vouched:
                return None
            base += length
    spans: list[Span] = []
    start, first_line = 0, 1
    for cut, line in zip(cuts.tolist(), lines.tolist(), strict=True):
        if cut <= start:  # no boundary before the end, or the same one as the previous target
            continue
        spans.append(Span(start, cut, first_line))
        start, first_line = cut, line
    spans.append(Span(start, size, first_line))
    return spans if len(spans) > 1 else None
