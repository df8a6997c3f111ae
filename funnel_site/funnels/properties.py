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

from funnel_site.events.columns import WorkspaceColumns
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
        self.by_name: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}  # name -> (ids, codes, read-model version)
        self.checked: dict[str, np.ndarray] = {}  # name -> sorted ids fetched (with or without the key)

    def code(self, label: str) -> int:
        if label not in self.index:
            self.index[label] = len(self.labels)
            self.labels.append(label)
        return self.index[label]


class PropertyCache:
    """Per-process cache of event property values, by (workspace, key) and event name.

    Events are append-only and their properties never change, so an event's value is fetched once:
    when the read model first holds the event (its ids decide, never an id watermark).
    At most `max_keys` (workspace, key) pairs are kept, least recently used first out.
    """

    def __init__(self, max_keys: int = 16) -> None:
        self._lock = threading.Lock()
        self._keys: OrderedDict[tuple[int, str], _KeyColumns] = OrderedDict()
        self.max_keys = max_keys

    def lookup(self, *, workspace_id: int, key: str, names: Sequence[str], cols: WorkspaceColumns) -> ValueLookup:
        """Values of `key` on the events with these names that the read model `cols` holds.

        What is fetched is decided by the read model's own event ids, not by an id watermark: an
        event of a batch that committed late is fetched as soon as the read model holds it.
        """
        from funnel_site.events.models import Event

        with self._lock:
            columns = self._keys.pop((workspace_id, key), None) or _KeyColumns()
            self._keys[(workspace_id, key)] = columns
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
            code_of = {n: c for c, n in enumerate(cols.names)}
            wanted = {n: cols.event_id[cols.name == code_of[n]] for n in names if n in code_of}
            missing = {}
            for name, ids in wanted.items():
                if columns.by_name.get(name, (None, None, ""))[2] != cols.version:
                    missing[name] = np.setdiff1d(ids, columns.checked.get(name, np.zeros(0, np.int64)))
            if any(m.size for m in missing.values()):
                todo = np.concatenate([m for m in missing.values() if m.size])
                qs = Event.objects.filter(workspace_id=workspace_id, name__in=[n for n, m in missing.items() if m.size],
                                          id__gte=int(todo.min()), id__lte=int(todo.max()))
                fetched: dict[str, list[tuple[np.ndarray, int]]] = {}
                for (name,), value, ids in _grouped(qs, ("name",), KeyTextTransform(key, "properties")):
                    fetched.setdefault(name, []).append((ids, columns.code(value)))
                for name, need in missing.items():
                    old_ids, old_codes, _ = columns.by_name.get(name, (np.zeros(0, np.int64), np.zeros(0, np.int64), ""))
                    parts = [(ids[np.isin(ids, need)], code) for ids, code in fetched.get(name, [])]
                    new_ids = np.concatenate([old_ids] + [ids for ids, _ in parts])
                    new_codes = np.concatenate([old_codes] + [np.full(ids.size, code, np.int64) for ids, code in parts])
                    order = np.argsort(new_ids, kind="stable")
                    columns.by_name[name] = (new_ids[order], new_codes[order], cols.version)
                    columns.checked[name] = np.union1d(columns.checked.get(name, np.zeros(0, np.int64)), need)
            for name in missing:
                if name in columns.by_name:
                    ids, codes, _ = columns.by_name[name]
                    columns.by_name[name] = (ids, codes, cols.version)
                else:
                    columns.by_name[name] = (np.zeros(0, np.int64), np.zeros(0, np.int64), cols.version)
            chosen = [columns.by_name[n] for n in names if n in columns.by_name]
            labels = list(columns.labels)
        if not chosen:
            return ValueLookup(np.zeros(0, np.int64), np.zeros(0, np.int64), labels)
        ids = np.concatenate([c[0] for c in chosen]) if len(chosen) > 1 else chosen[0][0]
        codes = np.concatenate([c[1] for c in chosen]) if len(chosen) > 1 else chosen[0][1]
        return ValueLookup(ids=ids, codes=codes, labels=labels)

    def clear(self) -> None:
        """Forget everything (tests; a workspace deleted)."""
        with self._lock:
            self._keys.clear()


property_cache = PropertyCache()


def event_property_lookup(*, workspace_id: int, key: str, names: Sequence[str], cols: WorkspaceColumns) -> ValueLookup:
    """Values of event property `key` on the read model's events with these names (cached per process)."""
    return property_cache.lookup(workspace_id=workspace_id, key=key, names=list(names), cols=cols)


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
