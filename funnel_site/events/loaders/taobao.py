"""Alibaba Taobao UserBehavior: ``user_id,item_id,category_id,behavior_type,timestamp``.

Each row becomes ``contact_id=user_id``, ``event=behavior_type`` (``pv``, ``fav``,
``cart``, ``buy``, kept as they are: the stage map knows them), ``timestamp`` = the unix
seconds as an int, ``properties={"item_id", "category_id"}``. The file may have a header
line (then ``--map`` may rename columns, by the canonical field or by the Taobao column
name) or none, as the official ``UserBehavior.csv`` (then the columns are positional).

Rows outside the official window, 2017-11-25 00:00:00 .. 2017-12-03 23:59:59 UTC+8
(a few upstream timestamps fall outside), are row errors "timestamp outside the dataset
window".

Message ids. The rows carry no id, so ``message_id`` is built from the row itself:
``taobao:<user>:<item>:<behavior>:<timestamp>``, which makes a re-import (or an import of
an overlapping extract of the same upstream file) dedupe. No occurrence counter: two
identical rows say the same user did the same thing to the same item in the same second,
which the tracker cannot tell apart from one logged twice, and the upstream file is known
to contain such duplicated log lines. So identical rows share an id and the second is
reported by the ingest as a duplicate (visible in the summary), and no memory is needed
to count occurrences. (CDNOW, where identical rows are genuine separate orders on the
same day, does count them: see ``cdnow``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .base import (
    CsvSource,
    LoaderError,
    MappingError,
    Row,
    Span,
    column_indexes,
    open_binary,
    open_span,
    resolve_mapping,
)

FORMAT = "taobao"
COLUMNS = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")
ALIASES = {"contact_id": "user_id", "event": "behavior_type"}

_CST = timezone(timedelta(hours=8))
#: The official window of the data set, inclusive, as unix seconds.
WINDOW = (
    int(datetime(2017, 11, 25, 0, 0, 0, tzinfo=_CST).timestamp()),
    int(datetime(2017, 12, 3, 23, 59, 59, tzinfo=_CST).timestamp()),
)


def read(
    path: Path,
    *,
    mapping: dict[str, str] | None = None,
    window: tuple[int, int] | None = WINDOW,
    span: Span | None = None,
) -> Iterator[Row]:
    """Check the header (or its absence) now, then stream the rows; ``span``: one byte range of
    the file (see ``loaders.shards``), whose columns the first line of the whole file decides."""
    columns = resolve_mapping(mapping, COLUMNS, aliases=ALIASES, format_name=FORMAT)
    fh = open_binary(path)
    try:
        source = CsvSource(fh, has_header=False)
        records = source.records()
        first = next(records, None)
        if first is None:
            raise LoaderError("the file is empty")
        line, fields, error = first
        headerless = not error and bool(fields) and fields[0].strip().isdigit()
        if headerless:
            if mapping:
                raise MappingError("--map needs a header line; this file has none (columns are positional)")
            indexes = {name: i for i, name in enumerate(COLUMNS)}
            width = len(COLUMNS)
        else:
            if error:
                raise LoaderError(f"line {line}: unreadable header: {error}")
            header = [name.strip() for name in fields]
            indexes = column_indexes(header, columns, COLUMNS)
            width = len(header)
            first = None
    except BaseException:
        fh.close()
        raise
    if span is not None:
        source.close()
        source = CsvSource(open_span(path, span), has_header=False, first_line=span.first_line)
        records = source.records()
        first = None
        if span.start == 0 and not headerless:
            next(records, None)  # the header again
    return _rows(source, records, first, indexes, width, window)


def _rows(source, records, first, indexes, width, window) -> Iterator[Row]:
    iu, ii, ic, ib, it = (indexes[name] for name in COLUMNS)
    low, high = window if window else (None, None)
    try:
        if first is not None:
            yield _row(first, iu, ii, ic, ib, it, width, low, high)
        for record in records:
            yield _row(record, iu, ii, ic, ib, it, width, low, high)
    finally:
        source.close()


def _row(record, iu, ii, ic, ib, it, width, low, high) -> Row:
    line, fields, error = record
    if error:
        return line, None, error
    if len(fields) != width:
        return line, None, f"expected {width} columns, got {len(fields)}"
    text = fields[it].strip()
    try:
        timestamp = int(text)
    except ValueError:
        return line, None, f"timestamp: not unix seconds ({text!r})"
    if low is not None and not (low <= timestamp <= high):
        return line, None, "timestamp outside the dataset window (2017-11-25 .. 2017-12-03 UTC+8)"
    user = fields[iu].strip()
    item_id = fields[ii].strip()
    behavior = fields[ib].strip()
    item = {
        "contact_id": user or None,
        "event": behavior or None,
        "timestamp": timestamp,
        "message_id": f"taobao:{user}:{item_id}:{behavior}:{timestamp}",
        "properties": {"item_id": item_id, "category_id": fields[ic].strip()},
    }
    return line, item, None
