"""The segment definition grammar: a JSON tree parsed and validated by DRF serializers.

A definition is one condition object with exactly one key:

    {"and": [C, ...]}  {"or": [C, ...]}  {"not": C}
    {"score":  {"target": "purchase"|"churn", "min_probability": 0.6}}   or  {..., "top_percent": 10}
    {"stage":  {"reached": "consideration", "not_next_within": "2d"}}     (not_next_within optional)
    {"funnel": {"id": 3, "step": 2, "not_next_within": "2d"}}             (a saved funnel's step)
    {"trait":  {"key": "plan", "op": "eq"|"in"|"exists"|"contains"|"gt"|"gte"|"lt"|"lte", "value": ...}}
    {"email":  {"op": "eq"|"ends_with"|"contains"|"exists", "value": "..."}}

The serializers are the parser (so the OpenAPI schema is what is accepted); errors name the field by
its path, e.g. `definition.and[1].score.min_probability`. The semantics are in README.md
("Segments") and implemented in `evaluate.py`.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from rest_framework import serializers
from rest_framework.settings import api_settings

from funnel_site.events.stages import STAGES
from predictions.models import Target

MAX_DEPTH = 8
MAX_CONDITIONS = 50
LEAVES = ("score", "stage", "funnel", "trait", "email")
COMBINATORS = ("and", "or", "not")
TRAIT_OPS = ("eq", "in", "exists", "contains", "gt", "gte", "lt", "lte")
NUMERIC_OPS = ("gt", "gte", "lt", "lte")
EMAIL_OPS = ("eq", "ends_with", "contains", "exists")
DURATION_HELP = "a duration: 90s, 30m, 1h, 14d, 2w"


def duration_seconds(text: Any) -> int:
    """Seconds of a duration in the contract's grammar (the commands' parser, funnel_site.cli);
    ValidationError otherwise."""
    from funnel_site.cli import parse_duration

    try:
        return parse_duration(str(text), field="not_next_within")
    except CommandError:
        raise serializers.ValidationError(
            f"{text!r} is not a duration longer than zero: write it like 90s, 30m, 1h, 14d or 2w"
        ) from None


class StrictSerializer(serializers.Serializer):
    """A serializer that refuses keys it does not know (naming them) instead of ignoring them."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {unknown[0]: [f"unknown key; use {', '.join(self.fields)}"]}
                )
        return super().to_internal_value(data)


class ScoreConditionSerializer(StrictSerializer):
    """Contacts whose active-model score for `target` is >= `min_probability`, or in the top N %."""

    target = serializers.ChoiceField(choices=Target.choices)
    min_probability = serializers.FloatField(
        required=False, min_value=0.0, max_value=1.0, help_text="a probability threshold in [0, 1] (inclusive)",
        error_messages={"min_value": "must be within [0, 1]", "max_value": "must be within [0, 1]"},
    )
    top_percent = serializers.FloatField(
        required=False, help_text="the top N % of scored contacts by probability, N in (0, 100]"
    )

    def validate_top_percent(self, value: float) -> float:
        """(0, 100]: 0 % would always be empty."""
        if not 0 < value <= 100:
            raise serializers.ValidationError(f"must be within (0, 100], got {value:g}")
        return value

    def validate(self, attrs: dict) -> dict:
        if ("min_probability" in attrs) == ("top_percent" in attrs):
            raise serializers.ValidationError({"min_probability": ["give exactly one of min_probability or top_percent"]})
        return attrs


class StageConditionSerializer(StrictSerializer):
    """Contacts that reached a funnel stage (optionally: and have not gone further for a time)."""

    reached = serializers.ChoiceField(choices=list(STAGES))
    not_next_within = serializers.CharField(
        required=False, help_text=f"{DURATION_HELP}: the latest arrival at `reached` is at least this old and "
        "no event of a later stage followed it",
    )

    def validate_not_next_within(self, value: str) -> str:
        duration_seconds(value)
        return value.strip()

    def validate(self, attrs: dict) -> dict:
        if "not_next_within" in attrs and attrs["reached"] == STAGES[-1]:
            raise serializers.ValidationError({"reached": [f"{STAGES[-1]} is the last stage: it has no next stage"]})
        return attrs


class FunnelConditionSerializer(StrictSerializer):
    """Contacts that reached step `step` of a saved funnel (optionally: and went no further)."""

    id = serializers.IntegerField(help_text="a saved funnel of this workspace (GET /api/v1/funnels)")
    step = serializers.IntegerField(min_value=1, help_text="1-based")
    not_next_within = serializers.CharField(
        required=False, help_text=f"{DURATION_HELP}: furthest step is exactly `step`, reached at least this long ago",
    )

    def validate_not_next_within(self, value: str) -> str:
        duration_seconds(value)
        return value.strip()

    def validate(self, attrs: dict) -> dict:
        from funnel_site.funnels.models import SavedFunnel

        workspace = self.context.get("workspace")
        funnel = SavedFunnel.objects.filter(workspace=workspace, id=attrs["id"]).first() if workspace else None
        if funnel is None:
            raise serializers.ValidationError({"id": [f"no saved funnel {attrs['id']} in this workspace"]})
        n_steps = len(funnel.definition.get("steps", []))
        if attrs["step"] > n_steps:
            raise serializers.ValidationError({"step": [f"funnel {funnel.name!r} has {n_steps} steps"]})
        if "not_next_within" in attrs and attrs["step"] == n_steps:
            raise serializers.ValidationError({"step": [f"step {n_steps} is the last of funnel {funnel.name!r}: it has no next step"]})
        return attrs


class TraitConditionSerializer(StrictSerializer):
    """A condition on one key of the contact's traits (JSON); numeric ops match numbers only."""

    key = serializers.RegexField(r"^[^\x00]{1,200}$", help_text="a top-level key of Contact.traits")
    op = serializers.ChoiceField(choices=list(TRAIT_OPS))
    value = serializers.JSONField(required=False, help_text="a string, number or boolean; a list for `in`")

    def validate(self, attrs: dict) -> dict:
        op, value = attrs["op"], attrs.get("value")
        if op == "exists":
            if "value" in attrs:
                raise serializers.ValidationError({"value": ["`exists` takes no value"]})
            return attrs
        if "value" not in attrs:
            raise serializers.ValidationError({"value": [f"`{op}` needs a value"]})
        if op == "in":
            if not isinstance(value, list) or not value or not all(_scalar(v) for v in value):
                raise serializers.ValidationError({"value": ["`in` needs a non-empty list of strings, numbers or booleans"]})
        elif op in NUMERIC_OPS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise serializers.ValidationError({"value": [f"`{op}` compares numbers: give a number"]})
        elif op == "contains":
            if not isinstance(value, str) or not value:
                raise serializers.ValidationError({"value": ["`contains` needs a non-empty string"]})
        elif not _scalar(value):
            raise serializers.ValidationError({"value": ["`eq` needs a string, number or boolean"]})
        return attrs


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and value is not None


class EmailConditionSerializer(StrictSerializer):
    """A condition on the contact's email (case-insensitive)."""

    op = serializers.ChoiceField(choices=list(EMAIL_OPS))
    value = serializers.CharField(required=False, max_length=254)

    def validate(self, attrs: dict) -> dict:
        if attrs["op"] == "exists":
            if "value" in attrs:
                raise serializers.ValidationError({"value": ["`exists` takes no value"]})
        elif not attrs.get("value"):
            raise serializers.ValidationError({"value": [f"`{attrs['op']}` needs a value"]})
        return attrs


class ConditionSerializer(StrictSerializer):
    """One condition: exactly one of and / or / not / score / stage / funnel / trait / email."""

    # and/or/not are added below the class: they refer to ConditionSerializer itself
    score = ScoreConditionSerializer(required=False)
    stage = StageConditionSerializer(required=False)
    funnel = FunnelConditionSerializer(required=False)
    trait = TraitConditionSerializer(required=False)
    email = EmailConditionSerializer(required=False)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            _fail(f"a condition is an object with one key: {', '.join(COMBINATORS + LEAVES)}")
        if not data:
            _fail(f"empty: give one condition ({', '.join(LEAVES)}) or combine them with and / or / not")
        depth = self.context.get("_depth", 0)
        if depth > MAX_DEPTH:
            _fail(f"nested deeper than {MAX_DEPTH} levels")
        if len(data) > 1:
            raise serializers.ValidationError(
                {sorted(data)[1]: [f"one key per condition, got {', '.join(sorted(data))}: combine them with and"]}
            )
        self.context["_depth"] = depth + 1  # the nested serializers share this context
        try:
            return super().to_internal_value(data)
        finally:
            self.context["_depth"] = depth


def _fail(message: str) -> None:
    # a dict, not a list: DRF's error dict of a root serializer must be one
    raise serializers.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: [message]})


def _children(**kwargs) -> serializers.ListField:
    return serializers.ListField(
        child=ConditionSerializer(), min_length=1, max_length=MAX_CONDITIONS, required=False,
        error_messages={"min_length": "needs at least one condition", "empty": "needs at least one condition"},
        **kwargs,
    )


ConditionSerializer._declared_fields["and"] = _children(help_text="every condition holds")
ConditionSerializer._declared_fields["or"] = _children(help_text="at least one condition holds")
ConditionSerializer._declared_fields["not"] = ConditionSerializer(required=False, help_text="the condition does not hold")


def count_conditions(node: dict) -> int:
    """The number of condition objects in a (validated) definition."""
    key, value = next(iter(node.items()))
    if key in ("and", "or"):
        return 1 + sum(count_conditions(child) for child in value)
    if key == "not":
        return 1 + count_conditions(value)
    return 1


def score_targets(node: dict) -> set[str]:
    """Targets whose scores the definition reads (a refresh after their scoring matters)."""
    key, value = next(iter(node.items()))
    if key in ("and", "or"):
        return set().union(*(score_targets(child) for child in value))
    if key == "not":
        return score_targets(value)
    return {value["target"]} if key == "score" else set()


def reads_only_scores(node: dict) -> bool:
    """True when every condition of the definition is a score condition (events, traits and funnels
    cannot change its members: only a scoring of one of its `score_targets` can)."""
    key, value = next(iter(node.items()))
    if key in ("and", "or"):
        return all(reads_only_scores(child) for child in value)
    if key == "not":
        return reads_only_scores(value)
    return key == "score"


OP_WORDS = {"eq": "=", "in": "in", "contains": "contains", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤",
            "ends_with": "ends with"}


def definition_summary(node: dict, *, funnel_names: dict[int, str] | None = None) -> str:
    """A validated definition in words, for lists: "purchase score in the top 10 % and not (email exists)"."""
    key, value = next(iter(node.items()))
    if key in ("and", "or"):
        parts = [definition_summary(child, funnel_names=funnel_names) for child in value]
        return f" {key} ".join(f"({p})" if len(value) > 1 and (" and " in p or " or " in p) else p for p in parts)
    if key == "not":
        return f"not ({definition_summary(value, funnel_names=funnel_names)})"
    if key == "score":
        if "top_percent" in value:
            return f"{value['target']} score in the top {value['top_percent']:g} %"
        return f"{value['target']} probability ≥ {value['min_probability']:g}"
    if key == "stage":
        text = f"reached {value['reached']}"
        return text + (f", not the next stage within {value['not_next_within']}" if "not_next_within" in value else "")
    if key == "funnel":
        name = (funnel_names or {}).get(value["id"], f"funnel {value['id']}")
        text = f"reached step {value['step']} of {name}"
        return text + (f", not the next within {value['not_next_within']}" if "not_next_within" in value else "")
    subject = f"trait {value['key']}" if key == "trait" else "email"
    if value["op"] == "exists":
        return f"{subject} exists"
    shown = ", ".join(map(str, value["value"])) if isinstance(value.get("value"), list) else value.get("value")
    return f"{subject} {OP_WORDS[value['op']]} {shown}"


def error_fields(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """DRF's nested error detail flattened to `[{"field": "definition.and[0].score.target", "error"}]`."""
    out: list[dict[str, str]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == api_settings.NON_FIELD_ERRORS_KEY:
                out.extend(error_fields(value, prefix))
                continue
            if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
                path = f"{prefix}[{key}]"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            out.extend(error_fields(value, path))
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out.extend({"field": prefix, "error": str(item)} for item in detail)
        else:
            for item in detail:
                out.extend(error_fields(item, prefix))
    else:
        out.append({"field": prefix, "error": str(detail)})
    return out


def definition_parse(data: Any, *, workspace) -> dict:
    """A validated definition (canonical JSON) or `serializers.ValidationError` naming the fields."""
    parser = ConditionSerializer(data=data, context={"workspace": workspace})
    parser.is_valid(raise_exception=True)
    definition = definition_canonical(parser.validated_data)
    if count_conditions(definition) > MAX_CONDITIONS:
        raise serializers.ValidationError({"definition": [f"more than {MAX_CONDITIONS} conditions"]})
    return definition


def definition_canonical(node: Any) -> Any:
    """Plain dicts and lists (validated_data holds OrderedDicts), keys in a stable order."""
    if isinstance(node, dict):
        return {key: definition_canonical(value) for key, value in node.items()}
    if isinstance(node, list):
        return [definition_canonical(value) for value in node]
    return node
