"""Mailchimp, Klaviyo, Salesforce, outbound webhook and file destinations, each against a local
server (or path) following the vendor's documented contract, through the engine."""

from __future__ import annotations

import base64
import csv
import hashlib
import json

import pytest
from django.test import override_settings

from integrations.engine import sync_run_execute
from integrations.models import Suppression
from integrations.services import destination_create, destination_test, sync_create, sync_run_request
from tests.integrations.fakes import FakeKlaviyo, FakeMailchimp, FakeSalesforce, FakeWebhookReceiver
from tests.integrations.helpers import leave, members, segment

pytestmark = pytest.mark.django_db(transaction=True)
FAST = {"rate_limit": 1000, "burst": 1000}


def _run(sync, **kw):
    run, _ = sync_run_request(sync=sync, enqueue=False, **kw)
    return sync_run_execute(run_id=run.pk)


def _setup(ws, kind, settings, credentials, mode="mirror", n=5):
    seg = segment(ws)
    members(ws, seg, [f"u{i}" for i in range(n)])
    dest = destination_create(workspace=ws, kind=kind, name=kind, settings={**settings, **FAST}, credentials=credentials)
    return seg, sync_create(workspace=ws, segment=seg.pk, destination=dest.pk, mode=mode,
                            field_mapping={"PLAN": "trait:plan"}, max_removal_share=0.5)


def test_mailchimp_member_upsert_by_md5_tags_and_unsubscribed_respected(workspace_with_key):
    server = FakeMailchimp()
    try:
        ws = workspace_with_key[0]
        seg, sync = _setup(ws, "mailchimp", {"api_base": server.url, "list_id": server.list_id, "tag": "VIP"},
                           {"api_key": server.api_key})
        ok, message = destination_test(destination=sync.destination)
        assert ok, message
        run = _run(sync)
        assert (run.status, run.added) == ("succeeded", 5)
        h = hashlib.md5(b"u1@example.com").hexdigest()  # noqa: S324
        assert server.members[h]["tags"] == {"VIP"} and server.members[h]["merge_fields"] == {"PLAN": "pro"}
        leave(seg, ["u0"])
        assert _run(sync).removed == 1
        assert server.members[hashlib.md5(b"u0@example.com").hexdigest()]["tags"] == set()  # noqa: S324
        # a member who unsubscribed in Mailchimp is read back (GET members?status=unsubscribed) and
        # never sent again (test_read_back.py covers every vendor)
        server.member_status("u1@example.com", "unsubscribed")
        from funnel_site.events.models import Contact

        Contact.objects.filter(external_id="u1").update(traits={"plan": "team"})
        run = _run(sync)
        assert run.skipped == 1 and Suppression.objects.filter(contact__external_id="u1").exists()
        sent = len(server.changes())
        Contact.objects.filter(external_id="u1").update(traits={"plan": "enterprise"})
        assert _run(sync).skipped == 1 and len(server.changes()) == sent  # nothing sent for u1 any more
        assert server.members[h]["merge_fields"] == {"PLAN": "pro"}  # as it was before the unsubscribe
    finally:
        server.stop()


def test_mailchimp_wrong_key_fails_test_connection(workspace_with_key):
    server = FakeMailchimp()
    try:
        dest = destination_create(workspace=workspace_with_key[0], kind="mailchimp", name="mc",
                                  settings={"api_base": server.url, "list_id": "L1"}, credentials={"api_key": "nope-us6"})
        ok, message = destination_test(destination=dest)
        assert not ok and "401" in message
    finally:
        server.stop()


def test_klaviyo_bulk_import_with_list_and_removal_by_profile_id(workspace_with_key):
    server = FakeKlaviyo()
    try:
        ws = workspace_with_key[0]
        seg, sync = _setup(ws, "klaviyo", {"api_base": server.url, "list_id": server.list_id, "job_poll_seconds": 0.05},
                           {"api_key": server.api_key}, n=6)
        members(ws, seg, ["bad"], email=lambda i: "not-an-email")
        run = _run(sync)
        assert (run.added, run.failed) == (6, 1)  # the job's import errors are read back per profile
        assert len(server.list_members) == 6
        assert all(r["headers"].get("revision") for r in server.requests)
        leave(seg, ["u2", "u3"])
        run = _run(sync)
        # 2 leavers removed; the refused profile is tried again and refused again (partial)
        assert (run.status, run.removed, run.failed) == ("partial", 2, 1), run.error
        assert len(server.list_members) == 4
    finally:
        server.stop()


def test_salesforce_collections_upsert_campaign_members_and_remove(workspace_with_key):
    server = FakeSalesforce()
    try:
        ws = workspace_with_key[0]
        seg, sync = _setup(ws, "salesforce", {"api_base": server.url, "campaign_id": server.campaign},
                           {"access_token": server.token}, n=4)
        members(ws, seg, ["bad"], email=lambda i: "nope")
        run = _run(sync)
        assert (run.status, run.added, run.failed) == ("partial", 4, 1)
        assert len(server.members) == 4
        leave(seg, ["u0"])
        assert _run(sync).removed == 1 and len(server.members) == 3
    finally:
        server.stop()


def test_salesforce_bulk_api_above_2000_records(workspace_with_key):
    server = FakeSalesforce()
    try:
        ws = workspace_with_key[0]
        seg, sync = _setup(ws, "salesforce", {"api_base": server.url, "campaign_id": server.campaign,
                                              "bulk_poll_seconds": 0.05}, {"access_token": server.token}, n=2100)
        members(ws, seg, ["bad"], email=lambda i: "nope")
        run = _run(sync)
        assert (run.status, run.added, run.failed) == ("partial", 2100, 1)
        assert len(server.members) == 2100 and len(server.jobs) == 2  # one Contact job, one CampaignMember job
        assert not any("/composite/" in r["path"] for r in server.requests)
        leave(seg, ["u0", "u1"])
        assert _run(sync).removed == 2 and len(server.members) == 2098  # small removals: collections
    finally:
        server.stop()


def test_outbound_webhook_signed_audience_events(workspace_with_key):
    secret = "whsec_" + base64.b64encode(b"w" * 24).decode()
    server = FakeWebhookReceiver(secret)
    try:
        ws = workspace_with_key[0]
        seg, sync = _setup(ws, "webhook", {"api_base": server.url + "/hook"}, {"secret": secret}, n=3)
        assert _run(sync).added == 3
        leave(seg, ["u0"])
        assert _run(sync).removed == 1
        names = [e["event"] for e in server.events()]
        assert names.count("Audience Entered") == 3 and names.count("Audience Exited") == 1
        assert server.bad_signatures == 0
    finally:
        server.stop()


def test_file_destination_csv_and_jsonl_written_atomically(workspace_with_key, tmp_path):
    with override_settings(INTEGRATIONS_FILE_ROOT=tmp_path):
        ws = workspace_with_key[0]
        seg, sync = _setup(ws, "file", {"path": "exports/vip.csv"}, {}, n=3)
        _run(sync)
        rows = list(csv.DictReader((tmp_path / "exports" / "vip.csv").read_text().splitlines()))
        assert [r["contact_id"] for r in rows] == ["u0", "u1", "u2"] and rows[0]["PLAN"] == "pro"
        leave(seg, ["u1"])
        _run(sync)
        rows = list(csv.DictReader((tmp_path / "exports" / "vip.csv").read_text().splitlines()))
        assert [r["contact_id"] for r in rows] == ["u0", "u2"]
        assert [p.name for p in (tmp_path / "exports").iterdir()] == ["vip.csv"]  # no temporary left
        seg2 = segment(ws, "jsonl")
        members(ws, seg2, ["j"])
        dest = destination_create(workspace=ws, kind="file", name="j", settings={"path": "x.jsonl"}, credentials={})
        _run(sync_create(workspace=ws, segment=seg2.pk, destination=dest.pk))
        assert json.loads((tmp_path / "x.jsonl").read_text())["contact_id"] == "j"
        from integrations.services import IntegrationError

        with pytest.raises(IntegrationError, match="must stay under"):
            destination_create(workspace=ws, kind="file", name="bad", settings={"path": "../../etc/x"}, credentials={})
