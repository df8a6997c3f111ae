"""Funnel queries as the API, the command, the page and saved funnels write them, parsed into
the engine's `FunnelDefinition` plus a canonical JSON form (what is saved and what the cache key
hashes).

The accepted shape (every key but `steps` optional):

    {"steps": ["pv", "stage:consideration", {"event": "buy", "properties": [...], "campaign": "k",
               "channel": "email", "optional": false, "name": "Bought"}],
     "window": "14d" | 1209600, "order": "sequential|strict|any", "count": "unique|totals",
     "exclude": ["Refund:2-3", {"event": "Refund", "from_step": 2, "to_step": 3, "properties": [...]}],
     "breakdown": "campaign|channel|stage|event|property:KEY|contact:KEY",
     "attribution": "first_touch|last_touch", "hold_constant": "product_id",
     "since": ISO-8601, "until": ISO-8601, "trend_interval": "day|week", "histogram_bins": 12}

A property filter is `{"key", "operator": "eq|in|contains|gt|lt", "value"}`. Every error is a
`FunnelDefinitionError` whose `field` names the offending input.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
from django.utils.dateparse import parse_date, parse_datetime

from funnel_site.funnels.engine import (
    Breakdown,
    EventMatcher,
    Exclusion,
    FunnelDefinition,
    FunnelDefinitionError,
    FunnelStep,
    PropertyFilter,
    parse_duration,
    parse_exclusion,
    parse_matcher,
)

BREAKDOWN_FIELDS = ("campaign", "channel", "stage", "event")
BREAKDOWN_PREFIXES = ("property:", "contact:")
KNOWN_KEYS = {
    "steps", "window", "window_seconds", "order", "count", "exclude", "exclusions", "breakdown",
    "attribution", "hold_constant", "since", "until", "trend_interval", "histogram_bins",
}


@dataclass(frozen=True)
class FunnelSpec:
    """A validated funnel query: the engine definition and its canonical JSON form."""

    definition: FunnelDefinition
    canonical: dict[str, Any]

    @property
    def digest(self) -> str:
        """A stable hash of the canonical form (part of the result cache key)."""
        return hashlib.sha256(orjson.dumps(self.canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()

    @property
    def step_labels(self) -> list[str]:
        """The display label of every step."""
        return [step.label for step in self.definition.steps]


def _fail(field: str, reason: str) -> FunnelDefinitionError:
    return FunnelDefinitionError(field=field, reason=reason)


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(field, f"expected a non-empty string, got {value!r}")
    return value.strip()


def _filters(raw: Any, field: str) -> tuple[PropertyFilter, ...]:
    if raw in (None, []):
        return ()
    if isinstance(raw, dict):  # shorthand {"plan": "pro"} = equals
        raw = [{"key": key, "operator": "eq", "value": value} for key, value in raw.items()]
    if not isinstance(raw, list):
        raise _fail(field, "property filters are a list of {key, operator, value}")
    filters = []
    for index, item in enumerate(raw):
        where = f"{field}[{index}]"
        if not isinstance(item, dict) or "key" not in item:
            raise _fail(where, "a property filter is {key, operator, value}")
        value = item.get("value")
        if isinstance(value, list):
            value = tuple(value)
        property_filter = PropertyFilter(key=str(item["key"]), operator=str(item.get("operator", "eq")), value=value)
        property_filter.validate(where)
        filters.append(property_filter)
    return tuple(filters)


def _matcher(raw: Any, field: str) -> EventMatcher:
    """A matcher from `"A|B"`, `"stage:NAME"` or a dict with event/events/stage and filters."""
    if isinstance(raw, str):
        matcher = parse_matcher(raw, field=field)
    elif isinstance(raw, dict):
        names = raw.get("events") or ([raw["event"]] if raw.get("event") else [])
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list):
            raise _fail(field, "`events` is a list of event names")
        stage = raw.get("stage")
        if names and len(names) == 1 and str(names[0]).startswith("stage:") and not stage:
            base = parse_matcher(str(names[0]), field=field)
            names, stage = [], base.stage
        matcher = EventMatcher(
            events=tuple(_string(name, field) for name in names),
            stage=str(stage).strip().lower() if stage else None,
            properties=_filters(raw.get("properties"), f"{field}.properties"),
            campaign=_string(raw["campaign"], f"{field}.campaign") if raw.get("campaign") else None,
            channel=_string(raw["channel"], f"{field}.channel") if raw.get("channel") else None,
        )
    else:
        raise _fail(field, f"a step is an event name, 'stage:NAME' or an object, got {raw!r}")
    matcher.validate(field)
    return matcher


def _steps(raw: Any) -> tuple[FunnelStep, ...]:
    if isinstance(raw, str):
        raw = [part for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list) or not raw:
        raise _fail("steps", "give the funnel's steps as a list (2 to 20 event names or stage:NAME)")
    steps = []
    for index, item in enumerate(raw):
        field = f"steps[{index}]"
        optional = bool(item.get("optional", False)) if isinstance(item, dict) else False
        name = item.get("name") if isinstance(item, dict) else None
        steps.append(FunnelStep(matcher=_matcher(item, field), optional=optional, name=name or None))
    return tuple(steps)


def _exclusions(raw: Any) -> tuple[Exclusion, ...]:
    if raw in (None, "", []):
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise _fail("exclude", "exclusions are a list of 'EVENT:a-b' or {event, from_step, to_step}")
    out = []
    for index, item in enumerate(raw):
        field = f"exclude[{index}]"
        if isinstance(item, str):
            out.append(parse_exclusion(item, field=field))
        elif isinstance(item, dict):
            try:
                a, b = int(item["from_step"]), int(item["to_step"])
            except (KeyError, TypeError, ValueError):
                raise _fail(field, "an exclusion needs integer from_step and to_step") from None
            out.append(Exclusion(matcher=_matcher(item, field), from_step=a, to_step=b))
        else:
            raise _fail(field, f"write an exclusion as EVENT:a-b, got {item!r}")
    return tuple(out)


def _window(data: dict) -> int:
    raw = data.get("window_seconds", data.get("window", "14d"))
    if raw in (None, ""):
        raw = "14d"
    if isinstance(raw, str) and raw.strip().isdigit():
        raise _fail("window", f"write a duration with a unit like 90s, 30m, 1h, 14d or 2w, got {raw!r}")
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if not isinstance(raw, (int, str)) or isinstance(raw, bool):
        raise _fail("window", f"write a duration like 90s, 30m, 1h, 14d or 2w, got {raw!r}")
    return parse_duration(raw, field="window")


def parse_moment(raw: Any, field: str) -> datetime | None:
    """An ISO-8601 date or date-time (naive = UTC)."""
    if raw in (None, ""):
        return None
    if isinstance(raw, datetime):
        moment = raw
    elif isinstance(raw, date):
        moment = datetime(raw.year, raw.month, raw.day)
    elif isinstance(raw, str):
        text = raw.strip()
        try:
            moment = parse_datetime(text)
            if moment is None and (day := parse_date(text)) is not None:
                moment = datetime(day.year, day.month, day.day)
        except ValueError:
            moment = None
        if moment is None:
            raise _fail(field, f"write an ISO-8601 date or time like 2026-01-31 or 2026-01-31T12:00:00Z, got {raw!r}")
    else:
        raise _fail(field, f"expected an ISO-8601 string, got {raw!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _breakdown(data: dict) -> Breakdown | None:
    raw = data.get("breakdown")
    if raw in (None, ""):
        return None
    attribution = data.get("attribution") or "first_touch"
    if isinstance(raw, dict):
        attribution = raw.get("attribution", attribution)
        raw = raw.get("field")
    if not isinstance(raw, str):
        raise _fail("breakdown", f"name a field to break down by, got {raw!r}")
    field = raw.strip()
    if field.startswith("event."):  # PostHog spells event properties this way
        field = "property:" + field[len("event.") :]
    known = field in BREAKDOWN_FIELDS or (
        field.startswith(BREAKDOWN_PREFIXES) and field.split(":", 1)[1].strip()
    )
    if not known:
        raise _fail(
            "breakdown",
            f"use campaign, channel, stage, event, property:KEY or contact:KEY, got {raw!r}",
        )
    return Breakdown(field=field, attribution=str(attribution))


def _int_or_none(raw: Any, field: str) -> int | None:
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise _fail(field, f"expected a whole number, got {raw!r}") from None


def funnel_spec_parse(data: Any) -> FunnelSpec:
    """Validate a funnel query (API body, saved definition, command options) into a `FunnelSpec`."""
    if not isinstance(data, dict):
        raise _fail("body", "a funnel query is a JSON object with at least `steps`")
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        raise _fail(unknown[0], f"unknown option; use {', '.join(sorted(KNOWN_KEYS))}")
    steps = _steps(data.get("steps"))
    since, until = parse_moment(data.get("since"), "since"), parse_moment(data.get("until"), "until")
    if since and until and since >= until:
        raise _fail("until", "`until` must be after `since`")
    hold = data.get("hold_constant")
    definition = FunnelDefinition(
        steps=steps,
        window_seconds=_window(data),
        order=str(data.get("order") or "sequential"),
        exclusions=_exclusions(data.get("exclude", data.get("exclusions"))),
        count=str(data.get("count") or "unique"),
        hold_constant=_string(hold, "hold_constant") if hold not in (None, "") else None,
        breakdown=_breakdown(data),
        date_from=since,
        date_to=until,
        trend_interval=str(data.get("trend_interval") or "day"),
        histogram_bins=_int_or_none(data.get("histogram_bins"), "histogram_bins"),
    )
    try:
        definition.validate()
    except FunnelDefinitionError as exc:
        if exc.field.startswith("exclusions"):  # the engine's name; queries spell it `exclude`
            raise _fail("exclude" + exc.field[len("exclusions"):], exc.reason) from None
        raise
    return FunnelSpec(definition=definition, canonical=_canonical(definition))


def _matcher_json(matcher: EventMatcher) -> dict[str, Any]:
    out: dict[str, Any] = {"stage": matcher.stage} if matcher.stage else {"events": list(matcher.events)}
    if matcher.properties:
        out["properties"] = [
            {"key": f.key, "operator": f.operator, "value": list(f.value) if isinstance(f.value, tuple) else f.value}
            for f in matcher.properties
        ]
    if matcher.campaign:
        out["campaign"] = matcher.campaign
    if matcher.channel:
        out["channel"] = matcher.channel
    return out


def _canonical(definition: FunnelDefinition) -> dict[str, Any]:
    """The definition as plain JSON, accepted back by `funnel_spec_parse`."""
    steps = []
    for step in definition.steps:
        item = _matcher_json(step.matcher)
        if step.optional:
            item["optional"] = True
        if step.name:
            item["name"] = step.name
        steps.append(item)
    return {
        "steps": steps,
        "window_seconds": definition.window_seconds,
        "order": definition.order,
        "count": definition.count,
        "exclusions": [
            {**_matcher_json(e.matcher), "from_step": e.from_step, "to_step": e.to_step}
            for e in definition.exclusions
        ],
        "breakdown": definition.breakdown.field if definition.breakdown else None,
        "attribution": definition.breakdown.attribution if definition.breakdown else "first_touch",
        "hold_constant": definition.hold_constant,
        "since": definition.date_from.isoformat() if definition.date_from else None,
        "until": definition.date_to.isoformat() if definition.date_to else None,
        "trend_interval": definition.trend_interval,
        "histogram_bins": definition.histogram_bins,
    }
