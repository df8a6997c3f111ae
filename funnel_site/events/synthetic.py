"""Synthetic campaign and funnel behaviour with a planted, order- and timing-dependent signal.

``generate(contacts=N, seed=S, start=datetime, days=90)`` yields canonical event items (the
dicts of ``funnel_site.events.loaders``), contact after contact, each contact's events in
time order. Pure Python, no Django, deterministic for a seed, constant memory (one
contact's events at a time: 10 million events need no more memory than 10 thousand), and
every contact has its own random stream, so contacts ``[a, b)`` can be generated on their
own (``first_contact=a, contacts=b-a``) by parallel shards and give the same events.
``generate_rows`` is the faster path yielding tuples in ``ROW_FIELDS`` order.

Ids: contact ``syn<seed>-<n>``, message ``syn<seed>-<n>-<k>`` (k-th event of the contact),
so generating the same seed again into a workspace stores nothing new. Timestamps are
unix seconds (int). Choose ``start`` so that ``start + days`` is not in the future.

The hidden process (what a model can find)
==========================================

Channels: ``organic``, ``paid_search``, ``social``, ``direct_mail``, ``referral`` (site
visits) and ``email``. Campaigns: a weekly newsletter ``email-newsletter-NN`` (day 1 + 7k,
10:00), a fortnightly promotion ``email-promo-NN`` (day 4 + 14k, 15:00), the triggered
``email-cart-reminder``, ``ps-brand``/``ps-generic`` (paid search), ``social-prospecting``/
``social-retargeting`` and the monthly ``dm-catalog-NN`` (direct mail).

Per contact: an arrival time (35 % are already customers at ``start``, the rest arrive
during the first 75 % of the period), an acquisition channel, a subscriber flag (65 %; only
subscribers get e-mail; ``email`` and ``traits`` ride on their first event), a favourite
product range, a fragility ``q`` (probability of leaving for good right after a purchase)
and a latent purchase intent ``x``: an Ornstein-Uhlenbeck process around a personal mean
(time constant 14 days), so intent drifts. A purchase lowers it for a while (satiation).
An excitation ``h`` (+1 per visit, half-life about 1.4 days) makes visits come in bursts.

* Visits arrive at rate ``0.18/day * exp(x) * (1 + 2 h/(1+h))``. A visit from paid search,
  social or direct mail starts with "Promotion Viewed" (its campaign); then 1-3
  "Page Viewed", a few "Product Viewed" (more with higher intent), maybe "Product Added".
  After 6 % of visits a temporary lapse adds 20-60 silent days; after 1.5 % the contact
  goes quiet for ever.
* Buying in the visit itself: ``sigmoid(x - 3.3 + 1.6 h/(1+h))``: recent bursts of visits,
  not old ones (h decays), raise it. Then "Checkout Started" and, 90 % of the time,
  "Order Completed" (value lognormal, median about 37). A purchase may be followed 3-10
  days later by "Review Submitted" (20 %, 35 % for repeat buyers).
* E-mail: subscribers get every newsletter and promotion ("Email Sent") and open it with
  probability ``sigmoid(x - 0.6 + 0.8 h/(1+h))`` after a delay of hours; 25 % of opens lead
  to "Email Clicked" and a visit. A cart not bought in its visit triggers (70 %) the
  reminder e-mail 1-20 hours later, opened with ``sigmoid(x + 0.3)``.
* THE ORDER RULE. When an "Email Opened" (any campaign) follows a "Product Added" within
  2 days while that cart is still not bought, the contact comes back 1-72 hours later and
  buys with probability 0.8 ("Page Viewed", "Checkout Started", "Order Completed", channel
  email). The same two events in the other order (an open, then a cart) carry no such
  effect: that cart converts only at the base in-visit rate. Counts of opens and carts in
  a window are the same in both cases; only the order and the gap tell them apart.
* Churn. After each purchase the contact leaves for good with probability ``q`` (mean
  about 0.27), so a long silence after a purchase means the contact has most likely left.
  The platform stops e-mailing anyone without a visit or an open for 21 days (a sunset
  policy), so a contact who left produces no events at all after that, and "no event in
  the horizon" (the churn target) becomes observable; one who only lapsed comes back with
  a visit and starts receiving e-mail again.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import UTC, datetime
from math import exp, log, sqrt, tanh
from operator import itemgetter
from random import Random

DAY = 86400.0
HOUR = 3600.0

CHANNELS = ("organic", "paid_search", "social", "direct_mail", "referral", "email")
VISIT_CHANNELS = ("organic", "paid_search", "social", "direct_mail", "referral")
_CHANNEL_WEIGHTS = (0.32, 0.24, 0.2, 0.12, 0.12)
EVENTS = (
    "Email Sent",
    "Email Opened",
    "Email Clicked",
    "Promotion Viewed",
    "Page Viewed",
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Order Completed",
    "Review Submitted",
)
REMINDER_CAMPAIGN = "email-cart-reminder"
CART_REMINDER_WINDOW = 2 * DAY  # the order rule: an open within 2 days after the cart
SUNSET = 21 * DAY

#: The order of the tuples of ``generate_rows``.
ROW_FIELDS = (
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

# agenda kinds
_VISIT, _OPEN, _REMINDER, _BUY, _REVIEW, _CLICK = range(6)

_INTENT_TAU = 14 * DAY
_INTENT_SIGMA = 0.6
_EXCITE_TAU = 2 * DAY  # half-life 2 * ln 2 = 1.4 days
_BASE_RATE = 0.18 / DAY


def _sigmoid(z: float) -> float:
    if z < -30:
        return 0.0
    return 1.0 / (1.0 + exp(-z))


def email_schedule(start: float, end: float) -> list[tuple[float, str]]:
    """The broadcast e-mails ``[(send_time, campaign)]`` between ``start`` and ``end``."""
    sends = []
    k = 0
    while True:
        when = start + (1 + 7 * k) * DAY + 10 * HOUR
        if when >= end:
            break
        sends.append((when, f"email-newsletter-{k + 1:02d}"))
        k += 1
    k = 0
    while True:
        when = start + (4 + 14 * k) * DAY + 15 * HOUR
        if when >= end:
            break
        sends.append((when, f"email-promo-{k + 1:02d}"))
        k += 1
    sends.sort()
    return sends


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _contact_events(rng: Random, begin: float, end: float, sends, products) -> tuple[list, str, bool]:
    """Simulate one contact: ``(events, acquisition_channel, subscriber)``.

    ``events`` are ``(time, event, campaign, channel, value, properties)`` tuples, not sorted.
    """
    rnd = rng.random
    out: list = []
    add = out.append

    # --- who the contact is
    t0 = begin + rnd() * 2 * DAY if rnd() < 0.35 else begin + rnd() * 0.75 * (end - begin)
    u = rnd()
    acquisition = "referral"
    acc = 0.0
    for name, weight in zip(VISIT_CHANNELS, _CHANNEL_WEIGHTS, strict=True):
        acc += weight
        if u < acc:
            acquisition = name
            break
    subscriber = rnd() < 0.65
    mu = -0.4 + 0.8 * (rnd() + rnd() + rnd() - 1.5) * 2.0
    x = mu + 0.5 * (rnd() + rnd() + rnd() - 1.5) * 2.0
    fragility = 0.08 + 0.55 * rnd() ** 2
    favourite = int(rnd() * 20) * 50

    h = 0.0
    last = t0  # time of the last intent/excitation update
    alive = True
    cart_t = -1.0  # time of the pending (not bought) cart, -1 when none
    last_engaged = t0
    purchases = 0
    seq = 0
    agenda: list = [(t0, 0, _VISIT, acquisition, None)]
    push = heapq.heappush
    pop = heapq.heappop

    send_index = 0
    n_sends = len(sends)
    while send_index < n_sends and sends[send_index][0] < t0:
        send_index += 1
    if not subscriber:
        send_index = n_sends

    while True:
        t_send = sends[send_index][0] if send_index < n_sends else end
        if agenda and agenda[0][0] < t_send:
            t, _, kind, channel, campaign = pop(agenda)
        else:
            t = t_send
            kind = -1
        if t >= end:
            break

        # drift intent and decay excitation up to t
        dt = t - last
        if dt > 0:
            decay = exp(-dt / _INTENT_TAU)
            noise = (rnd() + rnd() + rnd() - 1.5) * 2.0
            x = mu + (x - mu) * decay + _INTENT_SIGMA * sqrt(1.0 - decay * decay) * noise
            if x > 3.0:
                x = 3.0
            elif x < -4.0:
                x = -4.0
            h *= exp(-dt / _EXCITE_TAU)
            last = t
        hs = h / (1.0 + h)

        if kind == -1:  # a broadcast e-mail
            campaign = sends[send_index][1]
            send_index += 1
            if t - last_engaged > SUNSET:
                continue
            add((t, "Email Sent", campaign, "email", None, None))
            if alive and rnd() < _sigmoid(x - 0.6 + 0.8 * hs):
                seq += 1
                push(agenda, (t + HOUR * (0.05 + -log(1.0 - rnd()) * 5.0), seq, _OPEN, "email", campaign))
            continue

        if kind == _OPEN:
            if not alive:
                continue
            add((t, "Email Opened", campaign, "email", None, None))
            last_engaged = t
            if cart_t >= 0.0 and t - cart_t <= CART_REMINDER_WINDOW:
                # the order rule: cart, then an open within 2 days -> a purchase is likely
                cart_t = -1.0
                if rnd() < 0.8:
                    seq += 1
                    push(agenda, (t + HOUR * (1.0 + 71.0 * rnd()), seq, _BUY, "email", campaign))
                continue
            if rnd() < 0.25 + 0.1 * tanh(x):
                seq += 1
                push(agenda, (t + 5.0 + 600.0 * rnd(), seq, _CLICK, "email", campaign))
            continue

        if kind == _REMINDER:
            if cart_t < 0.0 or t - last_engaged > SUNSET:
                continue
            add((t, "Email Sent", REMINDER_CAMPAIGN, "email", None, None))
            if alive and rnd() < _sigmoid(x + 0.3):
                seq += 1
                push(
                    agenda,
                    (t + HOUR * (0.05 + -log(1.0 - rnd()) * 5.0), seq, _OPEN, "email", REMINDER_CAMPAIGN),
                )
            continue

        if kind == _REVIEW:
            if alive:
                add(
                    (
                        t,
                        "Review Submitted",
                        None,
                        None,
                        None,
                        {"product_id": products[favourite + int(rnd() * 50)]},
                    )
                )
                last_engaged = t
            continue

        if not alive:
            continue

        # --- a visit: _VISIT (organic / ads / mail), _CLICK (from an e-mail) or _BUY (the order rule)
        last_engaged = t
        h += 1.0
        step = t
        if kind == _CLICK:
            add((step, "Email Clicked", campaign, "email", None, None))
            step += 2.0 + 20.0 * rnd()
        elif kind == _VISIT:
            if channel == "paid_search":
                campaign = "ps-brand" if rnd() < 0.5 else "ps-generic"
            elif channel == "social":
                campaign = "social-retargeting" if purchases else "social-prospecting"
            elif channel == "direct_mail":
                campaign = f"dm-catalog-{int((t - begin) / (30 * DAY)) + 1:02d}"
            else:
                campaign = None
            if campaign is not None:
                add((step, "Promotion Viewed", campaign, channel, None, None))
                step += 3.0 + 30.0 * rnd()
        add((step, "Page Viewed", campaign, channel, None, None))
        if rnd() < 0.5:
            step += 5.0 + 60.0 * rnd()
            add((step, "Page Viewed", campaign, channel, None, None))

        bought = False
        if kind == _BUY:
            step += 10.0 + 120.0 * rnd()
            add((step, "Checkout Started", campaign, channel, None, None))
            bought = rnd() < 0.92
        else:
            more = 0.55 + 0.12 * tanh(x)
            views = 0
            product = None
            while rnd() < more and views < 8:
                views += 1
                product = products[favourite + int(rnd() * 50)]
                step += 5.0 + 90.0 * rnd()
                add((step, "Product Viewed", campaign, channel, None, {"product_id": product}))
            if views and rnd() < _sigmoid(x - 0.5 + 0.5 * hs):
                step += 5.0 + 60.0 * rnd()
                add((step, "Product Added", campaign, channel, None, {"product_id": product}))
                cart_t = step
            if cart_t >= 0.0 and rnd() < _sigmoid(x - 3.3 + 1.6 * hs):
                step += 10.0 + 120.0 * rnd()
                add((step, "Checkout Started", campaign, channel, None, None))
                bought = rnd() < 0.9
            elif cart_t == step and subscriber and rnd() < 0.7:
                seq += 1
                push(agenda, (step + HOUR * (1.0 + 19.0 * rnd()), seq, _REMINDER, "email", REMINDER_CAMPAIGN))

        if bought:
            step += 20.0 + 100.0 * rnd()
            value = round(exp(3.6 + 0.5 * (rnd() + rnd() + rnd() - 1.5) * 2.0), 2)
            add((step, "Order Completed", campaign, channel, value, None))
            purchases += 1
            cart_t = -1.0
            x -= 0.7
            if rnd() < (0.35 if purchases > 1 else 0.2):
                seq += 1
                push(agenda, (step + DAY * (3.0 + 7.0 * rnd()), seq, _REVIEW, None, None))
            if rnd() < fragility:
                alive = False
                continue

        if kind != _VISIT:
            continue
        # the contact's next own visit: one pending at a time, scheduled after its own visits only
        u = rnd()
        if u < 0.015:
            alive = False
            continue
        rate = _BASE_RATE * exp(x) * (1.0 + 2.0 * (h / (1.0 + h)))
        gap = -log(1.0 - rnd()) / rate
        if u < 0.075:
            gap += DAY * (20.0 + 40.0 * rnd())
        u = rnd()
        channel = acquisition if u < 0.5 else VISIT_CHANNELS[int((u - 0.5) * 10.0)]
        seq += 1
        push(agenda, (step + gap, seq, _VISIT, channel, None))

    return out, acquisition, subscriber


def _contacts(contacts: int, seed: int, start: datetime, days: int, first_contact: int):
    """``(contact_id, events sorted by time, acquisition, subscriber)`` per contact."""
    if contacts < 0 or days <= 0:
        raise ValueError("contacts must be >= 0 and days > 0")
    begin = _epoch(start)
    end = begin + days * DAY
    sends = email_schedule(begin, end)
    products = [f"p{n:04d}" for n in range(1000)]
    rng = Random()
    by_time = itemgetter(0)
    prefix = f"syn{seed}-"
    for n in range(first_contact, first_contact + contacts):
        rng.seed(seed * 1_000_003 + n * 7919 + 17)
        events, acquisition, subscriber = _contact_events(rng, begin, end, sends, products)
        if events:
            events.sort(key=by_time)
            yield f"{prefix}{n}", events, acquisition, subscriber


def generate_rows(
    *,
    contacts: int,
    seed: int,
    start: datetime,
    days: int = 90,
    first_contact: int = 0,
) -> Iterator[tuple]:
    """Like ``generate`` but yields tuples in ``ROW_FIELDS`` order (no dicts: faster)."""
    for contact_id, events, acquisition, subscriber in _contacts(contacts, seed, start, days, first_contact):
        mid = contact_id + "-"
        when, event, campaign, channel, value, properties = events[0]
        yield (
            contact_id,
            event,
            int(when),
            campaign,
            channel,
            value,
            f"{mid}0",
            properties,
            f"{contact_id}@example.com" if subscriber else None,
            {"acquisition_channel": acquisition, "subscriber": subscriber},
        )
        for k, (when, event, campaign, channel, value, properties) in enumerate(events[1:], 1):
            yield (
                contact_id,
                event,
                int(when),
                campaign,
                channel,
                value,
                f"{mid}{k}",
                properties,
                None,
                None,
            )


def generate(
    *,
    contacts: int,
    seed: int,
    start: datetime,
    days: int = 90,
    first_contact: int = 0,
) -> Iterator[dict]:
    """Yield canonical event items for ``contacts`` contacts (see the module docstring).

    Contacts ``first_contact .. first_contact + contacts - 1``; each contact's events in time
    order; the contact's first item also carries ``traits`` (and ``email`` for subscribers).
    """
    for contact_id, events, acquisition, subscriber in _contacts(contacts, seed, start, days, first_contact):
        mid = contact_id + "-"
        for k, (when, event, campaign, channel, value, properties) in enumerate(events):
            item = {
                "contact_id": contact_id,
                "event": event,
                "timestamp": int(when),
                "message_id": f"{mid}{k}",
            }
            if campaign is not None:
                item["campaign"] = campaign
            if channel is not None:
                item["channel"] = channel
            if value is not None:
                item["value"] = value
            if properties is not None:
                item["properties"] = properties
            if not k:
                item["traits"] = {"acquisition_channel": acquisition, "subscriber": subscriber}
                if subscriber:
                    item["email"] = f"{contact_id}@example.com"
            yield item


def generate_columns(
    *,
    contacts: int,
    seed: int,
    start: datetime,
    days: int = 90,
    first_contact: int = 0,
    batch_size: int = 10_000,
) -> Iterator[dict[str, list]]:
    """Batches of about ``batch_size`` rows as ``{field: [values]}`` (for COPY / numpy)."""
    columns: list[list] = [[] for _ in ROW_FIELDS]
    appends = [column.append for column in columns]
    count = 0
    for row in generate_rows(
        contacts=contacts, seed=seed, start=start, days=days, first_contact=first_contact
    ):
        for append, value in zip(appends, row, strict=True):
            append(value)
        count += 1
        if count >= batch_size:
            yield dict(zip(ROW_FIELDS, columns, strict=True))
            columns = [[] for _ in ROW_FIELDS]
            appends = [column.append for column in columns]
            count = 0
    if count:
        yield dict(zip(ROW_FIELDS, columns, strict=True))
