"""The definition grammar: valid shapes are accepted as given, and each error names its field."""

from __future__ import annotations

import pytest
from rest_framework import serializers

from predictions.segments.definition import definition_parse, error_fields

pytestmark = pytest.mark.django_db


def errors_of(workspace, definition) -> list[dict]:
    with pytest.raises(serializers.ValidationError) as caught:
        definition_parse(definition, workspace=workspace)
    return error_fields(caught.value.detail, "definition")


@pytest.fixture
def ws(workspace_with_key):
    return workspace_with_key[0]


@pytest.fixture
def funnel(ws):
    from funnel_site.funnels.models import SavedFunnel

    return SavedFunnel.objects.create(workspace=ws, name="checkout", definition={
        "steps": [{"events": ["Product Viewed"]}, {"events": ["Product Added"]}, {"events": ["Order Completed"]}],
        "window": "7d"})


def test_valid_definitions_round_trip(ws, funnel):
    definition = {"and": [
        {"score": {"target": "purchase", "top_percent": 10}},
        {"or": [{"stage": {"reached": "consideration", "not_next_within": "2d"}},
                {"funnel": {"id": funnel.id, "step": 2, "not_next_within": "1h"}}]},
        {"not": {"trait": {"key": "plan", "op": "in", "value": ["free", 3, True]}}},
        {"email": {"op": "ends_with", "value": "@example.com"}},
        {"trait": {"key": "age", "op": "gte", "value": 30}},
        {"trait": {"key": "vip", "op": "exists"}},
        {"score": {"target": "churn", "min_probability": 0.6}},
    ]}
    assert definition_parse(definition, workspace=ws) == definition
    assert definition_parse({"score": {"target": "churn", "min_probability": 1}}, workspace=ws)
    assert definition_parse({"score": {"target": "churn", "top_percent": 100}}, workspace=ws)


@pytest.mark.parametrize(("definition", "field", "words"), [
    ({}, "definition", "empty"),
    (None, "definition", ""),
    ([], "definition", "object"),
    ({"and": []}, "definition.and", "at least one"),
    ({"or": [{}]}, "definition.or[0]", "empty"),
    ({"score": {"target": "purchase", "min_probability": 1.5}}, "definition.score.min_probability", "[0, 1]"),
    ({"score": {"target": "purchase", "min_probability": -0.1}}, "definition.score.min_probability", "[0, 1]"),
    ({"score": {"target": "purchase", "top_percent": 0}}, "definition.score.top_percent", "(0, 100]"),
    ({"score": {"target": "purchase", "top_percent": 100.5}}, "definition.score.top_percent", "(0, 100]"),
    ({"score": {"target": "purchase"}}, "definition.score.min_probability", "exactly one"),
    ({"score": {"target": "purchase", "top_percent": 5, "min_probability": 0.5}}, "definition.score.min_probability",
     "exactly one"),
    ({"score": {"target": "revenue", "top_percent": 5}}, "definition.score.target", "revenue"),
    ({"and": [{"stage": {"reached": "consideration"}}, {"score": {"target": "x", "top_percent": 5}}]},
     "definition.and[1].score.target", ""),
    ({"stage": {"reached": "nirvana"}}, "definition.stage.reached", ""),
    ({"stage": {"reached": "interest", "not_next_within": "5 days"}}, "definition.stage.not_next_within",
     "duration"),
    ({"stage": {"reached": "interest", "not_next_within": "90"}}, "definition.stage.not_next_within", "duration"),
    ({"stage": {"reached": "loyalty", "not_next_within": "2d"}}, "definition.stage.reached", "last stage"),
    ({"funnel": {"id": 999999, "step": 1}}, "definition.funnel.id", "no saved funnel"),
    ({"trait": {"key": "age", "op": "gt", "value": "thirty"}}, "definition.trait.value", "number"),
    ({"trait": {"key": "age", "op": "eq"}}, "definition.trait.value", "needs a value"),
    ({"trait": {"key": "age", "op": "exists", "value": 1}}, "definition.trait.value", "no value"),
    ({"trait": {"key": "plan", "op": "in", "value": []}}, "definition.trait.value", "non-empty list"),
    ({"trait": {"key": "", "op": "exists"}}, "definition.trait.key", ""),
    ({"trait": {"key": "plan", "op": "like", "value": "x"}}, "definition.trait.op", ""),
    ({"email": {"op": "ends_with"}}, "definition.email.value", "needs a value"),
    ({"score": {"target": "purchase", "top_percent": 5}, "stage": {"reached": "interest"}}, "definition.stage",
     "one key"),
    ({"sc0re": {"target": "purchase"}}, "definition.sc0re", "unknown key"),
    ({"score": {"target": "purchase", "top_percent": 5, "extra": 1}}, "definition.score.extra", "unknown key"),
    ({"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {
        "stage": {"reached": "interest"}}}}}}}}}}}}, "definition", "deeper"),
])
def test_each_error_names_its_field(ws, definition, field, words):
    errors = errors_of(ws, definition)
    assert errors, definition
    first = errors[0]
    assert first["field"].startswith(field), errors
    assert words.lower() in first["error"].lower(), errors


def test_funnel_step_errors(ws, funnel):
    assert errors_of(ws, {"funnel": {"id": funnel.id, "step": 4}})[0]["field"] == "definition.funnel.step"
    last = errors_of(ws, {"funnel": {"id": funnel.id, "step": 3, "not_next_within": "1d"}})[0]
    assert last["field"] == "definition.funnel.step" and "last" in last["error"]
    assert errors_of(ws, {"funnel": {"id": funnel.id, "step": 0}})[0]["field"] == "definition.funnel.step"


def test_another_workspaces_funnel_is_missing(ws, funnel, other_workspace_with_key):
    errors = errors_of(other_workspace_with_key[0], {"funnel": {"id": funnel.id, "step": 1}})
    assert errors[0]["field"] == "definition.funnel.id"


def test_summary_in_words(ws, funnel):
    from predictions.segments.definition import definition_summary

    definition = definition_parse({"and": [
        {"score": {"target": "purchase", "top_percent": 10}},
        {"or": [{"stage": {"reached": "consideration", "not_next_within": "2d"}},
                {"funnel": {"id": funnel.id, "step": 2}}]},
        {"not": {"email": {"op": "exists"}}},
        {"trait": {"key": "plan", "op": "in", "value": ["pro", "team"]}},
    ]}, workspace=ws)
    assert definition_summary(definition, funnel_names={funnel.id: "checkout"}) == (
        "purchase score in the top 10 % and (reached consideration, not the next stage within 2d or reached "
        "step 2 of checkout) and not (email exists) and trait plan in pro, team")
