"""The engine against a local HubSpot that follows its documented contract, over real HTTP."""

from __future__ import annotations

import pytest
from django.test import override_settings

from integrations.engine import sync_run_execute
from integrations.models import DeliveredRecord, SyncRecord
from integrations.services import destination_create, sync_create, sync_run_request
from tests.integrations.fakes import FakeHubSpot
from tests.integrations.helpers import leave, members, segment

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("fast_retries")]


@pytest.fixture
def fast_retries():
    with override_settings(INTEGRATIONS_RETRY_BASE_SECONDS=0.01, INTEGRATIONS_RETRY_CAP_SECONDS=0.05,
                           INTEGRATIONS_MAX_TRIES=3):
        yield


@pytest.fixture
def hubspot():
    server = FakeHubSpot()
    yield server
    server.stop()


def _sync(workspace, server, seg, mode="upsert", **kw):
    dest = destination_create(workspace=workspace, kind="hubspot", name=f"hs-{mode}",
                              settings={"api_base": server.url, "list_id": server.list_id, "rate_limit": 1000, "burst": 1000},
                              credentials={"token": server.token})
    return sync_create(workspace=workspace, segment=seg.pk, destination=dest.pk, mode=mode,
                       field_mapping={"plan": "trait:plan", "purchase_probability": "score:purchase.probability"}, **kw)


def _run(sync, **kw):
    run, _ = sync_run_request(sync=sync, enqueue=False, **kw)
    return sync_run_execute(run_id=run.pk)


def test_upsert_in_batches_of_100_with_list_membership(workspace_with_key, hubspot):
    ws = workspace_with_key[0]
    seg = segment(ws)
    members(ws, seg, [f"c{i}" for i in range(250)])
    run = _run(_sync(ws, hubspot, seg))
    assert (run.status, run.added, run.failed) == ("succeeded", 250, 0)
    upserts = [r for r in hubspot.requests if r["path"].endswith("batch/upsert")]
    assert [len(__import__("json").loads(r["raw"])["inputs"]) for r in upserts] == [100, 100, 50]
    assert hubspot.member_emails() == {f"c{i}@example.com" for i in range(250)}
    assert hubspot.contacts["c7@example.com"]["properties"]["plan"] == "pro"
    # nothing changed: the next run sends nothing
    before = len(hubspot.changes())
    run2 = _run(run.sync)
    assert (run2.status, run2.added, run2.updated) == ("succeeded", 0, 0) and len(hubspot.changes()) == before


def test_429_waits_for_retry_after_and_5xx_backs_off(workspace_with_key, hubspot):
    import time

    ws = workspace_with_key[0]
    seg = segment(ws)
    members(ws, seg, ["a", "b"])
    hubspot.inject.extend([(429, {"Retry-After": "1"}, {"message": "slow down"}), (503, {}, {"message": "down"})])
    started = time.monotonic()
    run = _run(_sync(ws, hubspot, seg))
    assert run.status == "succeeded" and run.added == 2
    assert time.monotonic() - started >= 1.0  # waited for Retry-After
    outcomes = list(run.attempts_made.values_list("outcome", flat=True))
    assert outcomes[:3] == ["rate_limited", "transient", "ok"]


def test_timeouts_and_persistent_5xx_fail_the_records_for_the_next_run(workspace_with_key, hubspot):
    ws = workspace_with_key[0]
    seg = segment(ws)
    members(ws, seg, ["a", "b", "c"])
    hubspot.inject.extend([(500, {}, {"message": "boom"})] * 3)
    sync = _sync(ws, hubspot, seg)
    run = _run(sync)
    assert (run.status, run.failed, run.added) == ("failed", 3, 0)
    assert not DeliveredRecord.objects.filter(sync=sync).exists()
    run2 = _run(sync)  # retried in the next run
    assert (run2.status, run2.added) == ("succeeded", 3)


def test_a_bad_record_is_isolated_by_halving_and_the_rest_delivered(workspace_with_key, hubspot):
    ws = workspace_with_key[0]
    seg = segment(ws)
    members(ws, seg, [f"ok{i}" for i in range(9)])
    members(ws, seg, ["broken"], email=lambda i: "not-an-email")
    sync = _sync(ws, hubspot, seg)
    run = _run(sync)
    assert (run.status, run.added, run.failed) == ("partial", 9, 1)
    failed = SyncRecord.objects.get(run=run, status="failed")
    assert failed.contact.external_id == "broken" and "VALIDATION_ERROR" in failed.error or "400" in failed.error
    assert len(hubspot.member_emails()) == 9
    from integrations.selectors import run_records

    results = sorted(r["result"] for r in run_records(run=run))
    assert results == ["failed"] + ["ok"] * 9
    # refused again with the same data twice more, then skipped instead of retried for ever
    for _ in range(2):
        assert _run(sync).failed == 1
    later = _run(sync)
    assert (later.failed, later.skipped) == (0, 1)


def test_mirror_removes_leavers_and_guards_a_mass_removal(workspace_with_key, hubspot):
    ws = workspace_with_key[0]
    seg = segment(ws)
    members(ws, seg, [f"m{i}" for i in range(10)])
    sync = _sync(ws, hubspot, seg, mode="mirror", max_removal_share=0.3)
    assert _run(sync).added == 10
    leave(seg, ["m0", "m1"])
    run = _run(sync)
    assert (run.status, run.removed) == ("succeeded", 2)
    assert hubspot.member_emails() == {f"m{i}@example.com" for i in range(2, 10)}
    leave(seg, [f"m{i}" for i in range(2, 7)])  # 5 of 8 = 62% > 30%
    guarded = _run(sync)
    assert guarded.status == "failed" and guarded.needs_confirmation and guarded.removed == 0
    assert "would remove 5 of 8" in guarded.error
    assert len(hubspot.member_emails()) == 8  # nothing removed
    confirmed = _run(sync, confirm_removals=True)
    assert (confirmed.status, confirmed.removed) == ("succeeded", 5)


def test_dry_run_sends_nothing_and_reports_the_diff(workspace_with_key, hubspot):
    ws = workspace_with_key[0]
    seg = segment(ws)
    members(ws, seg, ["x", "y", "z"])
    sync = _sync(ws, hubspot, seg)
    run = _run(sync, dry_run=True)
    assert (run.status, run.added, run.planned_counts["add"]) == ("succeeded", 3, 3)
    assert hubspot.changes() == [] and not DeliveredRecord.objects.filter(sync=sync).exists()
    assert SyncRecord.objects.filter(run=run, status="planned").count() == 3


def test_empty_values_do_not_overwrite_unless_asked(workspace_with_key, hubspot):
    import json

    ws = workspace_with_key[0]
    seg = segment(ws)
    members(ws, seg, ["e"])
    _run(_sync(ws, hubspot, seg))  # no score: purchase_probability is left out
    sent = json.loads([r for r in hubspot.requests if r["path"].endswith("upsert")][0]["raw"])["inputs"][0]
    assert "purchase_probability" not in sent["properties"]
    sync2 = _sync(ws, hubspot, segment(ws, "other"), mode="add_only", write_empty=True)
    members(ws, sync2.segment, ["e"])
    _run(sync2)
    sent = json.loads([r for r in hubspot.requests if r["path"].endswith("upsert")][-1]["raw"])["inputs"][0]
    assert sent["properties"]["purchase_probability"] == ""


def test_wrong_token_fails_the_run_with_a_clear_error(workspace_with_key, hubspot):
    ws = workspace_with_key[0]
    seg = segment(ws)
    members(ws, seg, ["a"])
    sync = _sync(ws, hubspot, seg)
    dest = sync.destination
    dest.set_credentials({"token": "wrong"})
    dest.save()
    run = _run(sync)
    assert run.status == "failed" and "401" in run.error and "credentials" in run.error


def test_scores_percentile_and_top_factor_as_contact_properties(workspace_with_key, hubspot):
    import json

    from django.utils import timezone

    from funnel_site.events.models import Contact
    from integrations.models import Sync
    from predictions.models import ContactScore, ModelVersion

    ws = workspace_with_key[0]
    seg = segment(ws)
    members(ws, seg, ["s1", "s2"])
    old = ModelVersion.objects.create(workspace=ws, target="purchase", status="succeeded", is_active=False)
    active = ModelVersion.objects.create(workspace=ws, target="purchase", status="succeeded", is_active=True)
    now = timezone.now()
    extra = {"percentile": 92.5}
    s1 = Contact.objects.get(workspace=ws, external_id="s1")
    # the old model's score is no longer current (one current score per contact and target)
    ContactScore.objects.create(workspace=ws, model_version=old, contact=s1, target="purchase", probability=0.1,
                                as_of=now, is_current=False)
    ContactScore.objects.create(workspace=ws, model_version=active, contact=s1, target="purchase", probability=0.81234,
                                as_of=now, factors=[{"text": "Added to cart 2 days ago", "contribution": 0.31},
                                                    {"text": "Opened 3 emails", "contribution": 0.1}], **extra)
    sync = _sync(ws, hubspot, seg)
    Sync.objects.filter(pk=sync.pk).update(field_mapping={
        "purchase_probability": "score:purchase.probability", "purchase_percentile": "score:purchase.percentile",
        "purchase_reason": "score:purchase.top_factor"})
    sync.refresh_from_db()
    assert _run(sync).added == 2
    inputs = {i["id"]: i["properties"] for r in hubspot.requests if r["path"].endswith("upsert")
              for i in json.loads(r["raw"])["inputs"]}
    assert inputs["s1@example.com"]["purchase_probability"] == 0.8123  # the active model's score, not the old one
    assert inputs["s1@example.com"]["purchase_reason"] == "Added to cart 2 days ago"
    # a percentile only where scores carry one; s2 has no score: nothing blank is sent
    assert inputs["s1@example.com"].get("purchase_percentile") == 92.5
    assert set(inputs["s2@example.com"]) == {"email"}
