"""Materialised membership: entered / exited history with its SegmentChange records, sizes over
time, idempotent and concurrent refreshes, the default segments, and the scoring signal."""

from __future__ import annotations

import importlib
import math
import threading

import pytest
from django.db import connection

from predictions.models import ContactScore, Segment, SegmentChange, SegmentMembership, SegmentSize
from predictions.segments.services import segment_create, segment_refresh
from predictions.signals import scores_updated, segment_membership_changed
from tests.predictions.segments.conftest import generate_workspace

pytestmark = pytest.mark.django_db
TOP10 = {"score": {"target": "purchase", "top_percent": 10}}


def open_ids(segment) -> set[int]:
    return set(SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True)
               .values_list("contact_id", flat=True))


def expected_top(g, percent) -> set[int]:
    scores = g.scores["purchase"]
    ranked = sorted(scores, key=lambda c: (-scores[c], g.contact_ids[c]))
    return {g.contact_ids[c] for c in ranked[: math.ceil(percent * len(ranked) / 100)]}


def test_every_workspace_starts_with_the_two_default_segments(workspace_with_key):
    segments = {s.name: s for s in Segment.objects.filter(workspace=workspace_with_key[0])}
    assert set(segments) == {"Likely purchasers", "Churn risk"}
    assert segments["Likely purchasers"].definition == TOP10
    assert segments["Churn risk"].definition == {"score": {"target": "churn", "min_probability": 0.6}}
    assert all(s.is_builtin for s in segments.values())


def test_data_migration_gives_existing_workspaces_their_defaults(workspace_with_key):
    from django.apps import apps

    Segment.objects.all().delete()
    migration = importlib.import_module("predictions.migrations.0003_segments_more")
    migration.create_defaults(apps, None)
    migration.create_defaults(apps, None)  # and running it twice changes nothing
    assert Segment.objects.filter(workspace=workspace_with_key[0]).count() == 2


def test_refresh_records_entries_and_exits_and_is_idempotent(generated, django_capture_on_commit_callbacks):
    sent = []
    segment_membership_changed.connect(lambda sender, signal, **kw: sent.append(kw), weak=False,
                                      dispatch_uid="t1")
    try:
        segment = segment_create(workspace=generated.workspace, name="top", definition=TOP10, refresh=False)
        with django_capture_on_commit_callbacks(execute=True):
            first = segment_refresh(segment=segment)
        top = expected_top(generated, 10)
        assert open_ids(segment) == top and first.entered == len(top) and first.exited == 0
        assert set(SegmentChange.objects.filter(segment=segment, kind="entered").values_list("contact_id", flat=True)) == top
        assert sent == [{"segment_id": segment.pk, "workspace_id": generated.workspace.pk, "entered": len(top),
                         "exited": 0}]

        with django_capture_on_commit_callbacks(execute=True):
            again = segment_refresh(segment=segment)
        assert (again.entered, again.exited, again.size) == (0, 0, len(top))
        assert SegmentChange.objects.filter(segment=segment).count() == len(top)
        assert SegmentMembership.objects.filter(segment=segment).count() == len(top)
        assert len(sent) == 1  # nothing changed, nothing announced

        # the best member drops to the bottom: it exits, the next one enters
        best = max(top, key=lambda c: ContactScore.objects.get(contact_id=c, target="purchase").probability)
        ContactScore.objects.filter(contact_id=best, target="purchase").update(probability=0.0)
        with django_capture_on_commit_callbacks(execute=True):
            third = segment_refresh(segment=segment)
        assert third.exited == 1 and third.entered == 1 and best not in open_ids(segment)
        stay = SegmentMembership.objects.get(segment=segment, contact_id=best)
        assert stay.exited_at is not None
        exit_record = SegmentChange.objects.get(segment=segment, contact_id=best, kind="exited")
        assert exit_record.at == stay.exited_at
        assert sent[-1]["entered"] == 1 and sent[-1]["exited"] == 1

        # it comes back: a second stay, a second entered record
        ContactScore.objects.filter(contact_id=best, target="purchase").update(probability=1.0)
        segment_refresh(segment=segment)
        assert SegmentMembership.objects.filter(segment=segment, contact_id=best).count() == 2
        assert list(SegmentChange.objects.filter(segment=segment, contact_id=best).order_by("id")
                    .values_list("kind", flat=True)) == ["entered", "exited", "entered"]
        sizes = list(SegmentSize.objects.filter(segment=segment).values_list("size", "entered", "exited"))
        assert sizes == [(len(top), len(top), 0), (len(top), 0, 0), (len(top), 1, 1), (len(top), 1, 1)]
    finally:
        segment_membership_changed.disconnect(dispatch_uid="t1")


def test_a_changed_definition_moves_members_at_once(generated):
    segment = segment_create(workspace=generated.workspace, name="top", definition=TOP10)
    from predictions.segments.services import segment_update

    segment_update(segment=segment, definition={"score": {"target": "purchase", "top_percent": 50}})
    assert open_ids(segment) == expected_top(generated, 50)
    segment_update(segment=segment, definition={"score": {"target": "purchase", "top_percent": 5}})
    assert open_ids(segment) == expected_top(generated, 5)
    exited = SegmentChange.objects.filter(segment=segment, kind="exited").count()
    assert exited == len(expected_top(generated, 50)) - len(expected_top(generated, 5))


def test_scores_updated_refreshes_whole_segments_or_only_the_rescored_contacts(generated):
    ws = generated.workspace
    segment = segment_create(workspace=ws, name="top", definition=TOP10, refresh=False)
    responses = scores_updated.send(sender=None, workspace_id=ws.pk, target="purchase", contact_ids=None,
                                    scoring_run_id=None)
    counts = [r for _, r in responses if isinstance(r, dict) and "segments" in r][0]["segments"]
    by_name = {c["name"]: c for c in counts}
    assert set(by_name) == {"top", "Likely purchasers", "Churn risk"}
    assert by_name["top"]["size"] == len(expected_top(generated, 10)) == by_name["Likely purchasers"]["size"]
    churn = {c for c, p in generated.scores["churn"].items() if p >= 0.6}
    assert by_name["Churn risk"]["size"] == len(churn)

    # a real-time rescoring of two contacts: only they move, even though others would too
    members = sorted(open_ids(segment))
    outsider = next(c for c in generated.contact_ids.values() if c not in members)
    ContactScore.objects.filter(target="purchase").update(probability=0.01)
    ContactScore.objects.filter(target="purchase", contact_id=outsider).update(probability=0.99)
    scores_updated.send(sender=None, workspace_id=ws.pk, target="purchase", contact_ids=[outsider, members[0]],
                        scoring_run_id=None)
    now = open_ids(segment)
    assert outsider in now and set(members[1:]) <= now
    # members[0] now ties at 0.01 with everyone else: whether it stays depends on its id rank
    rank_order = sorted(generated.contact_ids.values(), key=lambda c: (c != outsider, c))
    kept = set(rank_order[: len(expected_top(generated, 10))])
    assert (members[0] in now) == (members[0] in kept)


def test_other_workspaces_are_not_refreshed(generated, other_workspace_with_key):
    other = other_workspace_with_key[0]
    scores_updated.send(sender=None, workspace_id=generated.workspace.pk, target="purchase", contact_ids=None,
                        scoring_run_id=None)
    assert not SegmentMembership.objects.filter(workspace=other).exists()
    assert not SegmentMembership.objects.filter(segment__workspace=generated.workspace).exclude(
        contact__workspace=generated.workspace).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_two_refreshes_at_once_write_each_change_once():
    from funnel_site.events.services import workspace_create

    ws, _ = workspace_create(slug="concurrent")
    g = generate_workspace(ws, contacts=120, seed=2)
    segment = segment_create(workspace=ws, name="half", refresh=False,
                             definition={"score": {"target": "purchase", "top_percent": 50}})
    barrier = threading.Barrier(2)
    results, failures = [], []

    def refresh():
        from django.db import connections

        try:
            barrier.wait()
            results.append(segment_refresh(segment=Segment.objects.get(pk=segment.pk)))
        except Exception as exc:  # reported below
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=refresh) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures
    wanted = expected_top(g, 50)
    assert sorted(r.entered for r in results) == [0, len(wanted)]
    assert open_ids(segment) == wanted
    assert SegmentMembership.objects.filter(segment=segment).count() == len(wanted)
    assert SegmentChange.objects.filter(segment=segment).count() == len(wanted)


def test_few_ranks_in_one_query_equal_the_ranking_pass(generated):
    """A real-time refresh ranks a few contacts with one query (`_few_ranks`); it gives the ranks and
    count of `_ranks`, ties included (raw scores tied, then probability as the key where raw is null)."""
    from predictions.models import ModelVersion
    from predictions.segments.selectors import _few_ranks, _ranks

    ws = generated.workspace
    version = ModelVersion.objects.get(workspace=ws, target="purchase", is_active=True)
    ids = sorted(generated.contact_ids.values())
    tied = ContactScore.objects.filter(model_version=version, is_current=True, contact_id__in=ids[:20])
    tied.update(raw_score=0.5)
    ContactScore.objects.filter(model_version=version, is_current=True, contact_id__in=ids[20:25]).update(
        raw_score=None, probability=0.5)
    for asked in ([ids[0]], [ids[3], ids[22], ids[-1]], ids[18:26]):
        ranks, total = _ranks(version=version, contact_ids=asked)
        few = _few_ranks(workspace=ws, target="purchase", contact_ids=asked)
        assert {c: r for c, r, _ in few} == ranks and {t for *_, t in few} == {total}
    assert _few_ranks(workspace=ws, target="ltv", contact_ids=ids[:2]) == []


def test_a_rescoring_skips_segments_that_read_only_other_targets_scores(generated):
    """After a real-time purchase rescoring, a churn-only segment is not refreshed (nothing it reads
    changed); a segment reading events (stages) or purchase scores is."""
    ws = generated.workspace
    segment_create(workspace=ws, name="reached interest", definition={"stage": {"reached": "interest"}}, refresh=False)
    responses = scores_updated.send(sender=None, workspace_id=ws.pk, target="purchase",
                                    contact_ids=[next(iter(generated.contact_ids.values()))], scoring_run_id=None)
    refreshed = {c["name"] for _, r in responses if isinstance(r, dict) and "segments" in r for c in r["segments"]}
    assert refreshed == {"Likely purchasers", "reached interest"}
    responses = scores_updated.send(sender=None, workspace_id=ws.pk, target="churn",
                                    contact_ids=[next(iter(generated.contact_ids.values()))], scoring_run_id=None)
    refreshed = {c["name"] for _, r in responses if isinstance(r, dict) and "segments" in r for c in r["segments"]}
    assert refreshed == {"Churn risk", "reached interest"}
