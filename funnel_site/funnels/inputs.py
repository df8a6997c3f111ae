"""Build the engine's `EventColumns` for one funnel query from a workspace's columnar events.

Steps matched by name (or by a stage that does not depend on purchase history) become one table
lookup per event: a uint32 of step bits per event-name code, gathered over the name column.
Steps with campaign/channel/property conditions, and purchase/loyalty stages (a repeat purchase
is loyalty), get a boolean mask of their own. Without a date range the engine reads the cache's
arrays in place (events matching nothing have a zero mask); with one, the events in range are
copied out (matching ones only, except in `strict` order, where any event can break an attempt).
"""

from __future__ import annotations

import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from funnel_site.events.columns import STAGE_CODES, WorkspaceColumns
from funnel_site.events.stages import LOYALTY, PURCHASE, STAGES, StageResolver
from funnel_site.funnels.engine import MISSING, EventColumns, EventMatcher, FunnelDefinition
from funnel_site.funnels.properties import (
    ValueLookup,
    contact_trait_lookup,
    event_property_lookup,
    matching_codes,
)

HISTORY_STAGES = (PURCHASE, LOYALTY)  # depend on earlier purchases, not on the name alone


@dataclass
class FunnelInput:
    """The engine input of a query and what the caller should tell the user about it."""

    columns: EventColumns
    max_event_id: int
    warnings: list[str] = field(default_factory=list)


class _Builder:
    def __init__(self, workspace_id: int, definition: FunnelDefinition, cols: WorkspaceColumns) -> None:
        self.workspace_id = workspace_id
        self.definition = definition
        self.cols = cols
        self.code_of = {name: code for code, name in enumerate(cols.names)}
        self.warnings: list[str] = []
        self._resolver: StageResolver | None = None
        self._stages: np.ndarray | None = None
        self._campaign_ids: dict[str, int] | None = None
        self.in_range = self._range_mask()

    # --- lookups -------------------------------------------------------------------------------
    @property
    def resolver(self) -> StageResolver:
        if self._resolver is None:
            self._resolver = StageResolver.for_workspace(self.workspace_id)
        return self._resolver

    @property
    def stages(self) -> np.ndarray:
        if self._stages is None:
            self._stages = self.cols.stages(self.resolver)
        return self._stages

    def _range_mask(self) -> np.ndarray | None:
        d = self.definition
        if d.date_from is None and d.date_to is None:
            return None
        mask = np.ones(self.cols.size, dtype=bool)
        if d.date_from is not None:
            mask &= self.cols.ts >= int(d.date_from.timestamp() * 1_000_000)
        if d.date_to is not None:
            mask &= self.cols.ts < int(d.date_to.timestamp() * 1_000_000)
        return mask

    def name_codes(self, matcher: EventMatcher) -> list[int]:
        """Codes of the names a matcher's names or (name-determined) stage cover."""
        if matcher.stage:
            return [code for code, name in enumerate(self.cols.names) if self.resolver.stage_of(name) == matcher.stage]
        codes = []
        for name in matcher.events:
            if name in self.code_of:
                codes.append(self.code_of[name])
            else:
                self.warnings.append(f"event {name!r} does not occur in this workspace: it matches nothing")
        return codes

    def campaign_id(self, key: str) -> int | None:
        if self._campaign_ids is None:
            from funnel_site.events.models import Campaign

            self._campaign_ids = dict(
                Campaign.objects.filter(workspace_id=self.workspace_id).values_list("key", "id")
            )
        found = self._campaign_ids.get(key)
        if found is None:
            self.warnings.append(f"campaign {key!r} does not exist in this workspace: it matches nothing")
        return found

    # --- masks ---------------------------------------------------------------------------------
    @staticmethod
    def is_simple(matcher: EventMatcher) -> bool:
        """Decided by the event name alone (one table lookup)."""
        return not (matcher.properties or matcher.campaign or matcher.channel or matcher.stage in HISTORY_STAGES)

    def matcher_mask(self, matcher: EventMatcher) -> np.ndarray:
        """bool per event: the matcher with all its conditions (not the date range)."""
        if matcher.stage in HISTORY_STAGES:
            mask = self.stages == STAGE_CODES[matcher.stage]
        else:
            table = np.zeros(max(len(self.cols.names), 1), dtype=bool)
            table[self.name_codes(matcher)] = True
            mask = table[self.cols.name] if self.cols.size else np.zeros(0, dtype=bool)
        if matcher.campaign:
            campaign = self.campaign_id(matcher.campaign)
            if campaign is None:
                mask[:] = False
            else:
                mask &= self.cols.campaign == campaign
        if matcher.channel:
            if matcher.channel in self.cols.channels:
                mask &= self.cols.channel == self.cols.channels.index(matcher.channel)
            else:
                mask[:] = False
                self.warnings.append(f"channel {matcher.channel!r} does not occur in this workspace")
        for property_filter in matcher.properties:
            candidates = np.flatnonzero(mask if self.in_range is None else mask & self.in_range)
            codes, lookup = self.property_codes(property_filter.key, candidates)
            passing = np.isin(codes, matching_codes(lookup, property_filter))
            mask[candidates[~passing]] = False
        return mask

    def bits(self, matchers: list[EventMatcher]) -> np.ndarray:
        """uint32 per event, bit k set when the event matches `matchers[k]`."""
        table = np.zeros(max(len(self.cols.names), 1), dtype=np.uint32)
        complex_bits = []
        for k, matcher in enumerate(matchers):
            if self.is_simple(matcher):
                table[self.name_codes(matcher)] |= np.uint32(1 << k)
            else:
                complex_bits.append((k, matcher))
        out = _gather(table, self.cols.name)
        for k, matcher in complex_bits:
            out |= self.matcher_mask(matcher).astype(np.uint32) << np.uint32(k)
        return out

    # --- properties ----------------------------------------------------------------------------
    def property_codes(self, key: str, rows: np.ndarray) -> tuple[np.ndarray, ValueLookup]:
        """The value code of event property `key` at each of `rows` (MISSING when absent), and the lookup."""
        names = [self.cols.names[code] for code in np.unique(self.cols.name[rows])] if rows.size else []
        lookup = event_property_lookup(
            workspace_id=self.workspace_id, key=key, names=names, cols=self.cols
        )
        return lookup.codes_for(self.cols.event_id[rows]), lookup

    def breakdown(self, rows: np.ndarray | None, step_mask: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Factorised breakdown value per selected row (MISSING where the engine never reads it), and labels.

        The engine reads the value of step events only, and with first-touch attribution in an
        ordered funnel of step-1 events only: the others are left MISSING and never fetched.
        """
        first_touch = self.definition.breakdown.attribution == "first_touch" and self.definition.order != "any"
        touched = np.flatnonzero((step_mask & 1) != 0 if first_touch else step_mask != 0)
        at = _at(rows, touched)
        codes = np.full(step_mask.size, MISSING, dtype=np.int64)
        field_name = self.definition.breakdown.field
        cols = self.cols
        if field_name == "campaign":
            codes[touched], labels = self._campaign_codes(cols.campaign[at])
        elif field_name == "channel":
            codes[touched] = cols.channel[at]
            if "" in cols.channels:
                codes[codes == cols.channels.index("")] = MISSING
            labels = list(cols.channels)
        elif field_name == "stage":
            codes[touched], labels = self.stages[at], list(STAGES)
        elif field_name == "event":
            codes[touched], labels = cols.name[at], list(cols.names)
        elif field_name.startswith("contact:"):
            lookup = contact_trait_lookup(workspace_id=self.workspace_id, key=field_name.split(":", 1)[1])
            codes[touched], labels = lookup.codes_for(cols.contact[at]), lookup.labels
        else:
            codes[touched], lookup = self.property_codes(field_name.split(":", 1)[1], at)
            labels = lookup.labels
        return codes, labels

    def _campaign_codes(self, campaign: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Campaign ids -> codes into the workspace's campaigns (by a binary search, no sort of the rows)."""
        from funnel_site.events.models import Campaign

        known = list(Campaign.objects.filter(workspace_id=self.workspace_id).order_by("id").values_list("id", "key"))
        ids = np.array([campaign_id for campaign_id, _ in known], dtype=np.int64)
        codes = np.full(campaign.shape[0], MISSING, dtype=np.int64)
        if ids.size:
            positions = np.minimum(np.searchsorted(ids, campaign), ids.size - 1)
            found = ids[positions] == campaign
            codes[found] = positions[found]
        return codes, [key for _, key in known]


# id(cache column) -> (weak reference to it, its offsets); arrays are unhashable, hence by id,
# checked against the weak reference (an id may be reused once the array is gone).
_OFFSETS: dict[int, tuple[weakref.ref, np.ndarray]] = {}


def _contact_offsets(contact: np.ndarray) -> np.ndarray:
    """Offsets of each contact's run in the (contact-sorted) cache column, once per column array."""
    found = _OFFSETS.get(id(contact))
    if found is not None and found[0]() is contact:
        return found[1]
    if contact.size == 0:
        offsets = np.zeros(1, dtype=np.int64)
    else:
        change = np.flatnonzero(contact[1:] != contact[:-1]) + 1
        offsets = np.concatenate(([0], change, [contact.size])).astype(np.int64)
    key = id(contact)
    _OFFSETS[key] = (weakref.ref(contact, lambda _ref: _OFFSETS.pop(key, None)), offsets)
    return offsets


def funnel_input_build(*, workspace_id: int, definition: FunnelDefinition, cols: WorkspaceColumns) -> FunnelInput:
    """The `EventColumns` of `definition` over the workspace's columnar events `cols`.

    Without a date range the engine reads the cache's own arrays (no copy): events matching
    nothing carry a zero mask, which the kernels skip. With one, the events in range are copied
    out (in `strict` order every event in range, since any of them breaks an attempt).
    """
    builder = _Builder(workspace_id, definition, cols)
    step_mask = builder.bits([step.matcher for step in definition.steps])
    exclusion_mask = builder.bits([e.matcher for e in definition.exclusions]) if definition.exclusions else None
    if builder.in_range is None:
        rows = None
        offsets = _contact_offsets(cols.contact)
    else:
        if definition.order == "strict":
            keep = builder.in_range
        else:
            keep = step_mask != 0 if exclusion_mask is None else (step_mask | exclusion_mask) != 0
            keep &= builder.in_range
        rows = np.flatnonzero(keep)
        step_mask = step_mask[rows]
        if exclusion_mask is not None:
            exclusion_mask = exclusion_mask[rows]
        offsets = None
    hold = None
    if definition.hold_constant:
        hold = np.full(step_mask.size, MISSING, dtype=np.int64)
        stepped = np.flatnonzero(step_mask != 0)
        hold[stepped], _ = builder.property_codes(definition.hold_constant, _at(rows, stepped))
    breakdown_value, labels = (None, None)
    if definition.breakdown is not None:
        breakdown_value, labels = builder.breakdown(rows, step_mask)
    columns = EventColumns(
        contact=cols.contact if rows is None else cols.contact[rows],
        ts=cols.ts if rows is None else cols.ts[rows],
        step_mask=step_mask,
        exclusion_mask=exclusion_mask,
        hold_value=hold,
        breakdown_value=breakdown_value,
        breakdown_labels=labels,
        offsets=offsets,
    )
    return FunnelInput(columns=columns, max_event_id=cols.max_event_id, warnings=list(dict.fromkeys(builder.warnings)))


_GATHER_CHUNK = 1 << 20


def _gather(table: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """`table[codes]` by `np.take` (a third faster than fancy indexing), in threads over chunks
    (numpy releases the GIL): the one pass over every event a query makes before the kernels."""
    out = np.empty(codes.shape[0], dtype=table.dtype)
    if codes.shape[0] <= _GATHER_CHUNK:
        np.take(table, codes, out=out)
        return out
    bounds = range(0, codes.shape[0], _GATHER_CHUNK)
    with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, 8)) as pool:
        list(pool.map(lambda at: np.take(table, codes[at : at + _GATHER_CHUNK], out=out[at : at + _GATHER_CHUNK]),
                      bounds))
    return out


def _at(rows: np.ndarray | None, positions: np.ndarray) -> np.ndarray:
    """Cache rows of the engine positions `positions` (`rows` None: the engine reads every row)."""
    return positions if rows is None else rows[positions]
