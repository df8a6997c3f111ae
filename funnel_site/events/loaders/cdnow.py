"""CDNOW purchases: whitespace-separated ``customer_id date(YYYYMMDD) number_of_cds dollar_value``.

Every line is one order: ``event="Order Completed"``, ``contact_id=customer_id`` (as
written, leading zeros kept), ``value=dollar_value`` (float), ``properties={"cds": n}``,
``timestamp`` = the date at noon UTC (``1997-01-01T12:00:00Z``: the data have days only;
noon keeps the stated calendar date in every time zone from UTC-11 to UTC+11, so day
buckets do not shift by one).

A header line (its first field not a number) may be present; then the columns are found
by name and ``--map`` may rename them. Without one the columns are positional. The 1/10
sample ``CDNOW_sample.txt`` has five fields, ``customer_id sample_id date cds value``; its
first field is the master customer id, which is used, so the sample and the master file
produce the same ids.

Message ids. ``cdnow:<customer>:<date>:<cds>:<value>``. Identical lines are real: a
customer buying the same number of CDs for the same amount twice on one day is two orders
(the master file has 255 such repeats), so the 2nd, 3rd... occurrence gets ``#1``,
``#2``... appended. The occurrence counter is kept only for the current customer (the file
is grouped by customer), so memory stays constant; if a customer's lines were split
across the file, a repeat in a later block would restart the count and be seen as a
duplicate.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .base import (
    LoaderError,
    MappingError,
    MissingColumnError,
    Row,
    date_to_timestamp,
    iter_binary_lines,
    open_binary,
    parse_float,
    resolve_mapping,
)

FORMAT = "cdnow"
EVENT = "Order Completed"
COLUMNS = ("customer_id", "date", "number_of_cds", "dollar_value")
ALIASES = {"contact_id": "customer_id", "timestamp": "date", "value": "dollar_value"}


def read(path: Path, *, mapping: dict[str, str] | None = None) -> Iterator[Row]:
    columns = resolve_mapping(mapping, COLUMNS, aliases=ALIASES, format_name=FORMAT)
    fh = open_binary(path)
    try:
        lines = iter_binary_lines(fh)
        first = None
        for line, raw in lines:
            if raw.strip():
                first = (line, raw)
                break
        if first is None:
            raise LoaderError("the file is empty")
        try:
            tokens = first[1].decode("utf-8").split()
        except UnicodeDecodeError:
            raise LoaderError(f"line {first[0]} is not valid UTF-8") from None
        if tokens[0].isdigit():
            if mapping:
                raise MappingError("--map needs a header line; this file has none (columns are positional)")
            positions = None  # decided by the width of each line: 4, or 5 for the sample
        else:
            positions = {}
            for name in COLUMNS:
                column = columns[name]
                if column not in tokens:
                    raise MissingColumnError(column, name)
                positions[name] = tokens.index(column)
            first = None
    except BaseException:
        fh.close()
        raise
    return _rows(fh, lines, first, positions)


def _rows(fh, lines, first, positions) -> Iterator[Row]:
    state = {"customer": None, "seen": {}}
    try:
        if first is not None:
            yield _row(first[0], first[1], positions, state)
        for line, raw in lines:
            if raw.strip():
                yield _row(line, raw, positions, state)
    finally:
        fh.close()


def _row(line: int, raw: bytes, positions, state) -> Row:
    try:
        tokens = raw.decode("utf-8").split()
    except UnicodeDecodeError:
        return line, None, f"line {line} is not valid UTF-8"
    if positions is None:
        if len(tokens) == 4:
            customer, day, cds, dollars = tokens
        elif len(tokens) == 5:
            customer, _sample_id, day, cds, dollars = tokens
        else:
            return (
                line,
                None,
                (
                    f"expected 4 whitespace-separated fields (customer_id date number_of_cds dollar_value), "
                    f"got {len(tokens)}"
                ),
            )
    else:
        try:
            customer, day, cds, dollars = (tokens[positions[name]] for name in COLUMNS)
        except IndexError:
            return (
                line,
                None,
                f"expected {max(positions.values()) + 1} fields as in the header, got {len(tokens)}",
            )
    timestamp = date_to_timestamp(day)
    if timestamp is None or len(day) != 8:
        return line, None, f"date: not a YYYYMMDD date ({day!r})"
    try:
        count = int(cds)
    except ValueError:
        return line, None, f"number_of_cds: not an integer ({cds!r})"
    value = parse_float(dollars)
    if value is None:
        return line, None, f"dollar_value: not a number ({dollars!r})"
    key = (day, cds, dollars)
    if customer != state["customer"]:
        state["customer"] = customer
        state["seen"] = {key: 1}
        occurrence = 0
    else:
        seen = state["seen"]
        occurrence = seen.get(key, 0)
        seen[key] = occurrence + 1
    message_id = f"cdnow:{customer}:{day}:{cds}:{dollars}"
    if occurrence:
        message_id += f"#{occurrence}"
    item = {
        "contact_id": customer,
        "event": EVENT,
        "timestamp": timestamp,
        "value": value,
        "message_id": message_id,
        "properties": {"cds": count},
    }
    return line, item, None
