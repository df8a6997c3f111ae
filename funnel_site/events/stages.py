"""Event name -> funnel stage, with defaults for the Segment e-commerce spec and common synonyms.

Names are compared normalised (case, spaces, underscores and hyphens ignored), so `Product Added`,
`product_added` and `product-added` are one name. A workspace can override any name through
`StageMapping` rows. A purchase after the contact's first purchase is `loyalty`.

The stage of an event is derived, never stored: `derive_stages` is the one definition, used by the
read model (funnels, training, scoring, the overview page) and by the events API alike. A purchase
is a repeat purchase when another purchase of the same contact comes before it in (timestamp,
event id) order: of two purchases at the same timestamp, the one stored first (lower id) is the
first purchase and the other is loyalty.
"""

from __future__ import annotations

import re

import numpy as np

AWARENESS, INTEREST, CONSIDERATION, PURCHASE, LOYALTY = (
    "awareness",
    "interest",
    "consideration",
    "purchase",
    "loyalty",
)
STAGES = (AWARENESS, INTEREST, CONSIDERATION, PURCHASE, LOYALTY)
NO_STAGE = -1
STAGE_CODES = {stage: i for i, stage in enumerate(STAGES)}

_DEFAULTS: dict[str, tuple[str, ...]] = {
    AWARENESS: (
        "Promotion Viewed",
        "Email Opened",
        "Email Delivered",
        "Ad Viewed",
        "Ad Impression",
        "Push Notification Received",
        "Campaign Received",
        "Impression",
    ),
    INTEREST: (
        "pv",
        "view",
        "Page Viewed",
        "Screen Viewed",
        "Product Viewed",
        "Product List Viewed",
        "Product Clicked",
        "Products Searched",
        "Promotion Clicked",
        "Email Clicked",
        "Email Link Clicked",
        "Ad Clicked",
        "fav",
        "Product Added to Wishlist",
        "Signed Up",
        "Lead Created",
    ),
    CONSIDERATION: (
        "cart",
        "add_to_cart",
        "Product Added",
        "Cart Viewed",
        "Checkout Started",
        "Checkout Step Viewed",
        "Checkout Step Completed",
        "Payment Info Entered",
        "Coupon Applied",
        "Coupon Redeemed",
        "Demo Requested",
    ),
    PURCHASE: (
        "buy",
        "purchase",
        "Order Completed",
        "Deal Won",
        "Subscription Started",
    ),
    LOYALTY: (
        "Product Reviewed",
        "Review Submitted",
        "Referral Sent",
        "Friend Referred",
        "Product Shared",
        "Subscription Renewed",
    ),
}

# Events the platform does to a contact, not the contact's own activity: they do not count as
# activity for churn and eligibility (an email sent to a lapsed contact does not make it active).
OUTBOUND_EVENTS = ("Email Sent", "Campaign Received", "Push Notification Sent", "SMS Sent")

_NON_WORD = re.compile(r"[\s_\-]+")


def normalise_event_name(name: str) -> str:
    """The comparison key of an event name: lower case, separators removed."""
    return _NON_WORD.sub("", name).lower()


DEFAULT_STAGE_MAP: dict[str, str] = {
    normalise_event_name(name): stage for stage, names in _DEFAULTS.items() for name in names
}
OUTBOUND_KEYS = frozenset(normalise_event_name(n) for n in OUTBOUND_EVENTS)


class StageResolver:
    """Maps event names to stages for one workspace: its overrides first, then the defaults."""

    def __init__(self, overrides: dict[str, str] | None = None) -> None:
        self._map = dict(DEFAULT_STAGE_MAP)
        for name, stage in (overrides or {}).items():
            self._map[normalise_event_name(name)] = stage
        self._cache: dict[str, str] = {}

    def stage_of(self, name: str) -> str:
        """The stage of an event name ('' when it maps to none)."""
        hit = self._cache.get(name)
        if hit is None:
            hit = self._map.get(normalise_event_name(name), "")
            if len(self._cache) >= 100_000:  # a long-lived resolver (kept per process) sees any name sent
                self._cache.clear()
            self._cache[name] = hit
        return hit

    def is_purchase(self, name: str) -> bool:
        """True when the name maps to the purchase stage (first and repeat purchases alike)."""
        return self.stage_of(name) == PURCHASE

    def purchase_names(self, names: list[str]) -> list[str]:
        """The subset of `names` that are purchases."""
        return [n for n in names if self.is_purchase(n)]

    @classmethod
    def for_workspace(cls, workspace_id: int) -> StageResolver:
        """The resolver of a workspace, with its StageMapping overrides."""
        from funnel_site.events.models import StageMapping

        overrides = dict(
            StageMapping.objects.filter(workspace_id=workspace_id).values_list("event_name", "stage")
        )
        return cls(overrides)


def is_outbound(name: str) -> bool:
    """True for events the platform sends (not the contact's own activity)."""
    return normalise_event_name(name) in OUTBOUND_KEYS


def derive_stages(name_stage: np.ndarray, contact: np.ndarray) -> np.ndarray:
    """The stage code (int8, -1 none) of each event: its name's stage, a repeat purchase as loyalty.

    `name_stage` is the int8 stage code of each event's name (`StageResolver.stage_of`) and
    `contact` its contact id; both in (contact, timestamp, event id) order, which is what makes
    "an earlier purchase of the same contact" the running count of purchases within the contact.
    """
    stage = np.asarray(name_stage, dtype=np.int8)
    n = stage.shape[0]
    is_purchase = stage == STAGE_CODES[PURCHASE]
    if not is_purchase.any():
        return stage
    starts = np.ones(n, dtype=bool)
    starts[1:] = contact[1:] != contact[:-1]
    cum = np.cumsum(is_purchase)
    group_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    before = cum - np.where(group_start > 0, cum[group_start - 1], 0)  # purchases so far, this one included
    stage = stage.copy()
    stage[is_purchase & (before > 1)] = STAGE_CODES[LOYALTY]
    return stage


def stage_name(code: int) -> str:
    """The stage name of a code from `derive_stages` ('' for none)."""
    return STAGES[code] if code >= 0 else ""
