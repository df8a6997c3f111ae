"""Shared fixtures: workspaces with keys, API clients, and a real Celery worker process."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.browser import admin_login, browser, page  # noqa: E402,F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"


@pytest.fixture
def workspace_with_key(db):
    """A workspace and its clear API key."""
    from funnel_site.events.services import workspace_create

    return workspace_create(slug="acme")


@pytest.fixture
def other_workspace_with_key(db):
    """A second tenant, to prove no request crosses workspaces."""
    from funnel_site.events.services import workspace_create

    return workspace_create(slug="globex")


@pytest.fixture
def api(workspace_with_key):
    """A DRF test client authenticated as the `acme` workspace."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {workspace_with_key[1]}")
    client.workspace = workspace_with_key[0]
    return client


@pytest.fixture
def other_api(other_workspace_with_key):
    """A DRF test client authenticated as the `globex` workspace."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {other_workspace_with_key[1]}")
    client.workspace = other_workspace_with_key[0]
    return client


def database_url_for_subprocess() -> str:
    """A DATABASE_URL pointing a child process at the database the tests use (the test database)."""
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or ""
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


def subprocess_env() -> dict[str, str]:
    """The environment for a child process (worker, server) sharing the tests' database and broker."""
    from django.conf import settings

    env = dict(os.environ)
    env["DATABASE_URL"] = database_url_for_subprocess()
    env["DJANGO_SETTINGS_MODULE"] = "funnel_site.settings.test"
    env["FUNNEL_VAR_DIR"] = str(settings.VAR_DIR)
    env["CELERY_BROKER_URL"] = settings.CELERY_BROKER_URL
    env["CELERY_RESULT_BACKEND"] = settings.CELERY_RESULT_BACKEND
    env["PYTHONPATH"] = str(ROOT)
    # a server started by a test is a production server (DEBUG off): it refuses the development
    # fallback key and a wildcard host (funnel_site/security.py), so it gets its own of both; the
    # credentials key stays the tests' own, so children decrypt what the tests stored
    if settings.SECRET_KEY == settings.INSECURE_SECRET_KEY:
        from integrations.crypto import fernet_keys

        env["INTEGRATIONS_FERNET_KEY"] = ",".join(k.decode() for k in fernet_keys())
        env["SECRET_KEY"] = "tests-only-" + "k" * 50
    env.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
    return env


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real `celery worker` process consuming every queue, on the tests' database and broker."""
    from funnel_site.celery import app

    with django_db_blocker.unblock():
        env = subprocess_env()
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    # Drop tasks left in the broker by an earlier, interrupted run.
    with contextlib.suppress(Exception):  # an empty or fresh broker is fine
        app.control.purge()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "funnel_site", "worker", "-Q",
             "ingest,training,scoring,sync", "--pool", "prefork", "--concurrency", "2",
             "--loglevel", "INFO", "--without-gossip", "--without-mingle", "-n", f"test-{os.getpid()}@%h"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if app.send_task("funnel_site.ping").get(timeout=5) == "pong":
                    break
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not start:\n{log.read_text()[-4000:]}")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
