"""Event properties and contact traits a funnel needs, fetched from the database only when asked.

The columnar cache holds no JSON. Property filters, hold-constant and property breakdowns fetch
`properties->>'key'` (Django's KeyTextTransform, the same expression on SQLite and PostgreSQL)
for just the event names involved, grouped by value: PostgreSQL returns one row per distinct
(name, value) with the ids carrying it (ArrayAgg), so millions of events cost one row per value,
not one Python object per event; SQLite returns (id, name, value) rows. The values are kept per
process (`PropertyCache`) and refreshed by event id like the column cache. A lookup maps event
(or contact) ids to value codes, aligned with the columns by id; the date range is applied by
the caller through the rows it looks up. Filters are tested once per distinct value, by the
type of the filter's value.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection
from django.db.models.fields.json import KeyTextTransform

from funnel_site.funnels.engine import MISSING, PropertyFilter


@dataclass
class ValueLookup:
    """Ids (unique, any order), the value code of each, and the text of each code."""

    ids: np.ndarray
    codes: np.ndarray
    labels: list[str]

    def codes_for(self, keys: np.ndarray) -> np.ndarray:
        """The value code of each of `keys` (event or contact ids), MISSING where it has none.

        Ids are dense (database sequences), so a table indexed by id minus the smallest one is
        built when it is not much larger than the data: one scatter and one gather, no sort.
        """
        out = np.full(keys.shape[0], MISSING, dtype=np.int64)
        if self.ids.size == 0 or keys.size == 0:
            return out
        low, high = int(self.ids.min()), int(self.ids.max())
        if high - low < 8 * self.ids.size + 1_000_000:
            table = np.full(high - low + 1, MISSING, dtype=np.int32)
            table[self.ids - low] = self.codes
            inside = np.flatnonzero((keys >= low) & (keys <= high))
            out[inside] = table[keys[inside] - low]
            return out
        order = np.argsort(self.ids, kind="stable")
        ids, codes = self.ids[order], self.codes[order]
        positions = np.minimum(np.searchsorted(ids, keys), ids.size - 1)
        hit = ids[positions] == keys
        out[hit] = codes[positions[hit]]
        return out


def _text(value: Any) -> str:
    # SQLite's ->> gives JSON scalars as SQL values (true -> 1); PostgreSQL gives text ('true').
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _grouped(queryset, group_fields: tuple[str, ...], value_expression) -> list[tuple[tuple, str, np.ndarray]]:
    """(group key, value text, ids) of `queryset` grouped by `group_fields` and the value's text."""
    annotated = queryset.annotate(funnel_value=value_expression).filter(funnel_value__isnull=False)
    if connection.vendor == "postgresql":
        from django.contrib.postgres.aggregates import ArrayAgg

        rows = annotated.values(*group_fields, "funnel_value").annotate(ids=ArrayAgg("id")).order_by()
        return [(tuple(row[f] for f in group_fields), _text(row["funnel_value"]), np.asarray(row["ids"], np.int64))
                for row in rows]
    groups: dict[tuple, list[int]] = {}
    for row in annotated.values_list("id", *group_fields, "funnel_value"):
        groups.setdefault((tuple(row[1:-1]), _text(row[-1])), []).append(row[0])
    return [(key, value, np.asarray(ids, np.int64)) for (key, value), ids in groups.items()]


class _KeyColumns:
    """One property key of one workspace: per event name, the sorted ids carrying it and value codes."""

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.index: dict[str, int] = {}
        self.by_name: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}  # name -> (ids, codes, loaded up to id)

    def code(self, label: str) -> int:
        if label not in self.index:
            self.index[label] = len(self.labels)
            self.labels.append(label)
        return self.index[label]


class PropertyCache:
    """Per-process cache of event property values, by (workspace, key) and event name.

    Events are append-only and their properties never change, so a name's values are fetched
    once and then only for events with a higher id (the same watermark idea as the column cache).
    At most `max_keys` (workspace, key) pairs are kept, least recently used first out.
    """

    def __init__(self, max_keys: int = 16) -> None:
        self._lock = threading.Lock()
        self._keys: OrderedDict[tuple[int, str], _KeyColumns] = OrderedDict()
        self.max_keys = max_keys

    def lookup(self, *, workspace_id: int, key: str, names: Sequence[str], upto_id: int) -> ValueLookup:
        """Values of `key` on the workspace's events with these names and an id up to `upto_id`."""
        from funnel_site.events.models import Event

        with self._lock:
            columns = self._keys.pop((workspace_id, key), None) or _KeyColumns()
            self._keys[(workspace_id, key)] = columns
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
            stale = [n for n in names if columns.by_name.get(n, (None, None, 0))[2] < upto_id]
            if stale:
                after = min(columns.by_name.get(n, (None, None, 0))[2] for n in stale)
                qs = Event.objects.filter(workspace_id=workspace_id, name__in=stale, id__gt=after, id__lte=upto_id)
                fetched: dict[str, list[tuple[np.ndarray, int]]] = {}
                for (name,), value, ids in _grouped(qs, ("name",), KeyTextTransform(key, "properties")):
                    fetched.setdefault(name, []).append((ids, columns.code(value)))
                for name in stale:
                    old_ids, old_codes, loaded = columns.by_name.get(name, (np.zeros(0, np.int64), np.zeros(0, np.int64), 0))
                    parts = [(ids[ids > loaded], code) for ids, code in fetched.get(name, [])]
                    new_ids = np.concatenate([old_ids] + [ids for ids, _ in parts])
                    new_codes = np.concatenate([old_codes] + [np.full(ids.size, code, np.int64) for ids, code in parts])
                    if parts:  # the new ids are all above the old ones: sort only the new part
                        tail = np.argsort(new_ids[old_ids.size :], kind="stable") + old_ids.size
                        order = np.concatenate((np.arange(old_ids.size), tail))
                        new_ids, new_codes = new_ids[order], new_codes[order]
                    columns.by_name[name] = (new_ids, new_codes, upto_id)
            chosen = [columns.by_name[n] for n in names if n in columns.by_name]
            labels = list(columns.labels)
        if not chosen:
            return ValueLookup(np.zeros(0, np.int64), np.zeros(0, np.int64), labels)
        ids = np.concatenate([c[0] for c in chosen]) if len(chosen) > 1 else chosen[0][0]
        codes = np.concatenate([c[1] for c in chosen]) if len(chosen) > 1 else chosen[0][1]
        if ids.size and ids.max() > upto_id:  # loaded further by a newer query than this one
            keep = ids <= upto_id
            ids, codes = ids[keep], codes[keep]
        return ValueLookup(ids=ids, codes=codes, labels=labels)

    def clear(self) -> None:
        """Forget everything (tests; a workspace deleted)."""
        with self._lock:
            self._keys.clear()


property_cache = PropertyCache()


def event_property_lookup(*, workspace_id: int, key: str, names: Sequence[str], max_event_id: int) -> ValueLookup:
    """Values of event property `key` on the workspace's events with these names (cached per process)."""
    return property_cache.lookup(workspace_id=workspace_id, key=key, names=list(names), upto_id=max_event_id)


def contact_trait_lookup(*, workspace_id: int, key: str) -> ValueLookup:
    """Values of contact trait `key` of the workspace's contacts (traits change: never cached)."""
    from funnel_site.events.models import Contact

    groups = _grouped(Contact.objects.filter(workspace_id=workspace_id), (), KeyTextTransform(key, "traits"))
    labels = [value for _, value, _ in groups]
    ids = np.concatenate([g[2] for g in groups]) if groups else np.zeros(0, np.int64)
    codes = np.concatenate([np.full(g[2].size, code, np.int64) for code, g in enumerate(groups)]) if groups \
        else np.zeros(0, np.int64)
    return ValueLookup(ids=ids, codes=codes, labels=labels)


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _equals(text: str, wanted: Any) -> bool:
    if isinstance(wanted, bool):
        return text.lower() in (("true", "1") if wanted else ("false", "0"))
    if isinstance(wanted, (int, float)):
        number = _as_number(text)
        return number is not None and number == float(wanted)
    return text == str(wanted)


def value_matches(text: str, property_filter: PropertyFilter) -> bool:
    """Whether one property value passes the filter (eq, in, contains, gt, lt)."""
    op, wanted = property_filter.operator, property_filter.value
    if op == "eq":
        return _equals(text, wanted)
    if op == "in":
        return any(_equals(text, item) for item in wanted)
    if op == "contains":
        return str(wanted) in text
    number = _as_number(text)
    if number is None:
        return False
    return number > float(wanted) if op == "gt" else number < float(wanted)


def matching_codes(lookup: ValueLookup, property_filter: PropertyFilter) -> np.ndarray:
    """The value codes of `lookup` that pass the filter (tested once per distinct value)."""
    return np.array([code for code, label in enumerate(lookup.labels) if value_matches(label, property_filter)],
                    dtype=np.int64)
