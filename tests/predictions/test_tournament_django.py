"""The tournament through Django: API and page show the scoreboard, train's bad input, stage suggestions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_model_api_returns_the_scoreboard_and_importance(api, synthetic_workspace, make_version):
    version = make_version(synthetic_workspace)
    body = api.get(f"/api/v1/models/{version.pk}").json()
    board = body["scoreboard"]
    assert board["served"] == body["trained_arch"] and board["why"]
    names = [c["name"] for c in board["candidates"]]
    assert names[:4] == ["recency", "logreg", "bgnbd", "gbt"] and "lstm" in names
    for line in board["candidates"]:
        assert {"status", "reason", "fit_seconds"} <= set(line)
        if line["status"] == "succeeded":
            assert {"roc_auc", "roc_auc_se", "pr_auc", "pr_auc_se", "brier", "brier_se"} <= set(line)
    assert {"by_event_type", "by_recency"} <= set(body["importance"])


def test_model_page_shows_the_scoreboard(client, admin_login, synthetic_workspace, make_version):
    version = make_version(synthetic_workspace)
    client.login(username=admin_login[0], password=admin_login[1])
    html = client.get(f"/dashboard/{synthetic_workspace.slug}/models/{version.pk}/").content.decode()
    assert 'id="scoreboard"' in html and 'data-candidate="gbt"' in html and 'id="served-why"' in html
    assert "validation contacts that chose nothing" in html and 'id="importance"' in html


@pytest.mark.parametrize("command", [["train"], ["score"], ["explain", "--contact", "u1"]])
def test_an_unknown_target_is_one_sentence_and_exit_1(command):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "manage.py", *command, "--workspace", "acme", "--target", "revenue"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "'revenue' is not a target" in lines[0] and "usage:" not in done.stderr


def test_train_with_an_unknown_arch_is_refused_before_queuing(workspace_with_key):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from predictions.models import ModelVersion

    with pytest.raises(CommandError, match="unknown arch 'transformer'"):
        call_command("train", "--workspace", "acme", "--target", "purchase", "--arch", "transformer")
    assert not ModelVersion.objects.exists()


def _journeys(workspace, contacts: int = 120):
    """view -> cart|basket_add -> checkout -> buy journeys; basket_add is unmapped."""
    from datetime import UTC, datetime, timedelta

    from funnel_site.events.services import events_ingest

    start = datetime(2026, 3, 1, tzinfo=UTC)
    items, t = [], start
    for c in range(contacts):
        for name in ("Product Viewed", "Product Viewed", "Product Added" if c % 2 else "basket_add",
                     "Checkout Started", "Order Completed"):
            t += timedelta(minutes=3)
            items.append({"contact_id": f"u{c}", "event": name, "timestamp": int(t.timestamp()),
                          "message_id": f"u{c}-{len(items)}"})
    result = events_ingest(workspace=workspace, items=list(enumerate(items)))
    assert result.rejected == 0


def test_stage_suggestions_wait_for_a_person(workspace_with_key):
    from funnel_site.events.models import StageMapping
    from funnel_site.events.stages import StageResolver
    from predictions.selectors import stage_suggestions
    from predictions.services import (
        stage_suggestion_accept,
        stage_suggestion_dismiss,
        stage_suggestions_refresh,
    )

    workspace, _ = workspace_with_key
    _journeys(workspace)
    assert stage_suggestions_refresh(workspace=workspace) == 1
    (suggestion,) = stage_suggestions(workspace.pk)
    assert suggestion.event_name == "basket_add" and suggestion.stage == "consideration"
    assert 0.5 < suggestion.confidence <= 1 and suggestion.occurrences == 60
    assert not StageMapping.objects.exists()  # nothing changes by itself
    assert StageResolver.for_workspace(workspace.pk).stage_of("basket_add") == ""
    stage_suggestion_accept(suggestion=suggestion)
    assert StageResolver.for_workspace(workspace.pk).stage_of("basket_add") == "consideration"
    assert stage_suggestions(workspace.pk).count() == 0 and stage_suggestions(workspace.pk, status="accepted")
    # mapped now: a refresh suggests nothing more, and a dismissed suggestion stays dismissed
    assert stage_suggestions_refresh(workspace=workspace) == 0
    stage_suggestion_dismiss(suggestion=suggestion)
    assert stage_suggestions(workspace.pk, status="dismissed").count() == 1


def test_suggest_stages_command_lists_the_suggestions(workspace_with_key):
    import io
    import json

    from django.core.management import call_command

    from funnel_site.events.models import StageMapping

    workspace, _ = workspace_with_key
    _journeys(workspace)
    out = io.StringIO()
    call_command("suggest_stages", "--workspace", workspace.slug, "--json", stdout=out)
    payload = json.loads(out.getvalue())
    assert payload["workspace"] == workspace.slug and payload["stored"] == 1
    (item,) = payload["suggestions"]
    assert (item["event_name"], item["stage"], item["occurrences"]) == ("basket_add", "consideration", 60)
    assert 0.5 < item["confidence"] <= 1 and set(item["alternatives"]) <= {
        "awareness", "interest", "consideration", "purchase", "loyalty"}
    out = io.StringIO()
    call_command("suggest_stages", "--workspace", workspace.slug, stdout=out)
    assert "basket_add -> consideration" in out.getvalue()
    assert not StageMapping.objects.exists()  # nothing changes by itself


def test_suggest_stages_refuses_an_unknown_workspace(db):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="workspace 'nosuch' does not exist"):
        call_command("suggest_stages", "--workspace", "nosuch")
