"""Scoring at scale on PostgreSQL: batch runs, real-time rescoring, inline predictions, explanations.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_scoring python -m benchmarks.scoring
        [--contacts 200000] [--events 50] [--shard 50000] [--skip-worker] [--skip-http] [--json]

DATABASE_URL names a scratch database (its name starts with 'bench'): dropped, created and migrated.
Steps, in one run:
1. data: `--contacts` contacts with about `--events` events each over 60 days, written by SQL
   (generate_series) straight into the tables; purchase propensity varies by contact so the model learns
   something. Contacts' first/last seen are set from their events, as ingestion does.
2. model: an LSTM with the product's default sizes (64 steps, 32 units), trained for 2 epochs on the
   first 5,000 contacts (the quality is not the point: its size is), registered as the active model.
3. end to end: `manage.py score` as a child process (the same code as a worker's shards, shard after
   shard in one process): reads every shard's sequences from PostgreSQL, predicts, COPYs the scores,
   ranks and switches. contacts/s = scored / the run's duration; peak RSS of that process (wait4).
4. forward pass (the limit), in this process on the same inputs: per shard, features built untimed,
   then only the network's predict (Keras, tf.function, batches of 4,096) timed; and the numpy
   network of `predictions/serving.py` on the same batch for comparison.
5-8. the latency figures of `benchmarks.scoring_latency` (one contact rescored, one explanation,
   POST /api/v1/predict at `--clients` clients, event to fresh score through a real worker), each
   as p50/p95/p99 beside its same-run baseline.
Memberships are not refreshed here: the segments code is not merged in this branch.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.ingest import ROOT, child_env, scratch_database, setup_django

DAY = 86400
SLUG = "bench-scoring"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=50, help="mean events per contact")
    parser.add_argument("--shard", type=int, default=50_000, help="contacts per shard")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients of POST /predict")
    parser.add_argument("--http-workers", type=int, default=0, help="gunicorn workers (0: gunicorn.conf.py's)")
    parser.add_argument("--skip-worker", action="store_true", help="leave out event-to-fresh-score")
    parser.add_argument("--skip-http", action="store_true", help="leave out POST /predict")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def make_data(contacts: int, events: int) -> dict:
    """Contacts and events by SQL; returns the workspace and timings."""
    from django.db import connection

    from funnel_site.events.services import workspace_create

    workspace, key = workspace_create(slug=SLUG)
    started = time.perf_counter()
    end = 1_767_225_600  # 2026-01-01 UTC: the newest events are just before it
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO events_contact (workspace_id, external_id, email, traits) "
            "SELECT %s, 'c' || g, '', '{}' FROM generate_series(1, %s) g", [workspace.pk, contacts])
        # per contact: n events (events/2 .. 3*events/2), a propensity q in [0, 1) and a recency
        cursor.execute(f"""
            INSERT INTO events_event (workspace_id, contact_id, name, "timestamp", received_at,
                                      channel, value, properties, message_id)
            SELECT %(ws)s, c.id, x.name, to_timestamp(%(end)s - x.ago), now(), x.channel,
                   CASE WHEN x.name = 'Order Completed' THEN round((20 + random() * 80)::numeric, 2) END,
                   '{{}}', 'b' || c.id || '-' || g
            FROM events_contact c
            CROSS JOIN LATERAL (SELECT (hashint4(c.id::int) & 1023) / 1024.0 AS q) k
            CROSS JOIN LATERAL generate_series(1, {events // 2} + (hashint4(c.id::int + 7) & 1023) * {events} / 1024) g
            CROSS JOIN LATERAL (SELECT random() + 0 * g AS r, random() + 0 * g AS s) u  -- per row (g)
            CROSS JOIN LATERAL (SELECT
                CASE WHEN u.r < 0.01 + 0.05 * k.q THEN 'Order Completed'
                     WHEN u.r < 0.12 + 0.12 * k.q THEN 'Product Added'
                     WHEN u.r < 0.16 + 0.14 * k.q THEN 'Checkout Started'
                     WHEN u.r < 0.55 THEN 'Product Viewed'
                     WHEN u.r < 0.75 THEN 'Page Viewed'
                     WHEN u.r < 0.85 THEN 'Email Opened'
                     WHEN u.r < 0.90 THEN 'Email Clicked'
                     WHEN u.r < 0.95 THEN 'Promotion Viewed'
                     ELSE 'Product Added to Wishlist' END AS name,
                CASE WHEN u.s < 0.5 THEN 'web' WHEN u.s < 0.8 THEN 'email' ELSE 'ads' END AS channel,
                -- active contacts (high q) are more recent: ago in [0, 60 days)
                (power(random(), 1 + 2 * k.q) * 60 * {DAY})::int AS ago) x
            WHERE c.workspace_id = %(ws)s""", {"ws": workspace.pk, "end": end})
        cursor.execute("""
            UPDATE events_contact c SET first_seen = m.lo, last_seen = m.hi FROM (
              SELECT contact_id, min("timestamp") lo, max("timestamp") hi FROM events_event
              WHERE workspace_id = %s GROUP BY contact_id) m WHERE c.id = m.contact_id""", [workspace.pk])
        cursor.execute("ANALYZE events_event")
        cursor.execute("ANALYZE events_contact")
        cursor.execute("SELECT count(*) FROM events_event WHERE workspace_id = %s", [workspace.pk])
        total = cursor.fetchone()[0]
    return {"workspace": workspace, "key": key, "events": total, "seconds": time.perf_counter() - started}


def train(workspace) -> object:
    """A default-size LSTM on the first 5,000 contacts, registered as the active purchase model."""
    from django.conf import settings

    from funnel_site.events.models import Contact
    from predictions.frames import contacts_frame
    from predictions.ml.config import TrainConfig
    from predictions.ml.trainer import train_model
    from predictions.models import ModelVersion

    ids = list(Contact.objects.filter(workspace=workspace).order_by("pk").values_list("pk", flat=True)[:5000])
    frame = contacts_frame(workspace_id=workspace.pk, contact_range=(ids[0], ids[-1]))
    config = TrainConfig(target="purchase", horizon_seconds=7 * DAY, lookback_seconds=28 * DAY, epochs=2,
                         arch="lstm", unit_choices=(32,),  # the default size; not a whole tournament
                         n_cutoffs=2, min_positives=50, min_negatives=50, min_report_class_count=10)
    directory = Path(settings.MODEL_ARTIFACT_DIR) / "bench-scoring"
    shutil.rmtree(directory, ignore_errors=True)
    result = train_model(frame, config, artifact_dir=directory)
    return ModelVersion.objects.create(
        workspace=workspace, target="purchase", arch="lstm", trained_arch=result.arch, status="succeeded",
        config={"train": result.config, "cutoff_unix": None, "auto_activate": False}, metrics=result.metrics,
        threshold=result.threshold, calibration=result.calibration, is_active=True, artifact_path=str(directory),
    )


def end_to_end(shard: int) -> dict:
    """`manage.py score` in a child process: the run's counts and duration, the child's peak RSS."""
    env = {**child_env(), "PREDICTION_SCORE_SHARD_SIZE": str(shard), "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "manage.py", "score", "--workspace", SLUG, "--json"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"manage.py score failed:\n{err.decode()[-3000:]}")
    payload = json.loads(out.decode().strip().splitlines()[-1])
    return {**payload, "wall": time.perf_counter() - started, "peak_rss_mb": usage.ru_maxrss / 1024}


def forward_pass(version, shard: int) -> dict:
    """Pure predict time of the network on every shard's inputs (features built untimed)."""
    import numpy as np

    from funnel_site.events.models import Contact
    from predictions.frames import contacts_frame, unix_to_datetime
    from predictions.ml.labels import Samples, eligible_contacts
    from predictions.models import ScoringRun
    from predictions.scoring import scorer_for
    from predictions.serving import light_scorer_load

    run = ScoringRun.objects.filter(model_version=version, status="succeeded").latest("finished_at")
    cutoff = int(run.as_of.timestamp())
    scorer, light = scorer_for(version), light_scorer_load(version.artifact_path)
    since = unix_to_datetime(cutoff - version.lookback_seconds)
    ids = np.fromiter(Contact.objects.filter(workspace_id=version.workspace_id, last_seen__gte=since)
                      .order_by("pk").values_list("pk", flat=True), dtype=np.int64)
    keras_s = numpy_s = 0.0
    n = 0
    for start in range(0, len(ids), shard):
        part = ids[start : start + shard]
        frame = contacts_frame(workspace_id=version.workspace_id, contact_range=(int(part[0]), int(part[-1])),
                               before=run.as_of)
        eligible = eligible_contacts(frame, cutoff, version.lookback_seconds)
        samples = Samples(eligible, np.full(len(eligible), cutoff, np.int64), np.zeros(len(eligible), np.int8))
        batch = scorer.preprocessor.transform(frame, samples)
        scorer.raw_scores(batch.take(slice(0, 64)))  # traced once before timing
        t0 = time.perf_counter()
        scorer.raw_scores(batch)
        keras_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        light.raw_scores(batch)
        numpy_s += time.perf_counter() - t0
        n += len(eligible)
    return {"contacts": n, "keras_per_s": n / keras_s, "numpy_per_s": n / numpy_s}


def main(argv=None) -> int:
    args = parse_args(argv)
    scratch_database()
    setup_django()

    figures: dict = {"contacts": args.contacts}
    data = make_data(args.contacts, args.events)
    figures["events"], figures["data_seconds"] = data["events"], data["seconds"]
    print(f"data: {args.contacts:,} contacts, {data['events']:,} events written in {data['seconds']:.0f} s")
    version = train(data["workspace"])
    print(f"model {version.pk}: LSTM, {version.metrics.get('roc_auc', float('nan')):.3f} validation ROC-AUC")
    e2e = end_to_end(args.shard)
    rate = e2e["scored"] / e2e["seconds"]
    figures["end_to_end"] = {**e2e, "per_s": rate}
    print(f"end to end (manage.py score, {e2e['shards']} shards in one process): {e2e['scored']:,} contacts in "
          f"{e2e['seconds']:.1f} s = {rate:,.0f} contacts/s (wall with start-up {e2e['wall']:.1f} s), "
          f"peak RSS {e2e['peak_rss_mb']:.0f} MB")
    from predictions.models import ScoringRun

    run = ScoringRun.objects.get(pk=e2e["run_id"])
    phases = {k: sum(s[k] for s in run.timings["shards"]) for k in ("load", "read", "predict", "write")}
    phases["finish"] = run.timings["finish"]
    figures["phases"] = phases
    print("  phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))
    forward = forward_pass(version, args.shard)
    figures["forward"] = forward
    print(f"forward pass only, same inputs: Keras {forward['keras_per_s']:,.0f} contacts/s, numpy "
          f"{forward['numpy_per_s']:,.0f} contacts/s; end to end = {100 * rate / forward['keras_per_s']:.0f} % "
          f"of the Keras forward pass")
    from benchmarks.scoring_latency import measure, report

    latency, latency_targets = measure(data["workspace"], data["key"], clients=args.clients,
                                       http_workers=args.http_workers, skip_http=args.skip_http,
                                       skip_worker=args.skip_worker)
    figures.update(latency)
    figures["bench_process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    targets = [
        ("end to end >= 10,000 contacts/s", rate >= 10_000),
        ("end to end >= 40 % of the forward pass", rate >= 0.4 * forward["keras_per_s"]),
        *latency_targets,
    ]
    return report(figures, targets, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
