"""Integrations: a large segment synced to a local fake destination, the shared rate limit across
processes, and signed inbound webhooks at a steady rate against gunicorn.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_integrations \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/12 python -m benchmarks.integrations [--quick]

DATABASE_URL names a scratch database (dropped, created, migrated; its name starts with "bench").

1. Sync throughput: a segment of --members contacts synced by the engine (plan, outbox, batches of
   1,000, delivered state) to the outbound webhook adapter, against a fake receiver running in its
   own process; beside it, the baseline: the same batches signed and POSTed by a bare loop (no
   database), the transport's floor.
2. Rate limit: two processes run two syncs to destinations of the same account at once, with a
   limit of --rate requests/s (burst --burst); the receiver's arrival times are checked for every
   window length W in 0.5-10 s: calls in any window <= burst + rate * W.
3. Inbound webhooks: Standard Webhooks requests signed with the `standardwebhooks` package (signed
   before the clock starts, so the load generator's own HMACs do not sit in the measured path),
   sent open-loop at --webhook-rate for --webhook-seconds to gunicorn started with the product's
   gunicorn.conf.py (latency measured from each request's scheduled time, so a stall is not
   hidden). Beside it, in the same server and at the same rate: GET /healthz, and the baseline,
   a bare endpoint doing only the webhook's durable insert (benchmarks/inbound_wsgi.py). Then:
   stored rows == accepted answers, one row per webhook-id; the load average before and after.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchmarks.ingest import child_env, free_port, scratch_database, setup_django

ROOT = Path(__file__).resolve().parents[1]
SECRET = "whsec_" + base64.b64encode(b"benchmark-secret-bytes-24").decode()


def _say(message: str) -> None:
    """Progress on stderr: each phase can take minutes, and a silent run cannot be told from a hung one."""
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.integrations", description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s of the rate-limit step")
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--rate-members", type=int, default=4_000, help="members per sync in the rate-limit step")
    parser.add_argument("--rate-batch", type=int, default=20, help="small batches, so the limit (not the "
                        "database work per batch) decides the pace")
    parser.add_argument("--webhook-rate", type=float, default=300.0)
    parser.add_argument("--webhook-seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (gthread when > 1)")
    parser.add_argument("--baseline-seconds", type=float, default=None,
                        help="seconds of each baseline load (default: as long as the webhooks' load, so a "
                        "database stall is as likely to fall in a baseline's minute as in the measured one)")
    parser.add_argument("--quick", action="store_true", help="20,000 members, 15 s of webhooks")
    parser.add_argument("--only", choices=["sync", "rate", "inbound"], help="run one part")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.members, args.rate_members, args.webhook_seconds = 20_000, 2_000, 15.0
    return args


# ----------------------------------------------------------------------------- fake receiver


def _receiver(port_queue) -> None:
    arrivals: list[tuple[float, int, str]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            at = time.time()
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            n = raw.count(b'"event":')
            with lock:
                arrivals.append((at, n, self.headers.get("webhook-id", "")))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def do_GET(self):
            with lock:
                body = json.dumps(arrivals).encode()
                if self.path == "/reset":
                    arrivals.clear()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_queue.put(server.server_address[1])
    server.serve_forever()


def _get(port: int, path: str):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    return json.loads(conn.getresponse().read())


# ----------------------------------------------------------------------------- data


def make_segment(workspace, name: str, count: int, prefix: str):
    from django.utils import timezone

    from funnel_site.events.models import Contact
    from predictions.models import Segment, SegmentMembership

    seg = Segment.objects.create(workspace=workspace, name=name, definition={})
    now = timezone.now()
    for start in range(0, count, 10_000):
        contacts = Contact.objects.bulk_create([
            Contact(workspace=workspace, external_id=f"{prefix}{i}", email=f"{prefix}{i}@example.com",
                    traits={"plan": "pro", "country": "NL"}) for i in range(start, min(count, start + 10_000))])
        SegmentMembership.objects.bulk_create([
            SegmentMembership(workspace=workspace, segment=seg, contact=c, entered_at=now) for c in contacts])
    return seg


def make_sync(workspace, seg, port: int, name: str, **settings):
    from integrations.services import destination_create, sync_create

    dest = destination_create(workspace=workspace, kind="webhook", name=name,
                              settings={"api_base": f"http://127.0.0.1:{port}/in", **settings},
                              credentials={"secret": SECRET})
    return sync_create(workspace=workspace, segment=seg.pk, destination=dest.pk,
                       field_mapping={"plan": "trait:plan", "country": "trait:country"})


def run_sync(sync_id: int) -> dict:
    from integrations.engine import sync_run_execute
    from integrations.models import Sync
    from integrations.services import sync_run_request

    run, _ = sync_run_request(sync=Sync.objects.get(pk=sync_id), enqueue=False)
    started = time.monotonic()
    run = sync_run_execute(run_id=run.pk)
    return {"status": run.status, "added": run.added, "failed": run.failed, "seconds": time.monotonic() - started}


def baseline_post(port: int, count: int, batch: int) -> float:
    """The same payloads, signed and POSTed by a bare loop: no database, no diff, no outbox."""
    import requests
    from standardwebhooks.webhooks import Webhook

    hook = Webhook(SECRET)
    session = requests.Session()
    started = time.monotonic()
    for start in range(0, count, batch):
        events = [{"event": "Audience Entered", "contact_id": f"b{i}", "email": f"b{i}@example.com",
                   "traits": {"plan": "pro", "country": "NL"}, "segment": "base", "segment_id": 1}
                  for i in range(start, min(count, start + batch))]
        now = datetime.now(UTC)
        body = json.dumps({"type": "audience.changed", "timestamp": now.isoformat(), "data": {"events": events}})
        msg_id = f"msg_{start}"
        session.post(f"http://127.0.0.1:{port}/in", data=body.encode(), timeout=30, headers={
            "Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": hook.sign(msg_id, now, body)}).raise_for_status()
    return time.monotonic() - started


def _child_sync(sync_id: int, out) -> None:
    from django.db import connections

    connections.close_all()
    out.put(run_sync(sync_id))


def max_in_window(times: list[float], window: float) -> int:
    """The most calls that started within any interval of `window` seconds."""
    best, j = 0, 0
    for i in range(len(times)):
        while times[i] - times[j] > window:
            j += 1
        best = max(best, i - j + 1)
    return best


# ----------------------------------------------------------------------------- inbound


def load(port: int, rate: float, seconds: float, make_request, threads: int = 24) -> dict:
    """Open-loop load: request k is due at t0 + k / rate; latency counts from when it was due."""
    total = int(rate * seconds)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    t0 = time.monotonic() + 0.5
    counter = iter(range(total))
    counter_lock = threading.Lock()

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with counter_lock:
                k = next(counter, None)
            if k is None:
                return
            due = t0 + k / rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            method, path, body, headers = make_request(k)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status = 0
            done = time.monotonic()
            with lock:
                latencies.append(done - due)
                statuses[status] = statuses.get(status, 0) + 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - t0
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {"requests": total, "achieved_rate": total / elapsed, "p50_ms": q[49] * 1000, "p95_ms": q[94] * 1000,
            "p99_ms": q[98] * 1000,
            "max_ms": latencies[-1] * 1000, "statuses": statuses}


def start_gunicorn(workers: int, threads: int, log_path: Path) -> tuple[subprocess.Popen, int]:
    """gunicorn with the product's gunicorn.conf.py on a free loopback port, `workers` x `threads`,
    serving the product plus the baseline route (benchmarks/inbound_wsgi.py)."""
    port = free_port()
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    env = {**child_env(), "WEB_CONCURRENCY": str(workers), "GUNICORN_THREADS": str(threads),
           "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_KEEPALIVE": "30", "GUNICORN_MAX_REQUESTS": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "benchmarks.inbound_wsgi:application"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600  # with preload the master loads the funnel kernels first
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{log_path.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("gunicorn did not answer /healthz within 600 s")


def webhook_requests(slug: str, count: int, prefix: str = "msg_bench_"):
    """`count` signed requests, made up front (a 60 s run stays well inside the 5-minute tolerance)."""
    from standardwebhooks.webhooks import Webhook

    hook = Webhook(SECRET)
    made = []
    for k in range(count):
        now = datetime.now(UTC)
        body = json.dumps({"type": "event", "data": {"contact_id": f"in{k % 5000}", "event": "Email Opened",
                                                     "timestamp": now.isoformat()}})
        msg_id = f"{prefix}{k}"
        made.append(("POST", f"/webhooks/standard/{slug}/", body, {
            "Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": hook.sign(msg_id, now, body)}))
    return made.__getitem__


def bare_insert_requests(workspace_id: int):
    """The baseline: the same body, stored by the bare route (one insert, nothing else)."""
    def make(k: int):
        body = json.dumps({"type": "event", "data": {"contact_id": f"in{k % 5000}", "event": "Email Opened"}})
        return "POST", "/__bench/insert", body, {"Content-Type": "application/json", "webhook-id": f"bare_{k}",
                                                  "X-Workspace-Id": str(workspace_id)}

    return make


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    args = parse_args(argv)
    scratch_database()
    setup_django()
    from funnel_site.events.services import workspace_create

    ctx = multiprocessing.get_context("fork")
    ports = ctx.Queue()
    receiver = ctx.Process(target=_receiver, args=(ports,), daemon=True)
    receiver.start()
    port = ports.get(timeout=30)
    out: dict = {"members": args.members}
    try:
        ws, _ = workspace_create(slug="bench-int")
        _say("making the segment")
        t = time.monotonic()
        seg = make_segment(ws, "big", args.members if args.only in (None, "sync") else 0, "m")
        out["setup_seconds"] = round(time.monotonic() - t, 1)

        if args.only in (None, "sync", "rate"):
            sync_parts(ws, seg, port, args, out, ctx)
        if args.only in (None, "inbound"):
            inbound_part(ws, args, out)
    finally:
        receiver.kill()
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        report(out, args)
    ok = True
    if "rate_limit" in out:
        ok = ok and out["rate_limit"]["never_exceeded"]
    if "inbound" in out:
        ok = ok and (out["inbound"]["stored_equals_accepted"] and out["inbound"]["p99_ms"] <= 100
                     and out["inbound"]["achieved_rate"] >= 0.98 * args.webhook_rate)
    return 0 if ok else 1


def sync_parts(ws, seg, port, args, out, ctx) -> None:
    """Steps 1 and 2: engine throughput beside the bare loop, then the shared limit in 2 processes."""
    if args.only != "rate":
        # 1. engine vs bare loop
        sync = make_sync(ws, seg, port, "unlimited", batch_size=args.batch, rate_limit=1e6, burst=1_000_000)
        _say(f"sync of {args.members:,} members")
        result = run_sync(sync.pk)
        _say("the bare loop baseline")
        received = sum(n for _, n, _ in _get(port, "/reset"))
        base_seconds = baseline_post(port, args.members, args.batch)
        _get(port, "/reset")
        out["sync"] = {**result, "records_per_s": round(result["added"] / result["seconds"]),
                       "received": received, "baseline_records_per_s": round(args.members / base_seconds)}
    if args.rate_members > 0:
        # 2. two processes, one account, one limit
        segs = [make_segment(ws, f"rate{i}", args.rate_members, f"r{i}_") for i in range(2)]
        shared = {"batch_size": args.rate_batch, "rate_limit": args.rate, "burst": args.burst}
        syncs = [make_sync(ws, s, port, f"limited{i}", **shared) for i, s in enumerate(segs)]
        from django.db import connections

        connections.close_all()
        _say("rate limit: two processes, one account")
        results = ctx.Queue()
        procs = [ctx.Process(target=_child_sync, args=(s.pk, results)) for s in syncs]
        t = time.monotonic()
        for p in procs:
            p.start()
        runs = [results.get(timeout=3600) for _ in procs]
        for p in procs:
            p.join()
        wall = time.monotonic() - t
        times = sorted(a for a, _, _ in _get(port, "/reset"))
        windows = {}
        for w in (0.5, 1.0, 2.0, 5.0, 10.0):
            seen, allowed = max_in_window(times, w), args.burst + args.rate * w
            windows[str(w)] = {"max_calls": seen, "allowed": allowed, "ok": seen <= allowed + 1e-9}
        out["rate_limit"] = {"rate": args.rate, "burst": args.burst, "calls": len(times), "runs": runs,
                             "achieved_calls_per_s": round(len(times) / wall, 2), "windows": windows,
                             "never_exceeded": all(v["ok"] for v in windows.values()),
                             "backend": "redis" if os.environ.get("CELERY_BROKER_URL", "").startswith("redis") else "file"}



def inbound_part(ws, args, out) -> None:
    """Step 3: signed webhooks at a steady rate against gunicorn; every accepted one stored once."""
    from integrations.models import WebhookDelivery
    from integrations.services import webhook_source_create

    if args.webhook_seconds > 0:
        # 3. inbound webhooks against gunicorn
        webhook_source_create(workspace=ws, source="standard", secret=SECRET)
        logdir = Path(tempfile.mkdtemp())
        signed = webhook_requests(ws.slug, int(args.webhook_rate * args.webhook_seconds))
        _say(f"starting gunicorn (log: {logdir / 'gunicorn.log'})")
        server, http_port = start_gunicorn(args.workers, args.threads, logdir / "gunicorn.log")
        _say("gunicorn answers; warming connections")
        try:
            warm = load(http_port, 50, 2, webhook_requests(ws.slug, 100, prefix="warm_"))  # every thread's connection
            if set(warm["statuses"]) != {200}:  # fail in seconds, not after 18,000 failing requests
                raise RuntimeError(f"the warm-up webhooks were not all accepted ({warm['statuses']}); "
                                   f"gunicorn's log:\n{(logdir / 'gunicorn.log').read_text()[-3000:]}")
            seconds = args.webhook_seconds if args.baseline_seconds is None else args.baseline_seconds
            load_before = os.getloadavg()
            _say(f"baseline GET /healthz, {seconds:.0f} s")
            health = load(http_port, args.webhook_rate, seconds, lambda k: ("GET", "/healthz", None, {}))
            _say(f"baseline bare insert, {seconds:.0f} s")
            bare = load(http_port, args.webhook_rate, seconds, bare_insert_requests(ws.pk))
            _say(f"signed webhooks, {args.webhook_seconds:.0f} s at {args.webhook_rate:.0f}/s")
            inbound = load(http_port, args.webhook_rate, args.webhook_seconds, signed)
            load_after = os.getloadavg()
        finally:
            server.terminate()
            server.wait(timeout=30)
        stored = WebhookDelivery.objects.filter(workspace=ws, provider_id__startswith="msg_bench_")
        accepted = inbound["statuses"].get(200, 0)
        out["inbound"] = {**inbound, "stored": stored.count(),
                          "distinct_ids": stored.values("provider_id").distinct().count(),
                          "stored_equals_accepted": stored.count() == accepted, "healthz_baseline": health,
                          "bare_insert_baseline": bare, "workers": args.workers, "threads": args.threads,
                          "load_average_before": [round(x, 1) for x in load_before],
                          "load_average_after": [round(x, 1) for x in load_after]}
        with_broker = os.environ.get("CELERY_BROKER_URL", "")
        if with_broker.startswith("redis"):
            subprocess.run([sys.executable, "-m", "celery", "-A", "funnel_site", "purge", "-f", "-Q", "ingest"],
                           cwd=ROOT, env=child_env(), capture_output=True)


def report(out: dict, args) -> None:
    s, r, i = out.get("sync"), out.get("rate_limit"), out.get("inbound")
    if s or r:
        _report_sync(out, s, r, args)
    if i:
        _report_inbound(i, args)


def _report_sync(out, s, r, args) -> None:
    if s:
        print(f"sync of {out['members']:,} members ({args.batch}/batch): {s['status']} in {s['seconds']:.1f} s = "
              f"{s['records_per_s']:,} records/s; received {s['received']:,}; bare-loop baseline "
              f"{s['baseline_records_per_s']:,} records/s")
    if r:
        print(f"rate limit {r['rate']}/s burst {r['burst']} ({r['backend']} bucket), 2 processes x "
              f"{args.rate_members:,} members, {args.rate_batch}/call, {r['calls']} calls: "
              f"{r['achieved_calls_per_s']} calls/s; never exceeded: {r['never_exceeded']}")
        for w, v in r["windows"].items():
            print(f"  window {w:>4} s: max {v['max_calls']} calls (allowed {v['allowed']:.0f})")


def _report_inbound(i, args) -> None:
    print(f"gunicorn (gunicorn.conf.py): {args.workers} workers x {args.threads} threads; load average "
          f"{i['load_average_before']} before, {i['load_average_after']} after")
    print(f"inbound webhooks {i['requests']:,} at {i['achieved_rate']:.0f}/s: p50 {i['p50_ms']:.1f} ms, p95 "
          f"{i['p95_ms']:.1f} ms, p99 {i['p99_ms']:.1f} ms, max {i['max_ms']:.0f} ms, statuses {i['statuses']}; "
          f"stored {i['stored']:,} (distinct ids {i['distinct_ids']:,}), equals accepted: {i['stored_equals_accepted']}")
    for label, key in (("bare insert (same server, same statement)", "bare_insert_baseline"), ("GET /healthz", "healthz_baseline")):
        b = i[key]
        print(f"  baseline {label} at {b['achieved_rate']:.0f}/s: p50 {b['p50_ms']:.1f} ms, p95 {b['p95_ms']:.1f} ms, "
              f"p99 {b['p99_ms']:.1f} ms, statuses {b['statuses']}")


if __name__ == "__main__":
    sys.exit(main())
