"""run_demo keeps the admin password and API key it made, and honours DEMO_ADMIN_PASSWORD."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from funnel_site.dashboard.management.commands.run_demo import quiet_env
from funnel_site.events.services import api_key_verify

pytestmark = pytest.mark.django_db


def _run() -> str:
    out = io.StringIO()
    call_command("run_demo", contacts=20, no_serve=True, stdout=out)
    return out.getvalue()


def test_second_run_prints_the_same_login_and_key(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    first, second = _run(), _run()
    login = re.compile(r"login:\s+admin / (\S+)\n\s+API key:\s+(\S+)")
    assert login.search(first).groups() == login.search(second).groups()
    password, key = login.search(second).groups()
    assert authenticate(username="admin", password=password) is not None
    assert api_key_verify(key=key).workspace.slug == "demo"
    stored = json.loads((tmp_path / "demo-credentials.json").read_text())
    assert stored == {"admin_password": password, "api_key": key}
    assert (tmp_path / "demo-credentials.json").stat().st_mode & 0o077 == 0
    assert second.rstrip().endswith("=" * 64)  # the banner is the last thing printed

    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "chosen-pass-1")
    assert "admin / chosen-pass-1" in _run() and authenticate(username="admin", password="chosen-pass-1")


def test_children_run_quiet_but_keep_what_the_user_set():
    env = quiet_env({"LOG_LEVEL": "DEBUG"})
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "2" and env["LOG_LEVEL"] == "DEBUG"
    assert env["CELERY_BROKER_URL"] == "filesystem://localhost/"
    assert quiet_env({"CELERY_BROKER_URL": "redis://x:6379/1"})["CELERY_BROKER_URL"] == "redis://x:6379/1"
