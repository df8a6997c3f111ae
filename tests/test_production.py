"""Production defaults: the server refuses development settings with DEBUG off, `check --deploy` is
clean for the documented settings, gunicorn instances do not collide, API keys are throttled, JSON
logs carry tracebacks."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import secrets
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
from django.test import Client

from tests.conftest import ROOT

GOOD_KEY = "k" * 20 + secrets.token_urlsafe(40)
# README "Production": the settings a deployment behind a TLS-terminating proxy sets
PRODUCTION_ENV = {"DEBUG": "0", "SECRET_KEY": GOOD_KEY, "ALLOWED_HOSTS": "funnel.example.com",
                  "FUNNEL_TLS": "1", "FUNNEL_PROXY_SSL_HEADER": "1"}


def _env(**values: str) -> dict[str, str]:
    # a clean deployment's environment: none of the test session's settings (the browser fixtures
    # set DJANGO_ALLOW_ASYNC_UNSAFE, which check --deploy rightly refuses)
    dropped = ("SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "FUNNEL_TLS", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(DJANGO_SETTINGS_MODULE="funnel_site.settings", PYTHONPATH=str(ROOT), **values)
    return env


def _import_wsgi(**values: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import funnel_site.wsgi"], cwd=ROOT, env=_env(**values),
                          capture_output=True, text=True, timeout=120)


def test_server_refuses_the_fallback_secret_key_and_a_wildcard_host():
    no_key = _import_wsgi(DEBUG="0", ALLOWED_HOSTS="funnel.example.com")
    assert no_key.returncode != 0 and "SECRET_KEY is the development fallback" in no_key.stderr
    wildcard = _import_wsgi(DEBUG="0", SECRET_KEY=GOOD_KEY, ALLOWED_HOSTS="*")
    assert wildcard.returncode != 0 and "ALLOWED_HOSTS is a wildcard" in wildcard.stderr
    default_hosts = _import_wsgi(DEBUG="0", SECRET_KEY=GOOD_KEY)  # the default is the wildcard
    assert default_hosts.returncode != 0 and "ALLOWED_HOSTS" in default_hosts.stderr
    assert _import_wsgi(**PRODUCTION_ENV).returncode == 0
    assert _import_wsgi(DEBUG="1").returncode == 0, "development (DEBUG on) runs on the fallbacks"


def test_check_deploy_is_clean_for_the_documented_production_settings():
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=_env(**PRODUCTION_ENV), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout, done.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_gunicorn_instances_on_one_host_both_serve(tmp_path):
    """gunicorn.conf.py: no shared control socket, so a second instance starts beside the first."""
    procs, ports = [], []
    env = _env(SECRET_KEY=GOOD_KEY, ALLOWED_HOSTS="127.0.0.1", DEBUG="0", HOME=str(tmp_path),
               WEB_CONCURRENCY="1")
    try:
        for i in range(2):
            ports.append(_free_port())
            log = open(tmp_path / f"g{i}.log", "w")  # noqa: SIM115 - closed with the process
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "funnel_site.wsgi",
                 "--bind", f"127.0.0.1:{ports[-1]}"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        for i, port in enumerate(ports):
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                        assert json.load(resp) == {"status": "ok"}
                    break
                except OSError:
                    assert procs[i].poll() is None, (tmp_path / f"g{i}.log").read_text()
                    assert time.monotonic() < deadline, (tmp_path / f"g{i}.log").read_text()
                    time.sleep(0.3)
        assert all(p.poll() is None for p in procs)
        assert not (tmp_path / ".gunicorn").exists(), "no control socket under HOME"
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)


@pytest.fixture
def address() -> str:
    """A client address no other test used (the shared cache outlives a test)."""
    n = uuid.uuid4().int
    return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250 + 1}"


@pytest.mark.django_db
def test_failed_key_attempts_are_throttled_per_address(settings, workspace_with_key, address):
    settings.FUNNEL_THROTTLE_RATES = {**settings.FUNNEL_THROTTLE_RATES, "failed_key": "5/min"}
    client = Client(REMOTE_ADDR=address)
    for i in range(5):
        resp = client.get("/api/v1/workspace", HTTP_AUTHORIZATION=f"Bearer fk_{i:08x}_wrong")
        assert resp.status_code == 401, resp.content
    blocked = client.get("/api/v1/workspace", HTTP_AUTHORIZATION="Bearer fk_00000000_wrong")
    assert blocked.status_code == 429 and 1 <= int(blocked["Retry-After"]) <= 60
    assert "failed API key attempts" in blocked.json()["error"]
    # a right key from that address waits too (else guessing would go on at full speed) ...
    good = f"Bearer {workspace_with_key[1]}"
    assert client.get("/api/v1/workspace", HTTP_AUTHORIZATION=good).status_code == 429
    # ... and the Segment API's Basic auth is the same gate
    assert client.post("/v1/track", "{}", content_type="application/json",
                       HTTP_AUTHORIZATION="Basic Zmtfd3Jvbmc6").status_code == 429
    # another address is not affected
    assert Client(REMOTE_ADDR="192.0.2.77").get("/api/v1/workspace", HTTP_AUTHORIZATION=good).status_code == 200


@pytest.mark.django_db
def test_each_key_has_a_configurable_rate_limit(settings, workspace_with_key, address):
    from funnel_site.events.services import api_key_create

    api_key, key = api_key_create(workspace=workspace_with_key[0], name="slow")
    api_key.rate_limit = "3/min"
    api_key.full_clean()
    api_key.save()
    client = Client(REMOTE_ADDR=address, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert [client.get("/api/v1/workspace").status_code for _ in range(3)] == [200, 200, 200]
    limited = client.get("/api/v1/workspace")
    assert limited.status_code == 429 and 1 <= int(limited["Retry-After"]) <= 60
    # the default rate applies to the other keys
    other = Client(REMOTE_ADDR=address, HTTP_AUTHORIZATION=f"Bearer {workspace_with_key[1]}")
    assert other.get("/api/v1/workspace").status_code == 200
    settings.FUNNEL_THROTTLE_RATES = {**settings.FUNNEL_THROTTLE_RATES, "api_key": "2/min"}
    assert [other.get("/api/v1/workspace").status_code for _ in range(3)][-1] == 429


def test_a_rate_limit_that_is_not_a_rate_is_refused():
    from django.core.exceptions import ValidationError

    from funnel_site.events.models import ApiKey

    with pytest.raises(ValidationError, match="600/min"):
        ApiKey._meta.get_field("rate_limit").run_validators("lots")


def test_json_logs_carry_the_full_traceback():
    from funnel_site.logging_config import build_logging

    config = build_logging(fmt="json", level="INFO")
    config["handlers"]["stderr"]["stream"] = stream = io.StringIO()
    config["handlers"]["stderr"]["class"] = "logging.StreamHandler"
    previous = logging.root.handlers[:]
    try:
        logging.config.dictConfig(config)
        try:
            {}["missing"]
        except KeyError:
            logging.getLogger("django.request").exception("Internal Server Error: /api/v1/x")
        line = json.loads(stream.getvalue().strip().splitlines()[-1])
    finally:
        logging.root.handlers[:] = previous
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert "KeyError: 'missing'" in line["exception"] and "test_production.py" in line["exception"]
