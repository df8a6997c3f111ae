"""create_workspace and import_events as the public contract: JSON keys, exit codes, idempotency."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from funnel_site.events.models import Event, Workspace
from tests.conftest import DATASETS, ROOT, subprocess_env
from tests.stages import shown_stages

pytestmark = pytest.mark.django_db


def run_json(*args) -> dict:
    from io import StringIO

    out = StringIO()
    call_command(*args, "--json", stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_create_workspace_prints_slug_and_key_and_refuses_a_duplicate():
    data = run_json("create_workspace", "shop")
    assert data["slug"] == "shop" and data["api_key"].startswith("fk_")
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_workspace", "shop")
    with pytest.raises(CommandError, match="invalid"):
        call_command("create_workspace", "Bad Slug!")


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "events.csv"
    path.write_text(text)
    return path


def test_import_csv_reports_lines_and_reimport_imports_nothing(tmp_path):
    call_command("create_workspace", "shop")
    path = _csv(tmp_path, "contact_id,event,timestamp,campaign,channel,value,properties\n"
                          'a,pv,1511544070,,,,"{""item"": 1}"\n'
                          "a,cart,2017-11-25T10:00:00+08:00,summer,email,,\n"
                          "b,buy,nonsense,,,,\n"
                          'b,buy,1511544090,,,12.5,"{bad json"\n'
                          "b,buy,1511544099,,,12.5,\n")
    first = run_json("import_events", str(path), "--workspace", "shop")
    assert {k: first[k] for k in ("read", "imported", "duplicates", "rejected")} == {
        "read": 5, "imported": 3, "duplicates": 0, "rejected": 2}
    lines = {e["line"]: e["error"] for e in first["errors"]}
    assert set(lines) == {4, 5} and "timestamp" in lines[4] and "properties" in lines[5]
    again = run_json("import_events", str(path), "--workspace", "shop")
    assert (again["imported"], again["duplicates"], again["rejected"]) == (0, 3, 2)
    assert Event.objects.count() == 3


def test_missing_column_fails_before_importing_anything(tmp_path):
    call_command("create_workspace", "shop")
    path = _csv(tmp_path, "contact_id,timestamp\n1,1511544070\n")
    with pytest.raises(CommandError, match="missing required column 'event'"):
        call_command("import_events", str(path), "--workspace", "shop")
    assert Event.objects.count() == 0


def test_map_reads_fields_from_other_columns(tmp_path):
    call_command("create_workspace", "shop")
    path = _csv(tmp_path, "user,action,time\nu1,pv,1511544070\n")
    data = run_json("import_events", str(path), "--workspace", "shop", "--map", "contact_id=user",
                    "--map", "event=action", "--map", "timestamp=time")
    assert data["imported"] == 1


def test_unknown_workspace_and_format_are_errors(tmp_path):
    path = _csv(tmp_path, "contact_id,event,timestamp\n")
    with pytest.raises(CommandError, match="does not exist"):
        call_command("import_events", str(path), "--workspace", "nosuch")
    call_command("create_workspace", "shop")
    with pytest.raises(CommandError, match="--format"):
        call_command("import_events", str(path), "--workspace", "shop", "--format", "xml")


@pytest.mark.skipif(not (DATASETS / "taobao").exists(), reason="shared datasets absent")
def test_import_taobao_slice_then_again(tmp_path):
    call_command("create_workspace", "tb")
    src = DATASETS / "taobao" / "UserBehavior_first814users_clean.csv"
    head = tmp_path / "UserBehavior_head.csv"
    with open(src) as f, open(head, "w") as g:
        for i, line in enumerate(f):
            if i > 3000:
                break
            g.write(line)
    first = run_json("import_events", str(head), "--workspace", "tb", "--format", "taobao")
    assert first["imported"] + first["rejected"] + first["duplicates"] == first["read"] == 3000
    assert first["imported"] > 2900
    assert set(shown_stages(Event.objects.all())) <= {
        "interest", "consideration", "purchase", "loyalty"}
    again = run_json("import_events", str(head), "--workspace", "tb", "--format", "taobao")
    assert again["imported"] == 0


@pytest.mark.skipif(not (DATASETS / "cdnow").exists(), reason="shared datasets absent")
def test_import_cdnow_sample_marks_repeat_purchases_as_loyalty():
    call_command("create_workspace", "cd")
    data = run_json("import_events", str(DATASETS / "cdnow" / "CDNOW_sample.txt"), "--workspace", "cd",
                    "--format", "cdnow")
    assert data["imported"] > 6000 and data["rejected"] == 0
    stages = set(shown_stages(Event.objects.all()))
    assert "loyalty" in stages and "purchase" in stages


@pytest.mark.skipif(not (DATASETS / "olist_marketing_funnel").exists(), reason="shared datasets absent")
def test_import_olist_directory():
    call_command("create_workspace", "ol")
    data = run_json("import_events", str(DATASETS / "olist_marketing_funnel"), "--workspace", "ol")
    assert data["imported"] == 8000 + 842
    assert shown_stages(Event.objects.filter(name="Deal Won")).count("purchase") == 842


@pytest.mark.django_db(transaction=True)
def test_commands_exit_non_zero_with_one_sentence_on_stderr(tmp_path):
    env = subprocess_env()
    proc = subprocess.run([sys.executable, "manage.py", "import_events", str(tmp_path / "none.csv"),
                           "--workspace", "nosuch", "--json"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0 and proc.stdout == ""
    assert "does not exist" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = subprocess.run([sys.executable, "manage.py", "create_workspace", "cli", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and json.loads(proc.stdout)["slug"] == "cli"
    assert Workspace.objects.filter(slug="cli").exists()


def test_api_key_create_list_revoke_roundtrip():
    from rest_framework.test import APIClient

    call_command("create_workspace", "shop")
    created = run_json("api_key", "create", "--workspace", "shop", "--name", "crm")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {created['api_key']}")
    assert client.get("/api/v1/workspace").status_code == 200
    listed = run_json("api_key", "list", "--workspace", "shop")
    assert [k["name"] for k in listed["keys"]] == ["default", "crm"]
    assert all("api_key" not in k for k in listed["keys"])  # never shown again
    run_json("api_key", "revoke", "--workspace", "shop", "--prefix", created["prefix"])
    assert client.get("/api/v1/workspace").status_code == 401
    with pytest.raises(CommandError, match="no key with prefix"):
        call_command("api_key", "revoke", "--workspace", "shop", "--prefix", "nope")
