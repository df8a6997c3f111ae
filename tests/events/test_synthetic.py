import bisect
import inspect
import tracemalloc
from datetime import UTC, datetime
from itertools import groupby, islice

import pytest

from funnel_site.events import synthetic
from funnel_site.events.synthetic import (
    CHANNELS,
    EVENTS,
    ROW_FIELDS,
    generate,
    generate_columns,
    generate_rows,
)

from .loaders.canonical import assert_canonical

START = datetime(2024, 1, 1, tzinfo=UTC)
DAY = 86400


def test_deterministic_for_a_seed():
    first = list(generate(contacts=300, seed=7, start=START))
    assert first == list(generate(contacts=300, seed=7, start=START))
    assert first != list(generate(contacts=300, seed=8, start=START))


def test_shards_give_the_same_events():
    whole = list(generate(contacts=200, seed=3, start=START, days=30))
    parts = list(generate(contacts=120, seed=3, start=START, days=30)) + list(
        generate(contacts=80, seed=3, start=START, days=30, first_contact=120)
    )
    assert parts == whole


def test_rows_and_columns_match_the_items():
    items = list(generate(contacts=50, seed=1, start=START))
    rows = list(generate_rows(contacts=50, seed=1, start=START))
    assert len(rows) == len(items)
    for row, item in zip(rows, items, strict=True):
        expected = {k: v for k, v in zip(ROW_FIELDS, row, strict=True) if v is not None}
        assert expected == item
    columns = list(generate_columns(contacts=50, seed=1, start=START, batch_size=1000))
    assert sum(len(batch["event"]) for batch in columns) == len(items)
    assert columns[0]["message_id"][:3] == [row[6] for row in rows[:3]]


def test_items_are_canonical_and_plausible():
    start_ts, end_ts = START.timestamp(), START.timestamp() + 90 * DAY
    ids = set()
    contacts = 0
    for _, events in groupby(generate(contacts=400, seed=11, start=START), key=lambda i: i["contact_id"]):
        events = list(events)
        contacts += 1
        assert "traits" in events[0] and all("traits" not in e for e in events[1:])
        assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
        for item in events:
            assert_canonical(item)
            assert item["event"] in EVENTS
            assert item.get("channel", "email") in CHANNELS
            assert isinstance(item["timestamp"], int) and start_ts <= item["timestamp"] < end_ts
            assert item["message_id"] not in ids
            ids.add(item["message_id"])
            if item["event"] == "Order Completed":
                assert isinstance(item["value"], float) and item["value"] > 0
            else:
                assert "value" not in item
    assert contacts == 400
    assert len(ids) > 400 * 20


def test_streams_lazily_with_constant_memory():
    gen = generate(contacts=10_000_000, seed=1, start=START)  # 10 million contacts: only lazily possible
    assert inspect.isgenerator(gen)
    assert len(list(islice(gen, 1000))) == 1000
    gen.close()

    tracemalloc.start()
    try:
        count = 0
        for _ in islice(generate(contacts=100_000, seed=2, start=START), 50_000):
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 50_000
    # one contact's events at a time (~0.1 MB); holding 50k items would take ~25 MB
    assert peak < 1_500_000, peak


def _order_effect(items, window=2 * DAY, horizon=4 * DAY):
    """Conversion within ``horizon`` after cart -> open (within ``window``) vs open -> cart.

    Pure episodes only: for cart -> open, no open in the window before the cart, no earlier
    cart in the window, not bought before the open; for open -> cart, no open in the window
    after the cart and no cart in the window before the open.
    """
    cart_open, open_cart = [0, 0], [0, 0]
    for _, events in groupby(items, key=lambda i: i["contact_id"]):
        carts, opens, orders = [], [], []
        for e in events:
            {"Product Added": carts, "Email Opened": opens, "Order Completed": orders}.get(
                e["event"], []
            ).append(e["timestamp"])

        def after(xs, t):
            i = bisect.bisect_right(xs, t)
            return xs[i] if i < len(xs) else None

        def before(xs, t):
            i = bisect.bisect_left(xs, t)
            return xs[i - 1] if i else None

        for cart in carts:
            next_open, previous_open = after(opens, cart), before(opens, cart)
            order = after(orders, cart - 1)
            if (
                next_open is not None
                and next_open - cart <= window
                and (previous_open is None or cart - previous_open > window)
            ):
                earlier_cart = before(carts, cart)
                if (earlier_cart is None or cart - earlier_cart > window) and (
                    order is None or order > next_open
                ):
                    cart_open[0] += 1
                    cart_open[1] += order is not None and order <= next_open + horizon
            if (
                previous_open is not None
                and cart - previous_open <= window
                and (next_open is None or next_open - cart > window)
            ):
                earlier_cart = before(carts, previous_open)
                if earlier_cart is None or previous_open - earlier_cart > window:
                    open_cart[0] += 1
                    open_cart[1] += order is not None and order <= cart + horizon
    return cart_open, open_cart


def test_the_planted_order_effect_is_in_the_output():
    cart_open, open_cart = _order_effect(generate(contacts=4000, seed=21, start=START))
    assert cart_open[0] > 500 and open_cart[0] > 200
    after_cart = cart_open[1] / cart_open[0]
    after_open = open_cart[1] / open_cart[0]
    # the same two events; only their order differs
    assert after_cart > 0.65
    assert after_open < 0.4
    assert after_cart - after_open > 0.3


def test_a_long_silence_after_a_purchase_means_churn():
    end = START.timestamp() + 90 * DAY
    active = {"Page Viewed", "Email Opened", "Email Clicked", "Product Viewed", "Promotion Viewed"}
    silent, busy = [0, 0], [0, 0]
    for _, events in groupby(generate(contacts=4000, seed=5, start=START), key=lambda i: i["contact_id"]):
        events = list(events)
        buys = [e["timestamp"] for e in events if e["event"] == "Order Completed"]
        if not buys or buys[0] > end - 50 * DAY:
            continue
        first_buy = buys[0]
        later = [e["timestamp"] for e in events if e["event"] in active and e["timestamp"] > first_buy + 3600]
        group = silent if not later or later[0] > first_buy + 10 * DAY else busy
        group[0] += 1
        group[1] += any(e["timestamp"] > first_buy + 35 * DAY for e in events)
    assert silent[0] > 100 and busy[0] > 100
    assert silent[1] / silent[0] < 0.35 < 0.6 < busy[1] / busy[0]


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        list(generate(contacts=-1, seed=1, start=START))
    with pytest.raises(ValueError):
        list(generate(contacts=1, seed=1, start=START, days=0))


def test_naive_start_is_utc():
    naive = list(generate(contacts=5, seed=1, start=datetime(2024, 1, 1)))
    assert naive == list(generate(contacts=5, seed=1, start=START))


def test_email_schedule():
    sends = synthetic.email_schedule(0.0, 15 * DAY)
    assert [c for _, c in sends] == ["email-newsletter-01", "email-promo-01", "email-newsletter-02"]
    assert [t for t, _ in sends] == [DAY + 36000, 4 * DAY + 54000, 8 * DAY + 36000]
