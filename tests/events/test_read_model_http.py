"""Concurrent HTTP batches into a real gunicorn with several workers while funnels are queried: every
answer counts whole batches, and once the writers stop every worker counts every event."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
from django.db import connection  # noqa: F401  (the skipif condition reads it)

from tests.conftest import ROOT, subprocess_env

BATCH_CONTACTS = 20
WRITERS, BATCHES = 4, 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gunicorn_server(transactional_db, tmp_path):
    """A gunicorn with 3 sync workers on the tests' database, sharing one read-model directory."""
    env = subprocess_env()
    env["READ_MODEL_DIR"] = str(tmp_path / "readmodel")
    port = _free_port()
    log = open(tmp_path / "gunicorn.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "funnel_site.wsgi:application", "--workers", "3",
         "--bind", f"127.0.0.1:{port}", "--timeout", "120"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not listening, or a worker still booting
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{(tmp_path / 'gunicorn.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="several writing workers need PostgreSQL")
def test_concurrent_batches_into_gunicorn_workers_while_funnels_are_queried(gunicorn_server):
    from funnel_site.events.services import workspace_create

    _, key = workspace_create(slug="acme")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    query = json.dumps({"steps": ["Page Viewed", "Order Completed"], "window": "1d"})
    failures: list[str] = []
    seen: list[list[int]] = []
    done = threading.Event()

    def writer(k: int) -> None:
        session = requests.Session()
        for n in range(BATCHES):
            # every contact of a batch views, then buys: a half-read batch would count more views than buys
            views = [{"contact_id": f"w{k}-{n}-{c}", "event": "Page Viewed", "timestamp": 1_767_225_600 + c}
                     for c in range(BATCH_CONTACTS)]
            buys = [{"contact_id": f"w{k}-{n}-{c}", "event": "Order Completed", "timestamp": 1_767_225_660 + c}
                    for c in range(BATCH_CONTACTS)]
            resp = session.post(f"{gunicorn_server}/api/v1/events", data=json.dumps(views + buys), headers=headers,
                                timeout=60)
            if resp.status_code != 200 or resp.json()["imported"] != 2 * BATCH_CONTACTS:
                failures.append(f"batch {k}-{n}: {resp.status_code} {resp.text[:200]}")

    def querier() -> None:
        session = requests.Session()
        while not done.is_set():
            resp = session.post(f"{gunicorn_server}/api/v1/funnels/query", data=query, headers=headers, timeout=60)
            if resp.status_code != 200:
                failures.append(f"query: {resp.status_code} {resp.text[:200]}")
                return
            counts = [s["count"] for s in resp.json()["steps"]]
            seen.append(counts)
            if counts[0] != counts[1] or counts[0] % BATCH_CONTACTS:
                failures.append(f"part of a batch counted: {counts}")

    queriers = [threading.Thread(target=querier) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(k,)) for k in range(WRITERS)]
    for t in queriers + writers:
        t.start()
    for t in writers:
        t.join(180)
    done.set()
    for t in queriers:
        t.join(60)
    assert not failures, failures[:5]
    assert len(seen) >= 3  # queries really ran while batches arrived
    total = WRITERS * BATCHES * BATCH_CONTACTS
    session = requests.Session()
    finals = [session.post(f"{gunicorn_server}/api/v1/funnels/query", data=query, headers=headers, timeout=60)
              for _ in range(9)]  # spread over the workers
    assert {tuple(s["count"] for s in r.json()["steps"]) for r in finals} == {(total, total)}
