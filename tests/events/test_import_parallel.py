"""The parallel file import (PostgreSQL): several processes, one summary, the same stored events.

Also the guarantee that makes it safe: concurrent batches for the same contacts stage repeat
purchases exactly as one batch after another would.
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from funnel_site.events import store
from funnel_site.events.imports import events_import_file
from funnel_site.events.loaders import shards
from funnel_site.events.models import Event, Workspace
from funnel_site.events.services import events_ingest
from tests.stages import shown_stages

pytestmark = pytest.mark.django_db(transaction=True)

START = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _postgres_only():
    if not store.is_postgres():
        pytest.skip("the parallel import runs on PostgreSQL (SQLite takes one writer)")


def _stamp(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tricky_csv(path, contacts: int = 60, per_contact: int = 30) -> None:
    """Rows interleaved across contacts (so every part touches every contact), purchases late in
    the file that are earlier in time than purchases near its start, quoted properties spanning
    lines, rejected rows of several kinds, and repeated message ids far apart.

    A repeated message id repeats its row: were the contents to differ, the version kept is the one
    stored first, which in a parallel import need not be the one first in the file."""
    lines = ["contact_id,event,timestamp,campaign,channel,value,message_id,properties"]
    for round_ in range(per_contact):
        for c in range(contacts):
            minutes = (per_contact - round_) * 60 + c  # later rounds are EARLIER in time
            event = "Order Completed" if round_ % 7 == 3 else ("Product Viewed" if round_ % 2 else "Email Opened")
            props = '"{""note"":\n""two lines""}"' if (round_ + c) % 11 == 0 else ""  # a quoted newline
            value = "19.5" if event == "Order Completed" else ""
            campaign = f"spring-{c % 3}" if event == "Email Opened" else ""
            lines.append(f"c{c},{event},{_stamp(minutes)},{campaign},email,{value},m-{round_}-{c},{props}")
        if round_ % 5 == 2:
            lines.append(f"c1,Product Viewed,not-a-time,,,,bad-ts-{round_},")  # validation error
            lines.append(f"c2,Product Viewed,{_stamp(5)},,,,bad-json-{round_},\"{{broken\"")  # loader error
            lines.append("c3,too,few")  # wrong width
        if round_ % 9 == 4:  # a row of the first round again, far down the file (a retried send)
            lines.append(f"c4,Email Opened,{_stamp(per_contact * 60 + 4)},spring-1,email,,m-0-4,")
    path.write_text("\n".join(lines) + "\n")


def _events(workspace: Workspace) -> list[tuple]:
    events = list(Event.objects.filter(workspace=workspace).select_related("contact", "campaign"))
    return sorted(
        (e.contact.external_id, e.name, stage, e.timestamp, e.message_id, e.value, e.properties,
         e.campaign.key if e.campaign else None)
        for e, stage in zip(events, shown_stages(events), strict=True)
    )


def test_parallel_import_stores_and_reports_exactly_as_one_process(tmp_path, settings):
    settings.IMPORT_MIN_SHARD_BYTES = 1
    path = tmp_path / "events.csv"
    _tricky_csv(path)
    one = Workspace.objects.create(slug="one", name="one")
    many = Workspace.objects.create(slug="many", name="many")

    sequential = events_import_file(workspace=one, path=path, fmt="csv", jobs=1, batch_size=97)
    parallel = events_import_file(workspace=many, path=path, fmt="csv", jobs=4, batch_size=97)

    assert (sequential.processes, parallel.processes) == (1, 4)
    assert {**parallel.as_dict(), "processes": 1} == sequential.as_dict()
    assert (sequential.imported, sequential.duplicates, sequential.rejected) == (1800, 3, 18)
    assert [e["line"] for e in parallel.errors] == sorted(e["line"] for e in parallel.errors)
    assert _events(many) == _events(one)
    # staging across parts: each contact's earliest purchase is its purchase, later ones loyalty
    for contact in ("c0", "c17", "c59"):
        stages = shown_stages(Event.objects.filter(workspace=many, contact__external_id=contact,
                                                   name="Order Completed").order_by("timestamp", "id"))
        assert stages[0] == "purchase" and set(stages[1:]) == {"loyalty"}

    again = events_import_file(workspace=many, path=path, fmt="csv", jobs=4, batch_size=97)
    assert (again.imported, again.duplicates, again.rejected) == (0, 1803, 18)


def test_import_events_command_takes_jobs_and_splits_jsonl(tmp_path, settings):
    settings.IMPORT_MIN_SHARD_BYTES = 1
    call_command("create_workspace", "shop")
    path = tmp_path / "events.jsonl"
    path.write_text("".join(
        json.dumps({"contact_id": f"u{i % 9}", "event": "Product Viewed", "timestamp": 1700000000 + i}) + "\n"
        for i in range(500)
    ) + "{not json\n")
    out = StringIO()
    call_command("import_events", str(path), "--workspace", "shop", "--jobs", "3", "--json", stdout=out)
    summary = json.loads(out.getvalue())
    assert (summary["read"], summary["imported"], summary["rejected"]) == (501, 500, 1)
    assert summary["errors"][0]["line"] == 501
    assert Event.objects.filter(workspace__slug="shop").count() == 500


def test_concurrent_batches_stage_repeat_purchases_as_one_after_another():
    """Two writers store purchases of the same contacts at once, the later writer holding the
    EARLIER purchases: without the contact lock both would be staged 'purchase'."""
    workspace = Workspace.objects.create(slug="race", name="race")
    contacts = [f"r{i}" for i in range(150)]
    # Known contacts without a purchase: nothing (no insert of a new contact) orders the writers.
    events_ingest(workspace=workspace, items=[
        (i, {"contact_id": c, "event": "Product Viewed", "timestamp": START.isoformat()}) for i, c in enumerate(contacts)
    ])
    rounds = 6
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def writer(offset_hours: int) -> None:
        try:
            for round_ in range(rounds):
                items = [
                    (i, {"contact_id": c, "event": "Order Completed",
                         "timestamp": (START + timedelta(hours=offset_hours + round_ * 10)).isoformat()})
                    for i, c in enumerate(reversed(contacts) if offset_hours % 2 else contacts)
                ]
                barrier.wait(timeout=30)
                events_ingest(workspace=workspace, items=items)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(hours,)) for hours in (101, 100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    for contact in contacts[:: 25]:
        stages = shown_stages(Event.objects.filter(workspace=workspace, contact__external_id=contact,
                                                   name="Order Completed").order_by("timestamp", "id"))
        assert len(stages) == 2 * rounds
        assert stages[0] == "purchase" and stages[1:] == ["loyalty"] * (2 * rounds - 1)
    assert shown_stages(Event.objects.filter(workspace=workspace)).count("purchase") == len(contacts)



def test_parts_never_use_a_connection_the_parent_could_not_close(tmp_path, settings, monkeypatch):
    """After an event loop ran in this thread (a browser test, say), Django keeps this thread's
    connections in two places and the parent closes only the one its context sees before forking;
    the parts must open their own connections rather than share the other one's socket."""
    settings.IMPORT_MIN_SHARD_BYTES = 1
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    workspace = Workspace.objects.create(slug="loop", name="loop")
    connection.ensure_connection()  # the plain thread-local connection, open
    path = tmp_path / "events.csv"
    _tricky_csv(path, contacts=20, per_contact=10)
    previous = asyncio._get_running_loop()  # a sync Playwright session's, when browser tests ran before
    loop = asyncio.new_event_loop()
    asyncio._set_running_loop(loop)  # what a sync Playwright session leaves behind in this thread
    try:
        summary = events_import_file(workspace=workspace, path=path, fmt="csv", jobs=4, batch_size=13)
    finally:
        connection.close()
        asyncio._set_running_loop(previous)
        loop.close()
    assert summary.processes == 4
    assert (summary.imported, summary.rejected) == (200, 6)
    assert Event.objects.filter(workspace=workspace).count() == 200


def test_a_daemonic_process_imports_alone(tmp_path, settings, monkeypatch):
    """A Celery prefork child is daemonic and may not fork children: the import runs in it, alone."""
    import multiprocessing
    from types import SimpleNamespace

    settings.IMPORT_MIN_SHARD_BYTES = 1
    workspace = Workspace.objects.create(slug="daemon", name="daemon")
    path = tmp_path / "events.csv"
    _tricky_csv(path, contacts=10, per_contact=10)
    monkeypatch.setattr(multiprocessing, "current_process", lambda: SimpleNamespace(daemon=True))
    summary = events_import_file(workspace=workspace, path=path, fmt="csv", jobs=4)
    assert (summary.processes, summary.imported, summary.rejected) == (1, 100, 6)


@pytest.mark.parametrize("how", ["raises", "dies"])
def test_a_failing_part_fails_the_import_naming_it(tmp_path, settings, monkeypatch, how):
    """A part that raises, or whose process dies, stops the import with an error naming the part and
    the line it started at; re-running imports what is missing (idempotent)."""
    import os

    from funnel_site.events import imports

    settings.IMPORT_MIN_SHARD_BYTES = 1
    workspace = Workspace.objects.create(slug="parts", name="parts")
    path = tmp_path / "events.csv"
    _tricky_csv(path, contacts=20, per_contact=10)
    real = imports._import_rows
    second = shards.split(path, 4, min_bytes=1)[1]

    def second_part_fails(*, rows, **kwargs):
        rows = iter(rows)
        first = next(rows)
        if first[0] == second.first_line:
            if how == "dies":
                os._exit(3)
            raise RuntimeError("disk on fire")
        return real(rows=[first, *rows], **kwargs)

    monkeypatch.setattr(imports, "_import_rows", second_part_fails)
    with pytest.raises(imports.ImportFailed) as caught:
        events_import_file(workspace=workspace, path=path, fmt="csv", jobs=4)
    message = str(caught.value)
    assert message.startswith(f"part 2 of 4 (from line {second.first_line}) ")
    assert ("RuntimeError: disk on fire" in message) if how == "raises" else ("exit code 3" in message)
    monkeypatch.setattr(imports, "_import_rows", real)
    again = events_import_file(workspace=workspace, path=path, fmt="csv", jobs=4)
    assert again.imported + again.duplicates == 200 + 1
    assert Event.objects.filter(workspace=workspace).count() == 200
