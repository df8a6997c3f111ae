"""Segment evaluation and refresh on PostgreSQL, beside hand-written SQL doing the same work.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_segments python -m benchmarks.segments
        [--contacts 100000] [--days 30] [--realtime 50]

DATABASE_URL names a scratch database (name starting with 'bench'; dropped, created, migrated;
`--reuse` keeps the data of the previous run).
Synthetic behaviour goes in through `generate_events`; every contact gets a stored purchase and churn
score of an active model (random, 3 decimals so there are ties). Then, in this process:

- evaluation of "top 10 %", "probability >= 0.6", "reached consideration, not the next within 2d"
  and a trait condition, beside one SQL statement computing the same set (counts must agree);
- refreshes of a top-10 % segment: the first (everyone enters), an idempotent one (nothing changes),
  one after 10 % of the scores changed, beside hand-written INSERT ... SELECT statements writing the
  same memberships and Audience Entered records (rolled back);
- the real-time path: refreshing every segment of the workspace for one rescored contact
  (p50 / p95 over --realtime contacts).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

from benchmarks.ingest import scratch_database, setup_django

TOP10 = {"score": {"target": "purchase", "top_percent": 10}}
STUCK = {"stage": {"reached": "consideration", "not_next_within": "2d"}}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--realtime", type=int, default=50)
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the data of a previous run in DATABASE_URL instead of re-creating it")
    return parser.parse_args(argv)


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def load(args):
    """A workspace with events and scores; returns (workspace, versions)."""
    from django.core.management import call_command
    from django.db import connection

    from funnel_site.events.models import Contact
    from funnel_site.events.services import workspace_create
    from predictions.models import ModelVersion

    workspace, _ = workspace_create(slug="bench-segments")
    _, seconds = timed(lambda: call_command("generate_events", "--workspace", workspace.slug, "--contacts",
                                            str(args.contacts), "--days", str(args.days), "--seed", "4"))
    n_events = workspace.contacts.model.objects.filter(workspace=workspace).count()
    print(f"loaded {args.contacts:,} contacts ({n_events:,} with events) in {seconds:.1f} s")
    rng = random.Random(1)
    ids = list(Contact.objects.filter(workspace=workspace).values_list("id", flat=True))
    Contact.objects.filter(workspace=workspace, id__in=ids[::3]).update(traits={"plan": "pro", "age": 41})
    versions = {}
    for target in ("purchase", "churn"):
        version = ModelVersion.objects.create(workspace=workspace, target=target, status="succeeded",
                                              is_active=True, config={})
        versions[target] = version
        with connection.cursor() as cursor, cursor.copy(
            "COPY predictions_contactscore (workspace_id, model_version_id, contact_id, target, probability, "
            "as_of, scored_at, factors) FROM STDIN"
        ) as copy:
            for c in ids:
                copy.write_row((workspace.pk, version.pk, c, target, round(rng.random(), 3), "2026-01-01",
                                "2026-01-01", '[{"text": "Viewed a product 2 days ago", "contribution": 0.1}]'))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return workspace, versions


def sql_set(query: str, params) -> set[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return {row[0] for row in cursor.fetchall()}


def evaluation(workspace, versions) -> list[tuple]:
    """(what, ours s, SQL s, size, agree) per condition."""
    from django.utils import timezone

    from funnel_site.events.columns import workspace_columns
    from predictions.segments.evaluate import definition_evaluate

    now = timezone.now()
    _, warm = timed(lambda: workspace_columns(workspace.id))
    print(f"column cache load (first query of a process): {warm:.2f} s")
    n = versions["purchase"].scores.count()
    k = math.ceil(n / 10)
    cases = [
        ("top 10 % (purchase)", TOP10,
         "SELECT contact_id FROM predictions_contactscore WHERE model_version_id = %s "
         "ORDER BY probability DESC, contact_id LIMIT %s", [versions["purchase"].pk, k]),
        ("churn probability >= 0.6", {"score": {"target": "churn", "min_probability": 0.6}},
         "SELECT contact_id FROM predictions_contactscore WHERE model_version_id = %s AND probability >= 0.6",
         [versions["churn"].pk]),
        ("consideration, not next within 2d", STUCK,
         "WITH arrived AS (SELECT contact_id, max(timestamp) AS t FROM events_event WHERE workspace_id = %s "
         "AND stage = 'consideration' AND timestamp <= %s GROUP BY contact_id), "
         "later AS (SELECT contact_id, max(timestamp) AS t FROM events_event WHERE workspace_id = %s "
         "AND stage IN ('purchase', 'loyalty') AND timestamp <= %s GROUP BY contact_id) "
         "SELECT a.contact_id FROM arrived a LEFT JOIN later l USING (contact_id) "
         "WHERE a.t <= %s - interval '2 days' AND (l.t IS NULL OR l.t < a.t)",
         [workspace.id, now, workspace.id, now, now]),
        ("trait plan = pro and age >= 40", {"and": [{"trait": {"key": "plan", "op": "eq", "value": "pro"}},
                                                    {"trait": {"key": "age", "op": "gte", "value": 40}}]},
         "SELECT id FROM events_contact WHERE workspace_id = %s AND traits->'plan' = '\"pro\"' "
         "AND jsonb_typeof(traits->'age') = 'number' AND (traits->>'age')::float >= 40", [workspace.id]),
    ]
    rows = []
    for what, definition, query, params in cases:
        ours, ours_s = timed(lambda d=definition: definition_evaluate(workspace=workspace, definition=d, as_of=now))
        theirs, sql_s = timed(lambda q=query, p=params: sql_set(q, p))
        rows.append((what, ours_s, sql_s, int(ours.contact_ids.size), set(ours.contact_ids.tolist()) == theirs))
    return rows


def refreshes(workspace, versions) -> list[tuple]:
    """(what, seconds, entered, exited, SQL baseline seconds or None)."""
    from django.db import connection, transaction

    from predictions.models import ContactScore
    from predictions.segments.services import segment_create, segment_refresh

    segment = segment_create(workspace=workspace, name="bench top 10", definition=TOP10, refresh=False)
    n = versions["purchase"].scores.count()
    k = math.ceil(n / 10)

    def baseline() -> float:
        started = time.perf_counter()
        with transaction.atomic():
            with connection.cursor() as cursor:
                top = ("SELECT contact_id FROM predictions_contactscore WHERE model_version_id = %s "
                       "ORDER BY probability DESC, contact_id LIMIT %s")
                cursor.execute(
                    "INSERT INTO predictions_segmentmembership (workspace_id, segment_id, contact_id, entered_at) "
                    f"SELECT %s, %s, contact_id, now() FROM ({top}) t", [workspace.pk, segment.pk,
                                                                          versions["purchase"].pk, k])
                cursor.execute(
                    "INSERT INTO predictions_segmentchange (workspace_id, segment_id, contact_id, kind, at) "
                    f"SELECT %s, %s, contact_id, 'entered', now() FROM ({top}) t",
                    [workspace.pk, segment.pk, versions["purchase"].pk, k])
            elapsed = time.perf_counter() - started
            transaction.set_rollback(True)
        return elapsed

    rows = []
    sql_first = baseline()
    first, s = timed(lambda: segment_refresh(segment=segment))
    rows.append(("first refresh (all enter)", s, first.entered, first.exited, sql_first))
    same, s = timed(lambda: segment_refresh(segment=segment))
    rows.append(("idempotent refresh", s, same.entered, same.exited, None))
    rng = random.Random(2)
    changed = rng.sample(list(versions["purchase"].scores.values_list("id", flat=True)), n // 10)
    for start in range(0, len(changed), 5000):
        ContactScore.objects.filter(id__in=changed[start:start + 5000]).update(probability=rng.random())
    moved, s = timed(lambda: segment_refresh(segment=segment))
    rows.append(("after 10 % of scores changed", s, moved.entered, moved.exited, None))
    return rows


def realtime(workspace, count: int) -> tuple[float, float, int]:
    """p50 / p95 seconds of refreshing every segment of the workspace for one contact."""
    from predictions.segments.services import segments_refresh

    ids = list(workspace.contacts.values_list("id", flat=True)[:count])
    times = [timed(lambda c=c: segments_refresh(workspace=workspace, contact_ids=[c]))[1] for c in ids]
    times.sort()
    n_segments = workspace.segments.count()
    return statistics.median(times), times[max(0, math.ceil(0.95 * len(times)) - 1)], n_segments


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.reuse:
        setup_django()
        from funnel_site.events.models import Workspace
        from predictions.models import ModelVersion, Segment

        workspace = Workspace.objects.get(slug="bench-segments")
        Segment.objects.filter(workspace=workspace, name="bench top 10").delete()
        versions = {v.target: v for v in ModelVersion.objects.filter(workspace=workspace, is_active=True)}
        print(f"reusing {workspace.contacts.count():,} contacts")
    else:
        scratch_database()
        setup_django()
        workspace, versions = load(args)
    print(f"\n{'evaluation':<38} {'ours s':>8} {'SQL s':>8} {'size':>8}  same set")
    for what, ours, sql, size, same in evaluation(workspace, versions):
        print(f"{what:<38} {ours:>8.3f} {sql:>8.3f} {size:>8,}  {'yes' if same else 'NO'}")
    print(f"\n{'refresh (top 10 %)':<38} {'s':>8} {'entered':>8} {'exited':>8} {'SQL s':>8}")
    for what, s, entered, exited, sql in refreshes(workspace, versions):
        print(f"{what:<38} {s:>8.3f} {entered:>8,} {exited:>8,} {'' if sql is None else f'{sql:.3f}':>8}")
    p50, p95, n_segments = realtime(workspace, args.realtime)
    print(f"\nreal-time: one contact, all {n_segments} segments: p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")


if __name__ == "__main__":
    main()
