"""Ingest throughput on PostgreSQL, each path beside a raw COPY of the same rows, in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_ingest python -m benchmarks.ingest [--quick]

DATABASE_URL names a scratch database: it is dropped, created and migrated by this command, so its
name must start with ``bench``. Measured, each on an emptied events table:

1. ``COPY``: the rows, already formatted as COPY text, into ``events_event`` in one transaction
   (contacts and campaigns created beforehand). The machine's limit, the baseline.
2. HTTP: ``POST /api/v1/events`` in batches of 10,000 to a gunicorn started here on a free
   loopback port, from a client with a few concurrent connections (bodies built beforehand).
3. File import: ``manage.py import_events`` of a canonical CSV written here, one run per size of
   ``--rows``; wall time and the peak RSS of the process (its ``wait4`` rusage).

Rows are synthetic (``funnel_site.events.synthetic``). See benchmarks/README.md and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import http.client
import os
import queue
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
CSV_FIELDS = ("contact_id", "event", "timestamp", "campaign", "channel", "value", "message_id", "properties")
TARGETS = {"http_rate": 20_000, "http_ratio": 0.30, "file_rate": 50_000}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="1000000,10000000",
                        help="comma-separated file sizes for the import (the first is also the COPY rows)")
    parser.add_argument("--http-events", type=int, default=300_000, help="events sent over HTTP")
    parser.add_argument("--batch", type=int, default=10_000, help="events per HTTP request")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent client connections")
    parser.add_argument("--gzip", action="store_true", help="send gzip request bodies")
    parser.add_argument("--repeat", type=int, default=1, help="runs of COPY and HTTP; the median is shown")
    parser.add_argument("--import-jobs", default="auto,1",
                        help="import_events --jobs: the first value for every file size, the others for the "
                             "first size only (auto: the command's default, one process per core)")
    parser.add_argument("--copy-connections", type=int, default=os.cpu_count() or 2,
                        help="also COPY over this many connections at once (1: skip)")
    parser.add_argument("--quick", action="store_true", help="small sizes: --rows 100000,400000 --http-events 100000")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per measured step")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.http_events = "100000,400000", min(args.http_events, 100_000)
    args.sizes = [int(s) for s in args.rows.split(",") if s.strip()]
    args.jobs = [j.strip() for j in args.import_jobs.split(",") if j.strip()]
    if not args.jobs or any(j != "auto" and not (j.isdigit() and int(j) > 0) for j in args.jobs):
        parser.error("--import-jobs takes 'auto' or positive numbers, comma-separated")
    if not args.sizes or min(args.sizes) <= 0:
        parser.error("--rows needs positive sizes")
    return args


# --------------------------------------------------------------------------- the scratch database


def is_scratch_name(name: str) -> bool:
    """A database a benchmark may drop: `bench...`, or `<prefix>_bench...` (a developer sharing the
    server prefixes their databases)."""
    return name.startswith("bench") or name.split("_", 1)[-1].startswith("bench")


def scratch_database() -> str:
    """DATABASE_URL, checked to be a PostgreSQL database named bench*, dropped, created and migrated."""
    url = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if parts.scheme not in ("postgres", "postgresql", "pgsql") or not is_scratch_name(name):
        sys.exit("DATABASE_URL must name a scratch PostgreSQL database whose name starts with 'bench' (or "
                 "'<prefix>_bench'), e.g. postgres://postgres@127.0.0.1:5432/bench_ingest (it is dropped and "
                 "re-created)")
    import psycopg

    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=child_env(), check=True)
    return url


# One key for the benchmark's own process and every server it starts: the server refuses the
# development SECRET_KEY with DEBUG off, and what the parent encrypts (webhook secrets, destination
# credentials: a key derived from SECRET_KEY) must decrypt in the children.
_BENCH_SECRET_KEY = secrets.token_urlsafe(50)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(DJANGO_SETTINGS_MODULE="funnel_site.settings", PYTHONPATH=str(ROOT), LOG_LEVEL="WARNING")
    env.setdefault("SECRET_KEY", _BENCH_SECRET_KEY)
    env.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
    return env


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "funnel_site.settings")
    os.environ.setdefault("SECRET_KEY", _BENCH_SECRET_KEY)  # the same as the servers' (child_env)
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()


def reset_tables() -> None:
    """Empty the event store, so every measurement starts from the same (empty) table."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE events_event, events_contact, events_campaign, events_apikey, "
                       "events_stagemapping, events_membership, events_workspace CASCADE")
        cursor.execute("VACUUM ANALYZE events_event")
        # start each run without a pending checkpoint; superuser only, else the figures are noisier
        with contextlib.suppress(Exception):
            cursor.execute("CHECKPOINT")


# --------------------------------------------------------------------------- the rows


def synthetic_rows(count: int):
    """``count`` canonical rows (tuples in CSV_FIELDS order, ISO timestamps) of synthetic behaviour."""
    import orjson

    from funnel_site.events.synthetic import generate_rows

    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=91)
    iso = {}
    for contact_id, event, ts, campaign, channel, value, message_id, properties, _, _ in islice(
        generate_rows(contacts=count, seed=7, start=start, days=90), count
    ):
        day = ts - ts % 86400
        prefix = iso.get(day)
        if prefix is None:
            prefix = iso[day] = datetime.fromtimestamp(day, UTC).strftime("%Y-%m-%dT")
        s = ts % 86400
        stamp = f"{prefix}{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}Z"
        yield (contact_id, event, stamp, campaign or "", channel or "", "" if value is None else value,
               message_id, orjson.dumps(properties).decode() if properties else "")


def write_csv(path: Path, count: int) -> float:
    started = time.perf_counter()
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_FIELDS)
        writer.writerows(synthetic_rows(count))
    return time.perf_counter() - started


def read_csv(path: Path, count: int | None = None):
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        yield from islice(reader, count)


# --------------------------------------------------------------------------- 1. COPY


def measure_copy(csv_path: Path, count: int, workdir: Path, connections: int = 1) -> dict:
    """COPY of the CSV's rows, pre-formatted as COPY text, into events_event, over 1 or more connections."""
    from django.db import transaction

    from funnel_site.events import store
    from funnel_site.events.services import workspace_create

    workspace, _ = workspace_create(slug=f"bench-copy-{connections}")
    external, campaigns = {}, {}
    for row in read_csv(csv_path, count):
        external[row[0]] = None
        if row[3]:
            campaigns.setdefault(row[3], row[4])
    with transaction.atomic():
        contact_ids = {k: v[0] for k, v in store.contacts_ensure(
            workspace_id=workspace.id, external_ids=list(external)).items()}
        campaign_ids = store.campaigns_ensure(workspace_id=workspace.id, keys=list(campaigns), channels=campaigns)
    now = datetime.now(UTC)
    text_path = workdir / "copy.txt"
    with open(text_path, "w") as out:
        batch = []
        for row in read_csv(csv_path, count):
            batch.append((workspace.id, contact_ids[row[0]], row[1],
                          datetime.fromisoformat(row[2]), now, campaign_ids.get(row[3]), row[4],
                          float(row[5]) if row[5] else None, row[7] or "{}", row[6]))
            if len(batch) == 50_000:
                out.write(store._copy_text(batch))
                batch.clear()
        out.write(store._copy_text(batch))
    seconds = copy_file(text_path, connections)
    text_path.unlink()
    return {"events": count, "seconds": seconds, "rate": count / seconds, "connections": connections}


def copy_file(text_path: Path, connections: int) -> float:
    """COPY the text file into events_event: in one transaction, or in ``connections`` contiguous
    parts at once (threads, one connection each: psycopg sends while another thread formats). Seconds."""
    from django.db import connection, transaction

    from funnel_site.events import store

    cols = ", ".join(f'"{c}"' for c in store.EVENT_COLUMNS)
    size = text_path.stat().st_size
    with open(text_path, "rb") as fh:  # part boundaries on line ends
        cuts = [0]
        for k in range(1, connections):
            fh.seek(size * k // connections)
            fh.readline()
            cuts.append(fh.tell())
        cuts.append(size)
    failures: list[BaseException] = []

    def copy_part(start: int, end: int) -> None:
        try:
            with (
                transaction.atomic(),
                connection.cursor() as cursor,
                cursor.cursor.copy(f"COPY events_event ({cols}) FROM STDIN") as copy,
                open(text_path, "rb") as fh,
            ):
                fh.seek(start)
                left = end - start
                while left > 0 and (chunk := fh.read(min(1 << 20, left))):
                    copy.write(chunk)
                    left -= len(chunk)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            failures.append(exc)
        finally:
            if threading.current_thread() is not threading.main_thread():
                connection.close()

    started = time.perf_counter()
    if connections == 1:
        copy_part(0, size)
    else:
        threads = [threading.Thread(target=copy_part, args=(a, b)) for a, b in zip(cuts, cuts[1:], strict=False)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise failures[0]
    return seconds


# --------------------------------------------------------------------------- 2. HTTP


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(workers: int, log_path: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "funnel_site.wsgi", "--workers", str(workers), "--bind",
         f"127.0.0.1:{port}", "--timeout", "300", "--log-level", "warning"],
        cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
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
    raise RuntimeError("gunicorn did not answer /healthz within 60 s")


def http_bodies(csv_path: Path, count: int, batch: int, compress: bool) -> list[bytes]:
    import orjson

    bodies, items = [], []
    for row in read_csv(csv_path, count):
        item = {"contact_id": row[0], "event": row[1], "timestamp": row[2], "message_id": row[6]}
        if row[3]:
            item["campaign"] = row[3]
        if row[4]:
            item["channel"] = row[4]
        if row[5]:
            item["value"] = float(row[5])
        if row[7]:
            item["properties"] = orjson.loads(row[7])
        items.append(item)
        if len(items) == batch:
            bodies.append(orjson.dumps(items))
            items = []
    if items:
        bodies.append(orjson.dumps(items))
    return [gzip.compress(b, compresslevel=1) for b in bodies] if compress else bodies


def post_all(port: int, key: str, bodies: list[bytes], concurrency: int, compress: bool,
             timeout: float) -> tuple[float, int, list[str]]:
    """Send the bodies over `concurrency` keep-alive connections; (seconds, events imported, errors)."""
    import orjson

    work: queue.Queue = queue.Queue()
    for body in bodies:
        work.put(body)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if compress:
        headers["Content-Encoding"] = "gzip"
    imported, errors, lock = [0], [], threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                break
            try:
                conn.request("POST", "/api/v1/events", body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except OSError as exc:
                with lock:
                    errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
                continue
            with lock:
                if resp.status == 200:
                    imported[0] += orjson.loads(data)["imported"]
                else:
                    errors.append(f"HTTP {resp.status}: {data[:200]!r}")
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return time.perf_counter() - started, imported[0], errors


def measure_http(csv_path: Path, args: argparse.Namespace, workdir: Path, run: int) -> dict:
    from funnel_site.events.services import workspace_create

    _, key = workspace_create(slug=f"bench-http-{run}")
    _, warm_key = workspace_create(slug=f"bench-warm-{run}")
    bodies = http_bodies(csv_path, args.http_events, args.batch, args.gzip)
    proc, port = start_server(args.workers, workdir / "gunicorn.log")
    try:
        # warm every worker (imports, connections) in another workspace, outside the timing
        warm = http_bodies(csv_path, 200 * args.workers * 2, 200, args.gzip)
        post_all(port, warm_key, warm, args.workers * 2, args.gzip, args.timeout)
        seconds, imported, errors = post_all(port, key, bodies, args.concurrency, args.gzip, args.timeout)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    sent = sum(1 for _ in read_csv(csv_path, args.http_events))
    if errors or imported != sent:
        raise RuntimeError(f"HTTP run failed: imported {imported} of {sent}; errors: {errors[:5]}")
    return {"events": sent, "seconds": seconds, "rate": sent / seconds, "requests": len(bodies)}


# --------------------------------------------------------------------------- 3. file import


def measure_import(csv_path: Path, count: int, slug: str, timeout: float, jobs: str = "auto") -> dict:
    """Run manage.py import_events as a child; wall time and peak RSS from its rusage (the largest
    of its processes: the parts of a parallel import are its children)."""
    import orjson

    from funnel_site.events.services import workspace_create

    workspace_create(slug=slug)
    out = tempfile.TemporaryFile()  # noqa: SIM115 - read after the child exits
    started = time.perf_counter()
    command = [sys.executable, "manage.py", "import_events", str(csv_path), "--workspace", slug, "--json"]
    if jobs != "auto":
        command += ["--jobs", jobs]
    errors = tempfile.TemporaryFile()  # noqa: SIM115 - a file, not a pipe: the child never blocks on it
    proc = subprocess.Popen(command, cwd=ROOT, env=child_env(), stdout=out, stderr=errors)
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    output = out.read().decode(errors="replace")
    errors.seek(0)
    log = errors.read().decode(errors="replace")
    if proc.returncode != 0:
        output += log
        raise RuntimeError(f"import_events failed ({proc.returncode}):\n{output[-3000:]}")
    summary = orjson.loads(output.strip().splitlines()[-1])
    if summary["imported"] != count:
        raise RuntimeError(f"import_events imported {summary['imported']} of {count}: {output[-2000:]}")
    return {"events": count, "seconds": seconds, "rate": count / seconds, "jobs": jobs,
            "processes": summary.get("processes", 1),
            "peak_rss_mb": usage.ru_maxrss / 1024, "cpu_seconds": usage.ru_utime + usage.ru_stime}


# --------------------------------------------------------------------------- report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scratch_database()
    setup_django()
    from django.db import connection

    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        workdir = Path(tmp)
        files = {}
        for size in args.sizes:
            files[size] = workdir / f"events_{size}.csv"
            took = write_csv(files[size], size)
            print(f"wrote {files[size].name}: {size:,} rows, {files[size].stat().st_size / 1e6:.0f} MB "
                  f"in {took:.0f}s", file=sys.stderr)
        first = files[args.sizes[0]]
        copies, parallel_copies, https = [], [], []
        for run in range(args.repeat):
            reset_tables()
            copies.append(measure_copy(first, args.sizes[0], workdir))
            print(f"COPY run {run + 1}: {copies[-1]['rate']:,.0f} rows/s", file=sys.stderr)
            if args.copy_connections > 1:
                reset_tables()
                parallel_copies.append(measure_copy(first, args.sizes[0], workdir, args.copy_connections))
                print(f"COPY over {args.copy_connections} connections run {run + 1}: "
                      f"{parallel_copies[-1]['rate']:,.0f} rows/s", file=sys.stderr)
            reset_tables()
            https.append(measure_http(first, args, workdir, run))
            print(f"HTTP run {run + 1}: {https[-1]['rate']:,.0f} events/s", file=sys.stderr)
        imports = []
        plan = [(size, args.jobs[0]) for size in args.sizes] + [(args.sizes[0], j) for j in args.jobs[1:]]
        for size, jobs in plan:
            reset_tables()
            imports.append(measure_import(files[size], size, f"bench-file-{size}-{jobs}", args.timeout, jobs))
            print(f"import {size:,} (--jobs {jobs}: {imports[-1]['processes']} processes): "
                  f"{imports[-1]['rate']:,.0f} events/s, peak RSS {imports[-1]['peak_rss_mb']:.0f} MB",
                  file=sys.stderr)
        connection.close()

    copy_rate = statistics.median(c["rate"] for c in copies)
    http_rate = statistics.median(h["rate"] for h in https)
    rows = [("raw COPY into events_event (baseline)", args.sizes[0], copy_rate, "")]
    if parallel_copies:
        rows.append((f"raw COPY over {args.copy_connections} connections at once", args.sizes[0],
                     statistics.median(c["rate"] for c in parallel_copies), ""))
    rows.append((f"HTTP POST /api/v1/events ({args.workers} workers, {args.concurrency} conns"
                 f"{', gzip' if args.gzip else ''})", args.http_events, http_rate, ""))
    for result in imports:
        rows.append((f"import_events CSV, {result['events']:,} rows, {result['processes']} process"
                     f"{'es' if result['processes'] > 1 else ''}", result["events"], result["rate"],
                     f"{result['peak_rss_mb']:.0f} MB"))
    print()
    print(f"{'path':<58} {'events':>11} {'events/s':>10} {'of COPY':>8} {'peak RSS':>9}")
    print("-" * 100)
    for label, events, rate, rss in rows:
        print(f"{label:<58} {events:>11,} {rate:>10,.0f} {rate / copy_rate:>8.0%} {rss:>9}")
    print()
    every_size = [r for r in imports if r["jobs"] == args.jobs[0]]  # the first --import-jobs value
    file_rate = min(r["rate"] for r in every_size)
    rss = [r["peak_rss_mb"] for r in every_size]
    checks = [
        (f"bulk HTTP >= {TARGETS['http_rate']:,} events/s", http_rate >= TARGETS["http_rate"]),
        (f"bulk HTTP >= {TARGETS['http_ratio']:.0%} of COPY", http_rate >= TARGETS["http_ratio"] * copy_rate),
        (f"file import >= {TARGETS['file_rate']:,} events/s (every size, --jobs {args.jobs[0]})",
         file_rate >= TARGETS["file_rate"]),
        ("peak RSS flat (largest file within 1.25x of the smallest)", max(rss) <= 1.25 * min(rss)),
    ]
    for label, ok in checks:
        print(f"  [{'met' if ok else 'MISSED'}] {label}")
    print(f"  (2 CPU cores here: {os.cpu_count()} seen; load average {os.getloadavg()[0]:.1f}; "
          f"benchmark process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    if args.json:
        import orjson

        print(orjson.dumps({"copy": copies, "parallel_copy": parallel_copies, "http": https, "import": imports,
                            "checks": {label: ok for label, ok in checks}}).decode())
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
