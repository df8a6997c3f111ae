"""84.51° The Complete Journey: PATH is the folder of its CSV tables.

Files read (each may also be gzipped as ``<name>.gz``):

* ``campaign_descriptions.csv`` ``campaign_id,campaign_type,start_date,end_date``
  (27 rows; read into a dict, the only lookup kept);
* ``campaigns.csv`` ``campaign_id,household_id`` -> one "Campaign Received" per
  household x campaign at the campaign's ``start_date`` (noon UTC), ``campaign="cj-<id>"``,
  ``channel="direct_mail"`` (all Complete Journey campaigns are mailed coupon campaigns;
  their type A/B/C goes to ``properties.campaign_type`` with the start and end dates);
* ``coupon_redemptions.csv`` ``household_id,coupon_upc,campaign_id,redemption_date`` ->
  "Coupon Redeemed" at the redemption date (noon UTC), ``campaign="cj-<id>"``,
  ``channel="direct_mail"``, ``properties={"coupon_upc"}``;
* ``transactions.csv`` (the full table) or else ``transactions_sample.csv`` (the 75,000
  line sample shipped here) ``household_id,store_id,basket_id,product_id,quantity,
  sales_value,retail_disc,coupon_disc,...,transaction_timestamp`` -> one "Order Completed"
  per basket, ``value`` = the sum of ``sales_value`` (2 decimals), ``timestamp`` = the
  basket's earliest ``transaction_timestamp`` (read as UTC),
  ``properties={"basket_id", "store_id", "items" (line items), "quantity",
  "retail_disc", "coupon_disc"}``.

Other tables in the folder (``coupons.csv``, ``products.csv``, ``demographics.csv``,
``promotions_sample.csv``, ``DESCRIPTION``) are not events and are not read.

``contact_id`` is ``household_id``. Message ids come from natural keys:
``cj:campaign:<campaign>:<household>``, ``cj:coupon:<household>:<campaign>:<upc>:<date>``,
``cj:basket:<basket_id>``, so a re-import dedupes.

Memory. The transaction files are not sorted by basket, so a basket's total is known only
after the whole file is read: one streaming pass keeps a small running aggregate per
basket (about 200 bytes; 47,243 baskets in the sample, about 10 MB; the full table's
~155,000 baskets about 30 MB), i.e. memory is O(baskets), not O(line items), and the
baskets are yielded after the pass in the order of their first line. Every other file
streams with constant memory. Row numbers are per file and row errors start with the
file name.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from .base import (
    CsvSource,
    LoaderError,
    Row,
    column_indexes,
    date_to_timestamp,
    find_file,
    open_binary,
    parse_float,
    reject_mapping,
)

FORMAT = "completejourney"
CHANNEL = "direct_mail"

DESCRIPTIONS = ("campaign_descriptions.csv", ("campaign_id", "campaign_type", "start_date", "end_date"))
CAMPAIGNS = ("campaigns.csv", ("campaign_id", "household_id"))
REDEMPTIONS = ("coupon_redemptions.csv", ("household_id", "coupon_upc", "campaign_id", "redemption_date"))
TRANSACTIONS = (
    ("transactions.csv", "transactions_sample.csv"),
    (
        "household_id",
        "store_id",
        "basket_id",
        "quantity",
        "sales_value",
        "retail_disc",
        "coupon_disc",
        "transaction_timestamp",
    ),
)


def campaign_key(campaign_id: str) -> str:
    return f"cj-{campaign_id}"


def _open(path: Path, required) -> tuple[CsvSource, dict[str, int], int]:
    fh = open_binary(path)
    try:
        source = CsvSource(fh)
        if source.header is None:
            raise LoaderError(f"{path.name} is empty: it has no header line")
        indexes = column_indexes(source.header, {c: c for c in required}, required, source=path.name)
    except BaseException:
        fh.close()
        raise
    return source, indexes, len(source.header)


def read(path: Path, *, mapping: dict[str, str] | None = None) -> Iterator[Row]:
    reject_mapping(mapping, FORMAT)
    directory = Path(path)
    if not directory.is_dir():
        raise LoaderError(
            f"{directory} is not a directory: the completejourney format reads a folder of tables"
        )
    files = [
        (find_file(directory, DESCRIPTIONS[0]), DESCRIPTIONS[1]),
        (find_file(directory, CAMPAIGNS[0]), CAMPAIGNS[1]),
        (find_file(directory, REDEMPTIONS[0]), REDEMPTIONS[1]),
        (find_file(directory, *TRANSACTIONS[0]), TRANSACTIONS[1]),
    ]
    for file, required in files:  # validate every header before anything is yielded
        _open(file, required)[0].close()
    return _rows(files)


def _records(file: Path, required):
    """``(line, values-by-column, error)`` for each data row of one table."""
    source, indexes, width = _open(file, required)
    name = file.name
    try:
        for line, fields, error in source.records():
            if error:
                yield line, None, f"{name}: {error}"
            elif len(fields) != width:
                yield line, None, f"{name}: expected {width} columns as in the header, got {len(fields)}"
            else:
                yield line, {c: fields[i].strip() for c, i in indexes.items()}, None
    finally:
        source.close()


def _rows(files) -> Iterator[Row]:
    (descriptions_file, d_cols), (campaigns_file, c_cols), (redemptions_file, r_cols), (tx_file, t_cols) = (
        files
    )

    campaigns: dict[str, dict] = {}
    for line, row, error in _records(descriptions_file, d_cols):
        if error:
            yield line, None, error
            continue
        start = date_to_timestamp(row["start_date"])
        if start is None:
            yield line, None, f"{descriptions_file.name}: start_date: not a date ({row['start_date']!r})"
            continue
        campaigns[row["campaign_id"]] = {
            "timestamp": start,
            "properties": {
                "campaign_type": row["campaign_type"],
                "campaign_start": row["start_date"],
                "campaign_end": row["end_date"],
            },
        }

    name = campaigns_file.name
    for line, row, error in _records(campaigns_file, c_cols):
        if error:
            yield line, None, error
            continue
        campaign_id, household = row["campaign_id"], row["household_id"]
        known = campaigns.get(campaign_id)
        if known is None:
            yield line, None, f"{name}: campaign_id: unknown campaign {campaign_id!r}"
            continue
        yield (
            line,
            {
                "contact_id": household or None,
                "event": "Campaign Received",
                "timestamp": known["timestamp"],
                "campaign": campaign_key(campaign_id),
                "channel": CHANNEL,
                "message_id": f"cj:campaign:{campaign_id}:{household}",
                "properties": dict(known["properties"]),
            },
            None,
        )

    name = redemptions_file.name
    for line, row, error in _records(redemptions_file, r_cols):
        if error:
            yield line, None, error
            continue
        timestamp = date_to_timestamp(row["redemption_date"])
        if timestamp is None:
            yield line, None, f"{name}: redemption_date: not a date ({row['redemption_date']!r})"
            continue
        household, campaign_id, upc = row["household_id"], row["campaign_id"], row["coupon_upc"]
        yield (
            line,
            {
                "contact_id": household or None,
                "event": "Coupon Redeemed",
                "timestamp": timestamp,
                "campaign": campaign_key(campaign_id),
                "channel": CHANNEL,
                "message_id": f"cj:coupon:{household}:{campaign_id}:{upc}:{row['redemption_date']}",
                "properties": {"coupon_upc": upc},
            },
            None,
        )

    yield from _baskets(tx_file, t_cols)


def _baskets(tx_file: Path, t_cols) -> Iterator[Row]:
    name = tx_file.name
    # basket_id -> [first line, household, store, earliest timestamp text, sales, items, quantity,
    #               retail_disc, coupon_disc]
    baskets: dict[str, list] = {}
    for line, row, error in _records(tx_file, t_cols):
        if error:
            yield line, None, error
            continue
        numbers = []
        for column in ("sales_value", "quantity", "retail_disc", "coupon_disc"):
            number = parse_float(row[column] or "0")
            if number is None:
                error = f"{name}: {column}: not a number ({row[column]!r})"
                break
            numbers.append(number)
        if error:
            yield line, None, error
            continue
        stamp = row["transaction_timestamp"]
        try:
            moment = datetime.fromisoformat(stamp)
        except ValueError:
            yield line, None, f"{name}: transaction_timestamp: not a date and time ({stamp!r})"
            continue
        sales, quantity, retail, coupon = numbers
        basket = baskets.get(row["basket_id"])
        if basket is None:
            baskets[row["basket_id"]] = [
                line,
                row["household_id"],
                row["store_id"],
                moment,
                sales,
                1,
                quantity,
                retail,
                coupon,
            ]
        else:
            if moment < basket[3]:
                basket[3] = moment
            basket[4] += sales
            basket[5] += 1
            basket[6] += quantity
            basket[7] += retail
            basket[8] += coupon
    for basket_id, (
        line,
        household,
        store,
        moment,
        sales,
        items,
        quantity,
        retail,
        coupon,
    ) in baskets.items():
        timestamp = moment.isoformat() if moment.tzinfo else moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        yield (
            line,
            {
                "contact_id": household or None,
                "event": "Order Completed",
                "timestamp": timestamp,
                "value": round(sales, 2),
                "message_id": f"cj:basket:{basket_id}",
                "properties": {
                    "basket_id": basket_id,
                    "store_id": store,
                    "items": items,
                    "quantity": round(quantity, 3),
                    "retail_disc": round(retail, 2),
                    "coupon_disc": round(coupon, 2),
                },
            },
            None,
        )
