"""Plain words for what a contact did: event phrases, durations, aggregate sentences (no TF/SHAP)."""

from __future__ import annotations

import numpy as np

from .features import AGGREGATE_FEATURES

EVENT_PHRASES = {
    "pv": "Viewed a product",
    "product viewed": "Viewed a product",
    "page": "Viewed a page",
    "page viewed": "Viewed a page",
    "cart": "Added to cart",
    "product added": "Added to cart",
    "checkout started": "Started checkout",
    "buy": "Purchased",
    "order completed": "Purchased",
    "fav": "Added to favourites",
    "product added to wishlist": "Added to wishlist",
    "email_open": "Opened an email",
    "email opened": "Opened an email",
    "email_click": "Clicked an email",
    "email clicked": "Clicked an email",
    "promotion viewed": "Saw a promotion",
    "promotion clicked": "Clicked a promotion",
    "review": "Wrote a review",
    "product reviewed": "Wrote a review",
    "referral": "Referred someone",
    "signup": "Signed up",
    "signed up": "Signed up",
}


def humanize_seconds(seconds: float) -> str:
    """'3 minutes', '5 hours', '19 days', '10 weeks' (rounded down)."""
    seconds = max(float(seconds), 0.0)
    # Days up to eight weeks read best ("19 days", "28 days"); weeks beyond that.
    for unit, size, minimum in (
        ("week", 7 * 86400, 8),
        ("day", 86400, 1),
        ("hour", 3600, 1),
        ("minute", 60, 1),
    ):
        if seconds >= size * minimum:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "less than a minute"


def event_phrase(name: str) -> str:
    """Plain words for an event name ('cart' -> 'Added to cart'); unknown names are quoted."""
    return EVENT_PHRASES.get(name.strip().lower(), f'Did "{name}"')


def aggregate_text(name: str, raw: np.ndarray, lookback: str) -> str | None:
    index = {n: i for i, n in enumerate(AGGREGATE_FEATURES)}

    def value(key: str) -> float:
        return float(raw[index[key]])

    count = int(value(name)) if name.endswith(("_in_lookback", "_total")) else 0
    plural = "s" if count != 1 else ""
    amount = str(count) if count else "No"
    if name == "seconds_since_last_event":
        return f"No activity for {humanize_seconds(value(name))}"
    if name == "events_in_lookback":
        return f"{amount} event{plural} in the last {lookback}"
    if name == "events_total":
        return f"{amount} event{plural} in total"
    if name == "purchases_in_lookback":
        return f"{amount} purchase{plural} in the last {lookback}"
    if name == "purchases_total":
        return f"{amount} purchase{plural} in total"
    if name == "value_in_lookback":
        spent = value(name)
        return (
            f"Spent {spent:,.2f} in the last {lookback}"
            if spent > 0
            else f"Spent nothing in the last {lookback}"
        )
    if name in ("seconds_since_last_purchase", "has_purchased"):
        if value("has_purchased") < 0.5:
            return "Has never purchased"
        return f"Last purchase {humanize_seconds(value('seconds_since_last_purchase'))} ago"
    if name == "tenure_seconds":
        return f"First seen {humanize_seconds(value(name))} ago"
    if name.endswith("_events_in_lookback"):
        stage = name.removesuffix("_events_in_lookback")
        return f"{amount} {stage}-stage event{plural} in the last {lookback}"
    return None




def recency_bucket(age_seconds: float | None) -> str:
    """The recency bucket of a factor for global importance ('< 1 day', ..., 'whole history')."""
    if age_seconds is None:
        return "whole history"
    days = age_seconds / 86400
    if days < 1:
        return "< 1 day"
    if days < 7:
        return "1-7 days"
    if days < 28:
        return "7-28 days"
    return "> 28 days"


# which recency an aggregate describes: None = the lookback window or the whole history
def aggregate_age(name: str, raw: np.ndarray) -> float | None:
    """Age in seconds of what an aggregate describes (recency features), else None."""
    index = AGGREGATE_FEATURES.index(name)
    if name in ("seconds_since_last_event", "seconds_since_last_purchase"):
        return float(raw[index])
    return None


def aggregate_key(name: str) -> str:
    """The event type / family an aggregate belongs to, for global importance."""
    if name.endswith("_events_in_lookback"):
        return name.removesuffix("_events_in_lookback") + " events"
    if "purchase" in name or name == "value_in_lookback":
        return "purchases"
    if name == "seconds_since_last_event":
        return "recency"
    return "activity"
