"""Input serializers of the funnels API: the structure of a query, parsed by the views before
`funnel_spec_parse` (which adds what a schema cannot say: stage names, step order rules, window
limits) and the source of the OpenAPI schema, so the schema and what is accepted cannot drift."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from funnel_site.events.stages import STAGES
from funnel_site.funnels.engine import FunnelDefinitionError
from funnel_site.funnels.engine.definition import MAX_HISTOGRAM_BINS, MAX_STEPS, MIN_STEPS
from funnel_site.strict_fields import StrictCharField, StrictIntegerField

MAX_TEXT = 200
_TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": r"\S"}
_FILTER = {
    "type": "object", "required": ["key", "operator"],
    "properties": {"key": _TEXT, "operator": {"type": "string", "enum": ["eq", "in", "contains", "gt", "lt"]},
                   "value": {}},
}
_MATCHER_PROPERTIES = {
    "event": _TEXT, "events": {"type": "array", "items": _TEXT, "minItems": 1, "maxItems": 50},
    "stage": {"type": "string", "enum": list(STAGES)},
    "properties": {"type": "array", "items": _FILTER, "maxItems": 20},
    "campaign": _TEXT, "channel": _TEXT,
}
STEP_SCHEMA = {"oneOf": [
    {**_TEXT, "description": "an event name, 'A|B' (either), or 'stage:NAME'"},
    {"type": "object", "properties": {**_MATCHER_PROPERTIES, "optional": {"type": "boolean"}, "name": _TEXT},
     "anyOf": [{"required": ["event"]}, {"required": ["events"]}, {"required": ["stage"]}]},
]}
EXCLUSION_SCHEMA = {"oneOf": [
    {"type": "string", "pattern": r"^.+:[0-9]+-[0-9]+$", "description": "EVENT:a-b"},
    {"type": "object", "required": ["from_step", "to_step"],
     "properties": {**_MATCHER_PROPERTIES, "from_step": {"type": "integer", "minimum": 1, "maximum": MAX_STEPS},
                    "to_step": {"type": "integer", "minimum": 1, "maximum": MAX_STEPS}},
     "anyOf": [{"required": ["event"]}, {"required": ["events"]}, {"required": ["stage"]}]},
]}
WINDOW_SCHEMA = {"oneOf": [
    {"type": "string", "pattern": r"^\s*[0-9]+\s*(s|m|h|d|w)\s*$", "description": "90s, 30m, 1h, 14d, 2w"},
    {"type": "integer", "minimum": 1, "description": "seconds"},
], "description": "default 14d, at most 90d"}


def _shape_error(value, expected: str):
    return serializers.ValidationError(f"expected {expected}, got {type(value).__name__}")


@extend_schema_field(STEP_SCHEMA)
class StepField(serializers.Field):
    """A step: a non-empty string or an object with event, events or stage."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            if not data.strip() or len(data) > MAX_TEXT:
                raise serializers.ValidationError(f"a step name is 1 to {MAX_TEXT} characters")
            return data
        if isinstance(data, dict):
            if not any(data.get(k) for k in ("event", "events", "stage")):
                raise serializers.ValidationError("a step object needs `event`, `events` or `stage`")
            return data
        raise _shape_error(data, "an event name or a step object")

    def to_representation(self, value):
        return value


@extend_schema_field(EXCLUSION_SCHEMA)
class ExclusionField(StepField):
    """An exclusion: 'EVENT:a-b' or an object with from_step and to_step."""

    def to_internal_value(self, data):
        if isinstance(data, dict) and not {"from_step", "to_step"} <= set(data):
            raise serializers.ValidationError("an exclusion object needs from_step and to_step")
        return super().to_internal_value(data)


@extend_schema_field(WINDOW_SCHEMA)
class WindowField(serializers.Field):
    """A duration with a unit, or whole seconds."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (str, int)):
            raise _shape_error(data, "a duration like 14d or whole seconds")
        return data

    def to_representation(self, value):
        return value


@extend_schema_field({"oneOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"},
                                {"type": "string", "maxLength": 0, "description": "empty: the default"}],
                      "description": "ISO-8601 date or date-time (naive: UTC)"})
class MomentField(serializers.Field):
    """An ISO-8601 date or date-time, parsed as the query parser parses it."""

    def to_internal_value(self, data):
        from funnel_site.funnels.spec import parse_moment

        try:
            parse_moment(data, self.field_name)
        except FunnelDefinitionError as exc:
            raise serializers.ValidationError(exc.reason) from None
        return data

    def to_representation(self, value):
        return value


class FunnelQuerySerializer(serializers.Serializer):
    """A funnel query (semantics checked afterwards by `funnel_site.funnels.spec`)."""

    steps = serializers.ListField(child=StepField(), min_length=MIN_STEPS, max_length=MAX_STEPS,
                                  help_text="2-20 event names, 'stage:NAME' or step objects")
    window = WindowField(required=False)
    order = serializers.ChoiceField(["sequential", "strict", "any"], required=False)
    count = serializers.ChoiceField(["unique", "totals"], required=False)
    exclude = serializers.ListField(child=ExclusionField(), required=False, max_length=20)
    breakdown = StrictCharField(required=False, max_length=MAX_TEXT,
                                      help_text="campaign, channel, stage, event, property:KEY, contact:KEY")
    attribution = serializers.ChoiceField(["first_touch", "last_touch"], required=False)
    hold_constant = StrictCharField(required=False, max_length=MAX_TEXT)
    since = MomentField(required=False)
    until = MomentField(required=False, help_text="exclusive; after `since`")
    trend_interval = serializers.ChoiceField(["day", "week"], required=False)
    histogram_bins = StrictIntegerField(required=False, min_value=1, max_value=MAX_HISTOGRAM_BINS)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields) - {"window_seconds", "exclusions"})
            if unknown:
                raise serializers.ValidationError({unknown[0]: "unknown option"})
        return super().to_internal_value(data)


class SavedFunnelWriteSerializer(serializers.Serializer):
    """Body of POST/PUT/PATCH of a saved funnel."""

    name = StrictCharField(max_length=MAX_TEXT)
    description = StrictCharField(required=False, allow_blank=True, max_length=2000)
    definition = FunnelQuerySerializer()


def funnel_query_check(data) -> dict:
    """The structure of a query body checked by FunnelQuerySerializer (ValidationError: 400 naming
    the field); returns the body unchanged for `funnel_spec_parse`, which reads raw values."""
    if not isinstance(data, dict):
        raise FunnelDefinitionError(field="body", reason="a funnel query is a JSON object with at least `steps`")
    FunnelQuerySerializer(data=data).is_valid(raise_exception=True)
    return data
