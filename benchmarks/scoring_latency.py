"""Latency of scores: one contact rescored, one explanation, POST /api/v1/predict, event to fresh score.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_scoring python -m benchmarks.scoring_latency
        [--contacts 20000] [--reuse] [--skip-worker] [--skip-http] [--json]

Without `--reuse` the scratch database is built as `benchmarks.scoring` builds it (contacts with ~50
events each, the default-size LSTM, one scoring run); `--reuse` measures on what an earlier run left
(the active model and its current scores). `benchmarks.scoring` runs these too, after the batch run.

Each figure is printed as p50 / p95 / p99 beside a baseline measured in the same run, on the same
input, interleaved with it so both meet the same load, and with the load average (1 min) at its
start and end (the host is shared):
- rescore: `contacts_rescore` of one contact (read its events, features, numpy network, percentile,
  replace its current row) vs the bare numpy forward pass of the same model on that contact's inputs;
- explanation: `score_explain` (read, features, expected gradients in numpy, stored) vs the same
  bare forward pass, and SHAP's GradientExplainer on the Keras model (one explainer kept, as a
  worker keeps it) on the same inputs with the same samples;
- POST /predict: one contact's events, `--clients` concurrent keep-alive clients against gunicorn
  (its `gunicorn.conf.py`), vs GET /healthz (the HTTP stack alone) from the same clients on the same server;
- event to fresh score: through a real Celery worker, vs the debounce delay (the floor by design).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.ingest import ROOT, child_env, start_server

SLUG = "bench-scoring"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=50, help="mean events per contact")
    parser.add_argument("--reuse", action="store_true", help="measure on the database an earlier run left")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients of POST /predict")
    parser.add_argument("--http-workers", type=int, default=0, help="gunicorn workers (0: gunicorn.conf.py's rule)")
    parser.add_argument("--skip-worker", action="store_true", help="leave out event-to-fresh-score")
    parser.add_argument("--skip-http", action="store_true", help="leave out POST /predict")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def quantiles(values: list[float]) -> dict:
    """p50 / p95 / p99 (nearest rank) of a sample."""
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return {"n": len(ordered), "p50": at(0.5), "p95": at(0.95), "p99": at(0.99)}


def load() -> float:
    return round(os.getloadavg()[0], 2)


def spread(figures: dict, unit: str = "ms") -> str:
    return f"p50 {figures['p50']:.2f} {unit}, p95 {figures['p95']:.2f} {unit}, p99 {figures['p99']:.2f} {unit}"


def _forward(light, workspace_id: int, contact_id: int, cutoff: int):
    """The contact's inputs (built untimed) and a function timing the bare forward pass on them."""
    import numpy as np

    from predictions.frames import contacts_frame
    from predictions.ml.labels import Samples

    frame = contacts_frame(workspace_id=workspace_id, contact_ids=[contact_id])
    samples = Samples(np.array([contact_id]), np.array([cutoff]), np.zeros(1, np.int8))
    inputs = light.scorer.inputs(frame, samples)

    def run() -> float:
        t0 = time.perf_counter()
        light.scorer.raw_scores(inputs)
        return (time.perf_counter() - t0) * 1000

    return frame, samples, inputs, run


def rescore_in_process(workspace, samples: int = 200) -> dict:
    """`contacts_rescore` of one contact at a time (with the segment refresh its `scores_updated`
    triggers, as served; and without it, the scoring alone) vs the bare forward pass on that contact."""
    from predictions import signals
    from predictions.models import ContactScore, ModelVersion
    from predictions.realtime import contacts_rescore
    from predictions.segments import receivers
    from predictions.serving import light_scorer_load

    version = ModelVersion.objects.get(workspace=workspace, is_active=True, target="purchase")
    light = light_scorer_load(version.artifact_path)
    rows = list(ContactScore.objects.filter(workspace=workspace, is_current=True).order_by("?")
                .values_list("contact_id", "as_of")[: samples + 5])
    contacts_rescore(workspace_id=workspace.pk, contact_ids=[c for c, _ in rows[:5]], explain=False)  # warm-up
    measured, alone, baseline = [], [], []
    started = load()

    cpu = {"rescore": [], "alone": []}

    def rescore(contact_id: int, kind: str) -> float:
        t0, c0 = time.perf_counter(), time.process_time()
        assert contacts_rescore(workspace_id=workspace.pk, contact_ids=[contact_id], explain=False) == 1
        cpu[kind].append((time.process_time() - c0) * 1000)
        return (time.perf_counter() - t0) * 1000

    for contact_id, as_of in rows[5:]:
        *_, forward = _forward(light, workspace.pk, contact_id, int(as_of.timestamp()))
        baseline.append(forward())
        measured.append(rescore(contact_id, "rescore"))
        signals.scores_updated.disconnect(dispatch_uid="segments_refresh")
        try:
            alone.append(rescore(contact_id, "alone"))
        finally:
            signals.scores_updated.connect(receivers.scores_updated, dispatch_uid="segments_refresh")
    return {"rescore_ms": quantiles(measured), "scoring_alone_ms": quantiles(alone), "forward_ms": quantiles(baseline),
            "rescore_cpu_ms": quantiles(cpu["rescore"]), "scoring_alone_cpu_ms": quantiles(cpu["alone"]),
            "load": [started, load()]}


def explanations(workspace, samples: int = 40) -> dict:
    """`score_explain` (numpy expected gradients, stored) vs the forward pass, and vs SHAP on Keras."""
    from predictions.ml.candidates import ExplainContext
    from predictions.models import ContactScore, ModelVersion
    from predictions.realtime import score_explain
    from predictions.scoring import scorer_for
    from predictions.serving import light_scorer_load

    version = ModelVersion.objects.get(workspace=workspace, is_active=True, target="purchase")
    light, keras_scorer = light_scorer_load(version.artifact_path), scorer_for(version)
    rows = list(ContactScore.objects.filter(workspace=workspace, is_current=True, explained_at__isnull=True)
                .order_by("?").values_list("pk", "contact_id", "as_of")[: samples + 2])
    measured, baseline, shap_ms, cpu = [], [], [], []
    started = load()
    for n, (score_id, contact_id, as_of) in enumerate(rows):
        frame, _, inputs, forward = _forward(light, workspace.pk, contact_id, int(as_of.timestamp()))
        context = ExplainContext(keras_scorer.background, frame, version.lookback_seconds, keras_scorer.state_names)
        t0 = time.perf_counter()
        keras_scorer.candidate.explain(inputs, context)  # the first call builds the explainer (kept)
        shap_time = (time.perf_counter() - t0) * 1000
        forward_time = forward()
        t0, c0 = time.perf_counter(), time.process_time()
        assert score_explain(score_id=score_id).explained_at is not None
        if n >= 2:  # the first ones build the explainers and trace TensorFlow
            measured.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            baseline.append(forward_time)
            shap_ms.append(shap_time)
    return {"explain_ms": quantiles(measured), "forward_ms": quantiles(baseline), "shap_keras_ms": quantiles(shap_ms),
            "explain_cpu_ms": quantiles(cpu), "load": [started, load()]}


def _server_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its children (gunicorn's workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:  # exited meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        todo.extend(int(c) for c in children)
    return total


def _clients(port: int, clients: int, per_client: int, method: str, path: str, body: bytes | None,
             headers: dict) -> tuple[list[float], float, list[str]]:
    """`clients` threads, each with one keep-alive connection, sending `per_client` requests in turn."""
    import http.client

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    gate = threading.Barrier(clients + 1)

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        gate.wait()
        for _ in range(per_client):
            t0 = time.perf_counter()
            conn.request(method, path, body, headers)
            resp = conn.getresponse()
            data = resp.read()
            mine.append((time.perf_counter() - t0) * 1000)
            if resp.status != 200:
                with lock:
                    errors.append(f"{resp.status} {data[:200]!r}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    gate.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - t0, errors


def predict_http(workspace, key: str, clients: int, workers: int, per_client: int = 50) -> dict:
    """POST /api/v1/predict from `clients` concurrent clients vs GET /healthz from the same clients."""
    from funnel_site.events.models import Event
    from predictions.models import ContactScore

    contact_id = ContactScore.objects.filter(workspace=workspace, is_current=True).values_list(
        "contact_id", flat=True).first()
    events = [{"event": n, "timestamp": t.isoformat(), "channel": c}
              for n, t, c in Event.objects.filter(contact_id=contact_id).order_by("timestamp")
              .values_list("name", "timestamp", "channel")]
    body = json.dumps({"target": "purchase", "events": events}).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    Path(ROOT, "var").mkdir(exist_ok=True)
    # gunicorn reads the product's gunicorn.conf.py from its directory; the default count is its rule
    workers = workers or min(2 * (os.cpu_count() or 1) + 1, 8)
    proc, port = start_server(workers, Path(ROOT) / "var" / "bench-scoring-gunicorn.log")
    try:
        # warm-up: every worker loads the model (the kernel spreads connections over the workers)
        _clients(port, clients, 10, "POST", "/api/v1/predict", body, headers)
        started = load()
        rounds = {"predict": ([], 0.0), "healthz": ([], 0.0)}
        cpu = {"predict": [0.0, 0.0], "healthz": [0.0, 0.0]}  # server, load generator (seconds)
        for _ in range(2):  # interleaved halves, so both meet the same load
            for name, (method, path, payload) in {"predict": ("POST", "/api/v1/predict", body),
                                                  "healthz": ("GET", "/healthz", None)}.items():
                server0, client0 = _server_cpu(proc.pid), time.process_time()
                latencies, elapsed, errors = _clients(port, clients, per_client // 2, method, path, payload, headers)
                cpu[name][0] += _server_cpu(proc.pid) - server0
                cpu[name][1] += time.process_time() - client0
                if errors:
                    raise RuntimeError(f"{path} failed: {errors[:3]}")
                rounds[name] = (rounds[name][0] + latencies, rounds[name][1] + elapsed)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    out = {"events": len(events), "clients": clients, "load": [started, load()]}
    for name, (latencies, elapsed) in rounds.items():
        out[f"{name}_ms"] = quantiles(latencies)
        out[f"{name}_per_s"] = len(latencies) / elapsed
        out[f"{name}_server_cpu_ms"] = cpu[name][0] * 1000 / len(latencies)  # per request, every worker
        out[f"{name}_client_cpu_ms"] = cpu[name][1] * 1000 / len(latencies)
    return out


def event_to_score(workspace, samples: int = 20) -> dict:
    """Through a real worker: ingest one event for a contact, wait until its current score is as of it."""
    from datetime import UTC, datetime

    from django.conf import settings

    from funnel_site.events.services import events_ingest
    from predictions.models import ContactScore

    log = open(Path(ROOT) / "var" / "bench-scoring-worker.log", "w")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "funnel_site", "worker", "-Q", "scoring", "--pool", "prefork",
         "--concurrency", "2", "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
         "-n", f"bench-scoring-{os.getpid()}@%h"],
        cwd=ROOT, env={**child_env(), "TF_CPP_MIN_LOG_LEVEL": "3", "PREDICTION_REALTIME_EXPLAIN_MAX": "0"},
        stdout=log, stderr=subprocess.STDOUT)
    ids = list(ContactScore.objects.filter(workspace=workspace, is_current=True).order_by("?")
               .values_list("contact__external_id", "as_of")[: samples + 3])
    latencies = []
    started = load()
    run = time.time_ns()  # a --reuse run's events must not repeat an earlier run's message ids (deduplicated)
    try:
        for n, (external_id, as_of) in enumerate(ids):
            ts = int(as_of.timestamp()) + 60 + n
            t0 = time.perf_counter()
            events_ingest(workspace=workspace, items=[(0, {"contact_id": external_id, "event": "Product Added",
                                                            "timestamp": ts, "message_id": f"rt-{run}-{n}-{ts}"})])
            fresh = datetime.fromtimestamp(ts + 1, tz=UTC)
            deadline = time.monotonic() + 120
            while not ContactScore.objects.filter(contact__workspace=workspace, contact__external_id=external_id,
                                                  is_current=True, as_of__gte=fresh).exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("no fresh score within 120 s: see var/bench-scoring-worker.log")
                time.sleep(0.02)
            if n >= 3:  # the first ones meet cold worker children
                latencies.append(time.perf_counter() - t0)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log.close()
    return {"event_to_score_s": quantiles(latencies), "debounce_s": settings.PREDICTION_RESCORE_DELAY_SECONDS,
            "load": [started, load()]}


def measure(workspace, key: str, *, clients: int = 20, http_workers: int = 0, skip_http: bool = False,
            skip_worker: bool = False) -> tuple[dict, list[tuple[str, bool]]]:
    """Every latency figure (printed as measured) and the issue's targets, met or not."""
    figures: dict = {}
    figures["rescore"] = r = rescore_in_process(workspace)
    print(f"one contact rescored in-process: {spread(r['rescore_ms'])} (of which scoring without the segment "
          f"refresh: {spread(r['scoring_alone_ms'])}); bare forward pass of the same contact: "
          f"{spread(r['forward_ms'])} (load {r['load'][0]} -> {r['load'][1]}); CPU per call: "
          f"{spread(r['rescore_cpu_ms'])} (scoring alone {spread(r['scoring_alone_cpu_ms'])})", flush=True)
    figures["explain"] = e = explanations(workspace)
    print(f"one explanation (numpy expected gradients, stored): {spread(e['explain_ms'])}; SHAP GradientExplainer "
          f"on Keras, explainer kept: {spread(e['shap_keras_ms'])}; bare forward pass: {spread(e['forward_ms'])} "
          f"(load {e['load'][0]} -> {e['load'][1]}); CPU per explanation: {spread(e['explain_cpu_ms'])}", flush=True)
    targets = [("one contact rescored p95 <= 30 ms", r["rescore_ms"]["p95"] <= 30),
               ("one explanation p95 <= 100 ms", e["explain_ms"]["p95"] <= 100)]
    if not skip_http:
        figures["predict_http"] = h = predict_http(workspace, key, clients, http_workers)
        print(f"POST /api/v1/predict ({h['events']} events, {clients} clients): {spread(h['predict_ms'])}, "
              f"{h['predict_per_s']:.0f}/s; GET /healthz, same clients and server: {spread(h['healthz_ms'])}, "
              f"{h['healthz_per_s']:.0f}/s (load {h['load'][0]} -> {h['load'][1]}); CPU per request, server + "
              f"load generator: /predict {h['predict_server_cpu_ms']:.2f} + {h['predict_client_cpu_ms']:.2f} ms, "
              f"/healthz {h['healthz_server_cpu_ms']:.2f} + {h['healthz_client_cpu_ms']:.2f} ms", flush=True)
        targets.append((f"POST /predict p95 <= 50 ms at {clients} clients", h["predict_ms"]["p95"] <= 50))
    if not skip_worker:
        figures["event_to_score"] = w = event_to_score(workspace)
        print(f"event to fresh score through a worker: {spread(w['event_to_score_s'], 's')}; the debounce alone: "
              f"{w['debounce_s']:g} s (load {w['load'][0]} -> {w['load'][1]})", flush=True)
        targets.append(("event to fresh score p95 <= 5 s", w["event_to_score_s"]["p95"] <= 5))
    return figures, targets


def main(argv=None) -> int:
    from benchmarks import scoring
    from benchmarks.ingest import scratch_database, setup_django

    args = parse_args(argv)
    if args.reuse:
        setup_django()
        from funnel_site.events.models import ApiKey, Workspace
        from funnel_site.events.services import api_key_create

        workspace = Workspace.objects.get(slug=SLUG)
        ApiKey.objects.filter(workspace=workspace, name="bench-latency").delete()
        key = api_key_create(workspace=workspace, name="bench-latency")[1]
    else:
        scratch_database()
        setup_django()
        data = scoring.make_data(args.contacts, args.events)
        workspace, key = data["workspace"], data["key"]
        scoring.train(workspace)
        e2e = scoring.end_to_end(args.contacts)
        print(f"set up: {args.contacts:,} contacts, {data['events']:,} events, scored {e2e['scored']:,}", flush=True)
    figures, targets = measure(workspace, key, clients=args.clients, http_workers=args.http_workers,
                               skip_http=args.skip_http, skip_worker=args.skip_worker)
    return report(figures, targets, as_json=args.json)


def report(figures: dict, targets: list[tuple[str, bool]], *, as_json: bool) -> int:
    """Print each target met or missed (and the figures as JSON); the exit status: 0 when all are met."""
    for name, met in targets:
        print(f"  {'met   ' if met else 'MISSED'} {name}")
    if as_json:
        print(json.dumps(figures, default=str))
    return 0 if all(met for _, met in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
