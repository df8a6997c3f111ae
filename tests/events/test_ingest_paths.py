"""The fast paths of ingestion: the file import in batches and the PostgreSQL COPY fallbacks."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from funnel_site.events import store
from funnel_site.events.models import Event
from tests.stages import shown_stages

CSV = (
    "contact_id,event,timestamp,campaign,channel,value,properties\n"
    "a,pv,1511544070,,,,\n"
    "a,cart,nonsense,,,,\n"  # line 3: rejected by validation
    'a,buy,1511544090,,,12.5,"{bad json"\n'  # line 4: rejected by the loader
    "b,Order Completed,1511544099,spring,email,12.5,\n"
    "b,Order Completed,1511544199,,,,\n"
    "c,pv,1511544070,,,,\n"
    "c,pv,1511544070,,,,\n"  # same content as line 7: a duplicate
    'c,buy,1511544300,,,,"[1]"\n'  # line 9: rejected by the loader, after the last batch
)


def _import(path, *extra) -> dict:
    out = StringIO()
    call_command("import_events", str(path), "--workspace", "shop", "--json", *extra, stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.mark.django_db(transaction=True)
def test_import_in_tiny_batches_reports_like_reading_line_by_line(tmp_path):
    """Outside a transaction, with tiny batches, the summary and the order of the listed errors are
    those of reading the file line by line (loader and validation errors interleaved by line)."""
    call_command("create_workspace", "shop")
    path = tmp_path / "events.csv"
    path.write_text(CSV)
    first = _import(path, "--batch-size", "2")
    assert {k: first[k] for k in ("read", "imported", "duplicates", "rejected")} == {
        "read": 8, "imported": 4, "duplicates": 1, "rejected": 3}
    assert [e["line"] for e in first["errors"]] == [3, 4, 9]
    stages = shown_stages(Event.objects.filter(contact__external_id="b"))
    assert sorted(stages) == ["loyalty", "purchase"]
    again = _import(path, "--batch-size", "3")
    assert (again["imported"], again["duplicates"], again["rejected"]) == (0, 5, 3)


@pytest.mark.django_db
def test_postgres_copy_falls_back_when_a_message_id_appears_concurrently(api, monkeypatch):
    """The lookup said 'new' but the COPY hits a stored id (a concurrent writer): ON CONFLICT path."""
    if not store.is_postgres():
        pytest.skip("the COPY path is PostgreSQL's")
    items = [{"contact_id": "u1", "event": "pv", "timestamp": 1511544070 + i, "message_id": f"m{i}"}
             for i in range(3)]
    assert api.post("/api/v1/events", items[:2], format="json").json()["imported"] == 2
    monkeypatch.setattr(store, "_pg_existing_message_ids", lambda cursor, workspace_id, ids: set())
    body = api.post("/api/v1/events", items + [items[2]], format="json").json()
    assert (body["imported"], body["duplicates"]) == (1, 3)
    assert Event.objects.count() == 3


def test_copy_text_escapes_special_characters_and_nulls():
    from datetime import UTC, datetime

    moment = datetime(2026, 1, 1, tzinfo=UTC)
    plain = store._copy_text([(1, 2, "pv", moment, moment, None, "", None, "{}", "m1")])
    assert plain == "1\t2\tpv\t2026-01-01T00:00:00+00:00\t2026-01-01T00:00:00+00:00\t\\N\t\t\\N\t{}\tm1\n"
    odd = store._copy_text([(1, 2, "a\tb\\c", moment, moment, 7, "x\ny", 1.5, '{"q":"\\""}', "m\r")])
    assert odd.split("\t")[2] == "a\\tb\\\\c" and "x\\ny" in odd and '{"q":"\\\\""}' in odd
    assert odd.endswith("m\\r\n") and odd.count("\n") == 1
