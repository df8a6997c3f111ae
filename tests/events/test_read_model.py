"""The read model sees exactly the committed events: out-of-order commits, new names, parallel import,
a corrupt snapshot, an unreachable database."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from django.db import connection

from funnel_site.events import ingestlog, snapshots
from funnel_site.events.columns import ReadModelUnavailable, column_cache, workspace_columns
from funnel_site.events.models import Event, IngestLogEntry, Workspace
from funnel_site.events.services import events_ingest, workspace_create

postgres_only = pytest.mark.skipif("connection.vendor != 'postgresql'",
                                   reason="concurrent write transactions need PostgreSQL")


@pytest.fixture(autouse=True)
def _fresh_cache(settings, tmp_path):
    settings.READ_MODEL_DIR = str(tmp_path / "readmodel")
    column_cache.clear()
    yield
    column_cache.clear()


def _items(contact: str, names: list[str], start: int, tag: str) -> list[tuple[int, dict]]:
    return [(i, {"contact_id": contact, "event": name, "timestamp": 1_767_225_600 + start + i,
                 "message_id": f"{tag}-{i}"}) for i, name in enumerate(names)]


def _stored(workspace: Workspace) -> list[int]:
    return sorted(Event.objects.filter(workspace=workspace).values_list("id", flat=True))


def _funnel(workspace: Workspace, steps: list[str]) -> list[int]:
    from funnel_site.funnels.selectors import funnel_query
    from funnel_site.funnels.spec import funnel_spec_parse

    run = funnel_query(workspace=workspace, spec=funnel_spec_parse({"steps": steps, "window": "30d"}))
    return [s["count"] for s in run.payload["steps"]]


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_batch_that_began_first_and_commits_last_is_read_once(monkeypatch):
    """Batch A takes its event ids first, batch B commits first: both reach the read model, once each.

    Batch A's thread is held after its events are inserted and before it logs them (its last
    statements), which is where a slow batch is when a faster one commits past it.
    """
    workspace, _ = workspace_create(slug="acme")
    events_ingest(workspace=workspace, items=_items("z", ["Page Viewed"], 0, "z"))  # an earlier batch
    reached, release = threading.Event(), threading.Event()
    real_append = ingestlog.ingest_log_append

    def held_append(**kwargs):
        if threading.current_thread().name == "batch-a":
            reached.set()
            assert release.wait(30)
        return real_append(**kwargs)

    monkeypatch.setattr(ingestlog, "ingest_log_append", held_append)
    failures: list[BaseException] = []

    def run(name: str, items) -> None:
        try:
            events_ingest(workspace=workspace, items=items)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)
        finally:
            connection.close()

    # A: a name no batch has used yet (it must be in the dictionary the moment A is read)
    a = threading.Thread(target=run, name="batch-a",
                         args=("batch-a", _items("a", ["Page Viewed", "Brand New Event"], 10, "a")))
    a.start()
    assert reached.wait(30)
    b = threading.Thread(target=run, name="batch-b", args=("batch-b", _items("b", ["Page Viewed"] * 3, 20, "b")))
    b.start()
    b.join(30)
    assert not b.is_alive() and not failures
    a_ids = Event.objects.filter(contact__external_id="a").count()
    assert a_ids == 0  # A is not committed yet
    first = workspace_columns(workspace.id)
    assert first.size == 4 and first.seq == 2 and "Brand New Event" not in first.names
    assert _funnel(workspace, ["Page Viewed", "Page Viewed"]) == [2, 1]  # cached under the log position read

    release.set()
    a.join(30)
    assert not a.is_alive() and not failures
    a_min = Event.objects.filter(contact__external_id="a").order_by("id").values_list("id", flat=True)[0]
    b_max = Event.objects.filter(contact__external_id="b").order_by("-id").values_list("id", flat=True)[0]
    assert a_min < b_max  # A's ids are below B's, yet A committed last: a high-water mark misses it
    second = workspace_columns(workspace.id)
    assert second.seq == 3
    assert sorted(second.event_id.tolist()) == _stored(workspace)  # every event, exactly once
    assert "Brand New Event" in second.names
    assert _funnel(workspace, ["Page Viewed", "Page Viewed"]) == [3, 1]  # not the cached result
    assert _funnel(workspace, ["Page Viewed", "Brand New Event"]) == [3, 1]


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_readers_racing_writers_with_new_names_see_whole_batches():
    """Writers commit batches, each with a name never seen before, while a reader refreshes: every
    read is a whole number of batches, every code has its name, and at the end every event once."""
    workspace, _ = workspace_create(slug="acme")
    stop = threading.Event()
    failures: list[BaseException] = []
    per_batch = 40

    def writer(k: int) -> None:
        try:
            for n in range(12):
                names = ["Page Viewed"] * (per_batch // 2) + [f"New Name {k}-{n}"] * (per_batch // 2)
                events_ingest(workspace=workspace, items=_items(f"w{k}-{n}", names, 1000 * n, f"w{k}-{n}"))
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)
        finally:
            connection.close()

    def reader() -> None:
        try:
            while not stop.is_set():
                cols = workspace_columns(workspace.id)
                assert cols.size % per_batch == 0, cols.size  # never part of a batch
                names = [cols.names[c] for c in np.unique(cols.name)]
                assert sum(n.startswith("New Name") for n in names) == cols.size // per_batch
                assert len(set(cols.event_id.tolist())) == cols.size
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)
        finally:
            connection.close()

    writers = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in writers:
        t.start()
    for t in writers:
        t.join(120)
    stop.set()
    watcher.join(60)
    assert not failures, failures
    cols = workspace_columns(workspace.id)
    assert sorted(cols.event_id.tolist()) == _stored(workspace) and cols.size == 3 * 12 * per_batch


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_parallel_import_reaches_the_read_model_exactly(tmp_path, settings):
    from funnel_site.events.imports import events_import_file

    settings.IMPORT_MIN_SHARD_BYTES = 1
    workspace, _ = workspace_create(slug="acme")
    lines = ["contact_id,event,timestamp,campaign,channel,value,message_id,properties"]
    for i in range(1200):
        lines.append(f"c{i % 97},{'Order Completed' if i % 5 == 0 else 'Page Viewed'},"
                     f"{1_767_225_600 + i * 60},,,,m{i},")
    path = tmp_path / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    assert workspace_columns(workspace.id).size == 0
    summary = events_import_file(workspace=workspace, path=path, fmt="csv", jobs=4, batch_size=50)
    assert summary.processes == 4 and summary.imported == 1200
    cols = workspace_columns(workspace.id)
    assert sorted(cols.event_id.tolist()) == _stored(workspace)
    assert IngestLogEntry.objects.filter(workspace=workspace).count() == cols.seq >= 24  # one row per batch


@pytest.mark.django_db(transaction=True)
def test_a_fresh_process_maps_the_snapshot_and_applies_only_the_tail():
    workspace, _ = workspace_create(slug="acme")
    events_ingest(workspace=workspace, items=_items("a", ["Page Viewed", "Order Completed"], 0, "a"))
    first = workspace_columns(workspace.id)
    assert first.on_disk and isinstance(first.contact, np.memmap)
    column_cache.clear()  # a new process: nothing in memory
    again = workspace_columns(workspace.id)
    assert again.on_disk and again.seq == first.seq and again.event_id.tolist() == first.event_id.tolist()
    events_ingest(workspace=workspace, items=_items("b", ["Page Viewed"], 5, "b"))
    column_cache.clear()
    tail = workspace_columns(workspace.id)
    assert tail.size == 3 and sorted(tail.event_id.tolist()) == _stored(workspace)
    versions = [p for p in snapshots.workspace_dir(workspace.id).iterdir() if p.is_dir()]
    assert len(versions) == 1 and versions[0].name.startswith(f"v{tail.seq}-")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_a_corrupt_snapshot_is_detected_and_rebuilt_from_the_database(damage):
    workspace, _ = workspace_create(slug="acme")
    events_ingest(workspace=workspace, items=_items("a", ["Page Viewed", "Order Completed", "buy"], 0, "a"))
    good = workspace_columns(workspace.id).ts.tolist()  # a copy: the test rewrites the mapped file in place
    version = snapshots.workspace_dir(workspace.id) / (snapshots.workspace_dir(workspace.id) / "CURRENT").read_text()
    target = version / "ts.npy"
    data = bytearray(target.read_bytes())
    if damage == "flip":
        data[-3] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(bytes(data[:-8]))
    else:
        target.unlink()
    with pytest.raises(snapshots.SnapshotCorrupt):
        snapshots.snapshot_open(workspace.id)
    assert not version.exists()  # discarded, so nobody maps it again
    column_cache.clear()
    rebuilt = workspace_columns(workspace.id)
    assert rebuilt.on_disk and rebuilt.ts.tolist() == good
    assert sorted(rebuilt.event_id.tolist()) == _stored(workspace)


@pytest.mark.django_db(transaction=True)
def test_a_corrupt_snapshot_found_by_a_reader_is_rebuilt_in_the_same_call():
    workspace, _ = workspace_create(slug="acme")
    events_ingest(workspace=workspace, items=_items("a", ["Page Viewed"] * 5, 0, "a"))
    good = workspace_columns(workspace.id).contact.tolist()
    folder = snapshots.workspace_dir(workspace.id)
    target = folder / (folder / "CURRENT").read_text() / "contact.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x01
    target.write_bytes(bytes(data))
    column_cache.clear()
    rebuilt = workspace_columns(workspace.id)
    assert rebuilt.contact.tolist() == good
    assert snapshots.snapshot_open(workspace.id) is not None  # a sound version is on disk again


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_database_is_an_error_never_old_counts():
    workspace, _ = workspace_create(slug="acme")
    events_ingest(workspace=workspace, items=_items("a", ["Page Viewed"], 0, "a"))
    assert workspace_columns(workspace.id).size == 1
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "postgresql":
        connection.settings_dict["PORT"] = "9"  # nothing listens there
    else:
        connection.settings_dict["NAME"] = "/nonexistent-dir/db.sqlite3"
    try:
        with pytest.raises(ReadModelUnavailable, match="cannot be read from the database.*up to ingest-log row 1"):
            workspace_columns(workspace.id)
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    assert workspace_columns(workspace.id).size == 1  # back as soon as the database is


@pytest.mark.django_db
def test_inside_a_transaction_nothing_uncommitted_is_written_to_disk():
    workspace, _ = workspace_create(slug="acme")
    events_ingest(workspace=workspace, items=_items("a", ["Page Viewed"], 0, "a"))
    cols = workspace_columns(workspace.id)  # the test's transaction is open: memory only
    assert cols.size == 1 and not cols.on_disk
    assert not snapshots.workspace_dir(workspace.id).exists()


@pytest.mark.django_db
def test_funnel_api_answers_503_when_the_read_model_cannot_catch_up(api, monkeypatch):
    from funnel_site.events import columns_read

    def unreachable(**kwargs):
        from django.db import OperationalError

        raise OperationalError("connection refused")

    monkeypatch.setattr(columns_read, "log_state", unreachable)  # the database fails after authentication
    resp = api.post("/api/v1/funnels/query", json.dumps({"steps": ["Page Viewed", "buy"]}), content_type="application/json")
    assert resp.status_code == 503 and "cannot be read from the database" in resp.json()["error"]



@pytest.mark.django_db(transaction=True)
def test_rows_read_inside_a_rolled_back_transaction_are_forgotten():
    from django.db import transaction

    workspace, _ = workspace_create(slug="acme")
    events_ingest(workspace=workspace, items=_items("a", ["Page Viewed"], 0, "a"))
    with transaction.atomic():
        events_ingest(workspace=workspace, items=_items("x", ["Order Completed"] * 2, 5, "x"))
        inside = workspace_columns(workspace.id)
        assert inside.size == 3 and inside.seq == 2 and inside.provisional
        transaction.set_rollback(True)
    events_ingest(workspace=workspace, items=_items("b", ["Product Viewed"], 9, "b"))  # log row 2 again
    after = workspace_columns(workspace.id)
    assert after.seq == 2 and not after.provisional
    assert sorted(after.event_id.tolist()) == _stored(workspace) and after.size == 2


@pytest.mark.django_db(transaction=True)
def test_another_process_maps_the_version_this_one_wrote(settings):
    """A second process finds the workspace's version on disk and maps it: it neither reads every
    event from the database nor writes a version of its own."""
    import subprocess
    import sys

    from tests.conftest import ROOT, subprocess_env

    workspace, _ = workspace_create(slug="acme")
    events_ingest(workspace=workspace, items=_items("a", ["Page Viewed", "Order Completed", "buy"], 0, "a"))
    here = workspace_columns(workspace.id)
    pointer = snapshots.workspace_dir(workspace.id) / "CURRENT"
    written = pointer.stat().st_mtime_ns
    env = {**subprocess_env(), "READ_MODEL_DIR": settings.READ_MODEL_DIR}
    script = (
        "import django, json; django.setup()\n"
        "from funnel_site.events.columns import workspace_columns\n"
        f"c = workspace_columns({workspace.id})\n"
        "print(json.dumps({'on_disk': c.on_disk, 'name': c.snapshot_name, 'ids': sorted(c.event_id.tolist())}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    there = json.loads(out.stdout.strip().splitlines()[-1])
    assert there == {"on_disk": True, "name": here.snapshot_name, "ids": _stored(workspace)}
    assert pointer.stat().st_mtime_ns == written  # mapped, not rewritten


@pytest.mark.django_db
def test_the_sqlite_read_gives_what_the_orm_gives():
    """The raw SQLite read (timestamps parsed by numpy) equals the ORM's: microseconds, whole seconds,
    campaigns, channels, missing values, and an id range."""
    from funnel_site.events import columns_read

    if connection.vendor != "sqlite":
        pytest.skip("the raw read is SQLite's")
    workspace, _ = workspace_create(slug="acme")
    items = [(0, {"contact_id": "a", "event": "Page Viewed", "timestamp": "2026-01-01T00:00:00.123456Z",
                  "message_id": "m0"}),
             (1, {"contact_id": "a", "event": "Order Completed", "timestamp": "2026-01-01T00:00:05Z",
                  "value": 12.5, "campaign": "spring", "channel": "email", "message_id": "m1"}),
             (2, {"contact_id": "b", "event": "Page Viewed", "timestamp": "1999-12-31T23:59:59.000001+02:00",
                  "channel": "email", "message_id": "m2"})]
    events_ingest(workspace=workspace, items=items)
    ids = _stored(workspace)
    for ranges in (None, [(ids[1], ids[2])]):
        fast = columns_read._fetch_sqlite(workspace.id, ranges)
        slow = columns_read._fetch_orm(workspace.id, ranges)
        order_fast, order_slow = np.argsort(fast[0]["event_id"]), np.argsort(slow[0]["event_id"])
        for column in ("event_id", "contact", "ts", "campaign"):
            assert fast[0][column][order_fast].tolist() == slow[0][column][order_slow].tolist(), column
        assert np.array_equal(fast[0]["value"][order_fast], slow[0]["value"][order_slow], equal_nan=True)
        for hashes, pairs, slow_hashes, slow_pairs in ((fast[0]["name_hash"], fast[1], slow[0]["name_hash"], slow[1]),
                                                       (fast[0]["channel_hash"], fast[2], slow[0]["channel_hash"],
                                                        slow[2])):
            text, slow_text = dict(pairs), dict(slow_pairs)
            assert [text[h] for h in hashes[order_fast].tolist()] == [slow_text[h] for h in
                                                                     slow_hashes[order_slow].tolist()]
    assert fast[0]["event_id"].shape[0] == 2
