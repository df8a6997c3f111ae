"""Olist marketing funnel (B2B seller acquisition): PATH is the folder of its two CSVs.

* ``olist_marketing_qualified_leads_dataset.csv``
  ``mql_id,first_contact_date,landing_page_id,origin`` -> "Lead Created" at
  ``first_contact_date`` (a date: noon UTC), ``channel=origin`` (as written, e.g.
  ``organic_search``, ``paid_search``, ``social``; empty -> no channel),
  ``properties={"landing_page_id"}``;
* ``olist_closed_deals_dataset.csv`` ``mql_id,seller_id,sdr_id,sr_id,won_date,
  business_segment,lead_type,...`` -> "Deal Won" at ``won_date`` (read as UTC),
  ``properties`` = every other non-empty column (``business_segment``, ``lead_type``,
  ``lead_behaviour_profile``, ``business_type``, ``seller_id``, ...;
  ``declared_product_catalog_size`` and ``declared_monthly_revenue`` as numbers).

``contact_id`` is ``mql_id``. The deal carries no channel: a funnel breakdown attributes a
contact by its first step (the lead), and joining would need the leads in memory. Message
ids are ``olist:lead:<mql_id>`` and ``olist:won:<mql_id>``. Leads come first, then deals;
both files stream with constant memory. Row errors start with the file name; line numbers
are per file. Note that the lead date has no time of day: 33 deals are won on the day of
their first contact, and noon may then fall after the deal's time (one deal is even dated
before its lead); the data are kept as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .base import (
    CsvSource,
    LoaderError,
    Row,
    column_indexes,
    date_to_timestamp,
    find_file,
    naive_datetime_to_timestamp,
    open_binary,
    parse_float,
    reject_mapping,
)

FORMAT = "olist"
LEADS = (
    "olist_marketing_qualified_leads_dataset.csv",
    ("mql_id", "first_contact_date", "landing_page_id", "origin"),
)
DEALS = ("olist_closed_deals_dataset.csv", ("mql_id", "won_date"))
NUMERIC = ("declared_product_catalog_size", "declared_monthly_revenue")


def _open(path: Path, required):
    fh = open_binary(path)
    try:
        source = CsvSource(fh)
        if source.header is None:
            raise LoaderError(f"{path.name} is empty: it has no header line")
        column_indexes(source.header, {c: c for c in required}, required, source=path.name)
    except BaseException:
        fh.close()
        raise
    return source


def read(path: Path, *, mapping: dict[str, str] | None = None) -> Iterator[Row]:
    reject_mapping(mapping, FORMAT)
    directory = Path(path)
    if not directory.is_dir():
        raise LoaderError(f"{directory} is not a directory: the olist format reads a folder of tables")
    leads = find_file(directory, LEADS[0])
    deals = find_file(directory, DEALS[0])
    _open(leads, LEADS[1]).close()
    _open(deals, DEALS[1]).close()
    return _rows(leads, deals)


def _records(path: Path, required):
    source = _open(path, required)
    header = source.header
    width = len(header)
    try:
        for line, fields, error in source.records():
            if error:
                yield line, None, f"{path.name}: {error}"
            elif len(fields) != width:
                yield line, None, f"{path.name}: expected {width} columns as in the header, got {len(fields)}"
            else:
                yield line, {name: value.strip() for name, value in zip(header, fields, strict=True)}, None
    finally:
        source.close()


def _rows(leads: Path, deals: Path) -> Iterator[Row]:
    for line, row, error in _records(leads, LEADS[1]):
        if error:
            yield line, None, error
            continue
        timestamp = date_to_timestamp(row["first_contact_date"])
        if timestamp is None:
            yield line, None, f"{leads.name}: first_contact_date: not a date ({row['first_contact_date']!r})"
            continue
        mql = row["mql_id"]
        item = {
            "contact_id": mql or None,
            "event": "Lead Created",
            "timestamp": timestamp,
            "message_id": f"olist:lead:{mql}",
            "properties": {"landing_page_id": row["landing_page_id"]},
        }
        if row["origin"]:
            item["channel"] = row["origin"]
        yield line, item, None

    for line, row, error in _records(deals, DEALS[1]):
        if error:
            yield line, None, error
            continue
        timestamp = naive_datetime_to_timestamp(row["won_date"])
        if timestamp is None:
            yield line, None, f"{deals.name}: won_date: not a date and time ({row['won_date']!r})"
            continue
        mql = row["mql_id"]
        properties = {}
        for name, value in row.items():
            if name in ("mql_id", "won_date") or not value:
                continue
            if name in NUMERIC:
                number = parse_float(value)
                properties[name] = number if number is not None else value
            else:
                properties[name] = value
        yield (
            line,
            {
                "contact_id": mql or None,
                "event": "Deal Won",
                "timestamp": timestamp,
                "message_id": f"olist:won:{mql}",
                "properties": properties,
            },
            None,
        )
