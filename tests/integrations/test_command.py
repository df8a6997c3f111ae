"""`manage.py sync`: runs one sync in the process and prints its counts; errors name the flag."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from integrations.services import destination_create, sync_create
from tests.integrations.helpers import members, segment

pytestmark = pytest.mark.django_db(transaction=True)


def test_sync_command_dry_run_then_run_json(workspace_with_key, tmp_path):
    ws = workspace_with_key[0]
    seg = segment(ws)
    members(ws, seg, ["a", "b"])
    with override_settings(INTEGRATIONS_FILE_ROOT=tmp_path):
        dest = destination_create(workspace=ws, kind="file", name="f", settings={"path": "out.csv"}, credentials={})
        sync = sync_create(workspace=ws, segment=seg.pk, destination=dest.pk)
        out = io.StringIO()
        call_command("sync", "--workspace", ws.slug, "--sync", str(sync.pk), "--dry-run", "--json", stdout=out)
        dry = json.loads(out.getvalue())
        assert (dry["status"], dry["dry_run"], dry["added"]) == ("succeeded", True, 2)
        assert not (tmp_path / "out.csv").exists()
        out = io.StringIO()
        call_command("sync", "--workspace", ws.slug, "--sync", str(sync.pk), "--json", stdout=out)
        done = json.loads(out.getvalue())
        assert {"run_id", "status", "added", "updated", "removed", "failed", "skipped"} <= set(done)
        assert (done["status"], done["added"]) == ("succeeded", 2) and (tmp_path / "out.csv").exists()


def test_sync_command_errors(workspace_with_key):
    with pytest.raises(CommandError, match="--sync 999"):
        call_command("sync", "--workspace", workspace_with_key[0].slug, "--sync", "999")
    with pytest.raises(CommandError):
        call_command("sync", "--workspace", "no-such-ws", "--sync", "1")
