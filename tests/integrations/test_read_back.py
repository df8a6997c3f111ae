"""Unsubscribes and deletions reported back by the tool are respected on the next run.

For each vendor, against its local server (fakes.py + fake_readback.py, the documented read-back
endpoints): a sync delivers, then the person unsubscribes (upsert syncs) or is deleted / archived /
list-suppressed (mirror syncs) in the tool, then their data changes so the engine would update
them, and a mirror sync also has a leaver. The next run reads the change back, suppresses the
contact for this destination, updates the others and removes the leaver, and sends nothing that
names the contact; nor does a later leave and re-entry of the segment re-add them."""

from __future__ import annotations

import hashlib

import pytest
from django.test import override_settings

from funnel_site.events.models import Contact
from integrations.engine import sync_run_execute
from integrations.models import Suppression, SyncRecord
from integrations.services import destination_create, sync_create, sync_run_request
from tests.integrations.fakes import FakeHubSpot, FakeKlaviyo, FakeMailchimp, FakeSalesforce
from tests.integrations.helpers import leave, members, segment

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_retries")]
FAST = {"rate_limit": 1000, "burst": 1000}
EMAIL = "u1@example.com"


@pytest.fixture
def fast_retries():
    with override_settings(INTEGRATIONS_RETRY_BASE_SECONDS=0.01, INTEGRATIONS_RETRY_CAP_SECONDS=0.05,
                           INTEGRATIONS_MAX_TRIES=3):
        yield


def _hubspot():
    server = FakeHubSpot()
    return server, {"list_id": server.list_id}, {"token": server.token}


def _mailchimp():
    server = FakeMailchimp()
    return server, {"list_id": server.list_id, "tag": "VIP"}, {"api_key": server.api_key}


def _klaviyo():
    server = FakeKlaviyo()
    return server, {"list_id": server.list_id, "job_poll_seconds": 0.02}, {"api_key": server.api_key}


def _salesforce():
    server = FakeSalesforce()
    return server, {"campaign_id": server.campaign}, {"access_token": server.token}


def _report(kind: str, server, mode: str) -> list[str]:
    """The tool-side change for u1; returns what would name u1 in a request (email, ids)."""
    if kind == "hubspot":
        needles = [EMAIL, f'"{server.contacts[EMAIL]["id"]}"']
        server.opt_out(EMAIL) if mode == "upsert" else server.delete(EMAIL)
    elif kind == "mailchimp":
        needles = [EMAIL, hashlib.md5(EMAIL.encode()).hexdigest()]  # noqa: S324 - Mailchimp's member id
        server.member_status(EMAIL, "unsubscribed" if mode == "upsert" else "archived")
    elif kind == "klaviyo":
        needles = [EMAIL, f'"{server.profiles[EMAIL]}"']
        server.suppress(EMAIL) if mode == "upsert" else server.suppress(EMAIL, list_id=server.list_id)
    else:
        needles = [EMAIL, f'"{server.contacts["u1"]}"']
        server.opt_out("u1") if mode == "upsert" else server.delete("u1")
    return needles


def _run(sync):
    run, _ = sync_run_request(sync=sync, enqueue=False)
    return sync_run_execute(run_id=run.pk)


def _changes_since(server, n: int) -> list[dict]:
    changes = {id(r) for r in server.changes()}
    return [r for r in server.requests[n:] if id(r) in changes]


def _names_u1(requests: list[dict], needles: list[str]) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in requests
            if any(n in r["path"] or n.encode() in r["raw"] for n in needles)]


@pytest.mark.parametrize("mode", ["upsert", "mirror"])
@pytest.mark.parametrize("make", [_hubspot, _mailchimp, _klaviyo, _salesforce], ids=lambda f: f.__name__[1:])
def test_reported_unsubscribe_or_deletion_is_not_readded(workspace_with_key, make, mode):
    server, settings, credentials = make()
    try:
        ws = workspace_with_key[0]
        seg = segment(ws)
        members(ws, seg, ["u0", "u1", "u2", "u3"])
        dest = destination_create(workspace=ws, kind=server.__class__.__name__[4:].lower(), name="tool",
                                  settings={"api_base": server.url, **settings, **FAST}, credentials=credentials)
        sync = sync_create(workspace=ws, segment=seg.pk, destination=dest.pk, mode=mode,
                           field_mapping={"PLAN": "trait:plan"}, max_removal_share=0.5)
        first = _run(sync)
        assert (first.status, first.added) == ("succeeded", 4), first.error
        assert first.planned_counts["read_back"]["since"] is None  # the first read-back asks for everything

        needles = _report(dest.kind, server, mode)
        Contact.objects.filter(external_id__in=["u1", "u2"]).update(traits={"plan": "team"})
        if mode == "mirror":
            leave(seg, ["u3"])
        sent_before = len(server.requests)
        second = _run(sync)
        assert second.status == "succeeded", second.error
        assert (second.updated, second.skipped) == (1, 1)  # u2 updated; u1 skipped
        assert second.removed == (1 if mode == "mirror" else 0)
        assert second.planned_counts["read_back"]["suppressed"] == 1
        assert second.planned_counts["read_back"]["since"] is not None  # from the previous read-back
        suppression = Suppression.objects.get(contact__external_id="u1")
        assert suppression.destination_id == dest.pk and suppression.source == dest.kind
        skipped = SyncRecord.objects.get(run=second, status="skipped")
        assert skipped.contact.external_id == "u1" and "unsubscribed or deleted" in skipped.error
        assert _names_u1(_changes_since(server, sent_before), needles) == []

        # leaving and re-entering the segment does not re-add u1 either
        leave(seg, ["u1"])
        _run(sync)
        members(ws, seg, ["u1"])
        sent_before = len(server.requests)
        again = _run(sync)
        assert (again.status, again.added, again.skipped) == ("succeeded", 0, 1), again.error
        assert _names_u1(_changes_since(server, sent_before), needles) == []
    finally:
        server.stop()


@pytest.fixture
def mailchimp_sync(workspace_with_key):
    """A Mailchimp server and an upsert sync of u0, u1 to it."""
    server, settings, credentials = _mailchimp()
    ws = workspace_with_key[0]
    seg = segment(ws)
    members(ws, seg, ["u0", "u1"])
    dest = destination_create(workspace=ws, kind="mailchimp", name="mc",
                              settings={"api_base": server.url, **settings, **FAST}, credentials=credentials)
    yield server, sync_create(workspace=ws, segment=seg.pk, destination=dest.pk, mode="upsert")
    server.stop()


def test_read_back_failure_fails_the_run_before_anything_is_sent(mailchimp_sync):
    server, sync = mailchimp_sync
    for _ in range(3):  # INTEGRATIONS_MAX_TRIES answers of 503 to the read-back
        server.inject_read_back.append((503, {}, {"title": "Service Unavailable", "status": 503}))
    run = _run(sync)
    assert run.status == "failed" and "reading back unsubscribes" in run.error
    assert server.changes() == [] and run.added == 0
    assert len(server.requests) == 3
    # the next run reads back again and delivers
    assert _run(sync).added == 2


def test_first_read_back_of_a_new_sync_suppresses_who_the_tool_already_lost(mailchimp_sync):
    """A contact unsubscribed in the tool before we ever synced is not added by the first run."""
    server, sync = mailchimp_sync
    server.members[hashlib.md5(EMAIL.encode()).hexdigest()] = {  # noqa: S324
        "email_address": EMAIL, "status": "cleaned", "tags": set(), "merge_fields": {},
        "last_changed": "2020-01-01T00:00:00+00:00"}
    run = _run(sync)
    assert (run.added, run.skipped) == (1, 1)
    assert _names_u1(server.changes(), [EMAIL, hashlib.md5(EMAIL.encode()).hexdigest()]) == []  # noqa: S324
