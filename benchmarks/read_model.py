"""The read model on PostgreSQL: cold start with and without the snapshot on disk, refresh, memory.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_readmodel python -m benchmarks.read_model \
        [--events 1000000 --contacts 100000] [--new-events 10000] [--reuse]

DATABASE_URL names a scratch database whose name starts with ``bench`` (default
``bench_readmodel``); it is dropped, created and migrated unless ``--reuse`` finds it loaded with
the same sizes. Rows are benchmarks/funnel.py's synthetic ones (its generator, a binary COPY into
an unlogged staging table, one INSERT ... SELECT): not the ingestion path, so the workspace has no
ingest log and the first reader logs its events once (`ingest_log_bootstrap`), as for a database
that predates the log. New events for the refresh figure do go through `events_ingest`.

Every "fresh process" figure is a child process (`python -m benchmarks.read_model --child ...`)
that sets Django up, runs the 5-step funnel through `funnels.selectors.funnel_query` (cache off)
and reports its timings and /proc/self/smaps_rollup. Printed:

- cold first query of a fresh process without snapshots (READ_MODEL_DIR empty: every event read
  from PostgreSQL, the pre-snapshot behaviour) and with the snapshot on disk (map + checksum);
  each split into bringing the read model up to date, the first query, and a second (warm) one;
- the first build of the snapshot (one full read from PostgreSQL plus the write);
- the refresh after N new events (log tail read, merged into a new version on disk), and what a
  fresh process then pays;
- a second process serving the same workspace while the first is alive: RSS, PSS and USS (private
  pages: what it adds), beside an idle Django process with the same imports;
- peak RSS (VmHWM) of every process;
- what the log costs ingestion: 3 writer threads with and without its statements, alternated;
- the warm 5-step funnel (median), its engine time, and on the same rows the bare compiled state
  machine and DuckDB's ASOF-join query (`benchmarks/funnel_baselines.py`), with the load average.

A fresh process with the snapshot is run twice: kernels loaded by its first query (no warm-up),
and warmed at start in a thread as web and worker processes do (`FunnelsConfig.ready`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import funnel as base

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bench_readmodel"
FIVE = {"steps": base.FIVE_STEPS, "window": "14d", "order": "sequential"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.read_model", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--new-events", type=int, default=10_000, help="events ingested before the refresh figure")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5, help="warm runs of the funnel; the median is shown")
    parser.add_argument("--reuse", action="store_true", help="keep the scratch database when already loaded")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--snapshot-dir", help="keep the snapshots in this folder (with --reuse: a snapshot written "
                        "by an earlier run is mapped, not rebuilt); default a temporary folder")
    parser.add_argument("--skip-no-snapshot", action="store_true",
                        help="skip the fresh process without snapshots (every event read from PostgreSQL: minutes)")
    parser.add_argument("--child", choices=["query", "idle"], help=argparse.SUPPRESS)
    parser.add_argument("--hold", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.events <= 0 or args.contacts <= 0 or args.contacts > args.events:
        parser.error("--events and --contacts must be positive, with at most one contact per event")
    return args


def memory() -> dict[str, float]:
    """RSS, PSS and USS (private clean + dirty) of this process in MB, from /proc/self/smaps_rollup, and
    its peak RSS (VmHWM: ru_maxrss would report the parent's peak, kept across fork and exec)."""
    fields = {}
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                fields[parts[0][:-1]] = int(parts[1]) / 1024
    peak = 0.0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return {"rss_mb": fields.get("Rss", 0.0), "pss_mb": fields.get("Pss", 0.0),
            "uss_mb": fields.get("Private_Clean", 0.0) + fields.get("Private_Dirty", 0.0), "peak_rss_mb": peak}


def child(args: argparse.Namespace) -> int:
    """A fresh process: bring the read model up to date, run the funnel twice, report, maybe wait."""
    started = time.perf_counter()
    if os.environ.get("BENCH_WARM_AT_START") == "1":
        # as a web or worker process starts: FunnelsConfig.ready loads the kernels in a thread
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "funnel_site.settings")
        os.environ["LOG_LEVEL"] = "WARNING"
        os.environ.setdefault("FUNNEL_QUERY_TIMEOUT_SECONDS", "600")
        import django

        django.setup()
    else:
        base.setup_django()  # no warm-up: the first query loads the kernels it needs itself
    from funnel_site.events.columns import workspace_columns
    from funnel_site.events.models import Workspace
    from funnel_site.funnels.engine import funnel_compute  # noqa: F401  (imports, as a web process has)
    from funnel_site.funnels.selectors import funnel_query
    from funnel_site.funnels.spec import funnel_spec_parse

    out: dict = {"setup_seconds": time.perf_counter() - started}
    if args.child == "query":
        workspace = Workspace.objects.get(slug=base.WORKSPACE)
        started = time.perf_counter()
        cols = workspace_columns(workspace.id)
        out["read_model_seconds"] = time.perf_counter() - started
        out["on_disk"] = cols.on_disk
        out["events"] = cols.size
        spec = funnel_spec_parse(FIVE)
        started = time.perf_counter()
        payload = funnel_query(workspace=workspace, spec=spec, use_cache=False).payload
        out["first_query_seconds"] = time.perf_counter() - started
        out["engine_seconds"] = payload["engine_seconds"]
        started = time.perf_counter()
        payload = funnel_query(workspace=workspace, spec=spec, use_cache=False).payload
        out["second_query_seconds"] = time.perf_counter() - started
        out["counts"] = [s["count"] for s in payload["steps"]]
    out.update(memory())
    print(json.dumps(out), flush=True)
    if args.hold:
        sys.stdin.readline()  # the parent measures another process meanwhile, then releases this one
    return 0


def spawn(kind: str, env: dict, hold: bool = False) -> subprocess.Popen:
    command = [sys.executable, "-m", "benchmarks.read_model", "--child", kind] + (["--hold"] if hold else [])
    return subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def run_child(kind: str, env: dict) -> dict:
    proc = spawn(kind, env)
    output, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"child {kind} failed ({proc.returncode})")
    return json.loads(output.strip().splitlines()[-1])


def ingest_new(workspace, count: int, seed: int) -> float:
    """`count` new events through the ingestion service, in 10,000-event batches; seconds."""
    from funnel_site.events.services import events_ingest

    tag = time.time_ns()  # new events on every run (--reuse keeps the earlier runs' events)
    rng = np.random.default_rng([seed, tag % 2**32])
    started = time.perf_counter()
    for start in range(0, count, 10_000):
        n = min(10_000, count - start)
        items = [(i, {"contact_id": f"b{int(c)}", "event": base.FIVE_STEPS[int(k)],
                      "timestamp": 1_772_000_000 + int(t), "message_id": f"new-{tag}-{start + i}"})
                 for i, (c, k, t) in enumerate(zip(rng.integers(0, 1000, n), rng.integers(0, 5, n),
                                                  rng.integers(0, 86_400, n), strict=True))]
        events_ingest(workspace=workspace, items=items)
    return time.perf_counter() - started


def log_cost(rounds: int = 3) -> dict:
    """Ingest with and without the log's statements, alternated in this process (3 writer threads,
    8 batches of 2,000 events each, a workspace of its own): what logging costs ingestion."""
    import threading

    from django.db import connection

    from funnel_site.events import ingestlog
    from funnel_site.events.services import events_ingest, workspace_create

    workspace, _ = workspace_create(slug=f"log-cost-{time.time_ns()}")
    real = (ingestlog.ingest_log_append, ingestlog.event_id_floor, ingestlog.event_id_ceiling)
    skipped = (lambda **_: 0, lambda: 0, lambda: 0)

    def writers(tag: str) -> float:
        def write(k: int) -> None:
            for r in range(8):
                events_ingest(workspace=workspace, items=[
                    (i, {"contact_id": f"c{k}-{i % 500}", "event": "Page Viewed", "timestamp": 1_767_225_600 + i,
                         "message_id": f"{tag}-{k}-{r}-{i}"}) for i in range(2000)])
            connection.close()

        started = time.perf_counter()
        threads = [threading.Thread(target=write, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - started

    out: dict = {"with_log": [], "without_log": []}
    try:
        for n in range(rounds):
            ingestlog.ingest_log_append, ingestlog.event_id_floor, ingestlog.event_id_ceiling = real
            out["with_log"].append(writers(f"w{n}"))
            ingestlog.ingest_log_append, ingestlog.event_id_floor, ingestlog.event_id_ceiling = skipped
            out["without_log"].append(writers(f"o{n}"))
    finally:
        ingestlog.ingest_log_append, ingestlog.event_id_floor, ingestlog.event_id_ceiling = real
    return out


def warm_and_baselines(workspace, repeat: int) -> dict:
    """In this process (the snapshot mapped): the warm 5-step funnel through `funnel_query` (median
    of `repeat`, cache off), the bare state machine and DuckDB's ASOF-join query on its rows."""
    from benchmarks.funnel_baselines import bare_median, duckdb_median
    from funnel_site.events.columns import workspace_columns
    from funnel_site.funnels.engine.warmup import warm_kernels
    from funnel_site.funnels.inputs import funnel_input_build
    from funnel_site.funnels.spec import funnel_spec_parse

    warm_kernels()
    out = {"warm": base.warm_median(workspace, FIVE, repeat)}
    cols = workspace_columns(workspace.id)
    built = funnel_input_build(workspace_id=workspace.id, definition=funnel_spec_parse(FIVE).definition, cols=cols)
    out["bare"] = bare_median(built.columns, len(base.FIVE_STEPS), 14 * base.DAY_US, repeat)
    names = np.asarray(cols.names, dtype=object)[cols.name]
    out["duckdb"] = duckdb_median(cols.contact, cols.ts, names, base.FIVE_STEPS, 14 * 86_400, min(repeat, 3))
    out["load_average"] = os.getloadavg()
    return out


def _count_events(workspace) -> int:
    from funnel_site.events.models import Event

    return Event.objects.filter(workspace=workspace).count()


def measure(args: argparse.Namespace, snapshot_dir: Path) -> dict:
    from funnel_site.events.columns import column_cache, workspace_columns
    from funnel_site.events.models import Workspace

    env = {**os.environ, "READ_MODEL_DIR": str(snapshot_dir), "LOG_LEVEL": "WARNING"}
    figures: dict = {}
    figures["idle_process"] = run_child("idle", env)
    if not args.skip_no_snapshot:
        figures["cold_without_snapshot"] = run_child("query", {**env, "READ_MODEL_DIR": ""})
    before = {str(p): p.read_text() for p in snapshot_dir.rglob("CURRENT")}
    workspace = Workspace.objects.get(slug=base.WORKSPACE)
    column_cache.clear()
    started = time.perf_counter()
    cols = workspace_columns(workspace.id)  # the first build: a full read from PostgreSQL, then the write
    figures["snapshot_build_seconds"] = time.perf_counter() - started
    figures["snapshot_existed"] = before == {str(p): p.read_text() for p in snapshot_dir.rglob("CURRENT")}
    figures["snapshot_bytes"] = sum(f.stat().st_size for f in snapshot_dir.rglob("*.npy"))
    figures["cold_with_snapshot"] = run_child("query", env)
    figures["cold_with_snapshot_warm_up"] = run_child("query", {**env, "BENCH_WARM_AT_START": "1"})
    figures.update(warm_and_baselines(workspace, args.repeat))
    figures["ingest_seconds"] = ingest_new(workspace, args.new_events, args.seed)
    started = time.perf_counter()
    refreshed = workspace_columns(workspace.id)
    figures["refresh_seconds"] = time.perf_counter() - started
    figures["refresh_events"] = refreshed.size - cols.size
    figures["new_version_same_counts_as_database"] = refreshed.size == _count_events(workspace)
    figures["after_refresh"] = run_child("query", env)
    first = spawn("query", env, hold=True)
    figures["first_process"] = json.loads(first.stdout.readline())
    figures["second_process"] = run_child("query", env)
    first.stdin.write("\n")
    first.stdin.flush()
    first.wait()
    figures["log_cost"] = log_cost()
    figures["parent"] = memory()
    return figures


def report(args: argparse.Namespace, loaded: dict | None, f: dict) -> None:
    def line(label: str, c: dict) -> str:
        return (f"{label:<44} {c['read_model_seconds'] + c['first_query_seconds']:>7.2f}s  (read model "
                f"{c['read_model_seconds']:.2f}s + first query {c['first_query_seconds']:.2f}s, engine "
                f"{c['engine_seconds']:.2f}s; second query {c['second_query_seconds']:.3f}s; "
                f"peak RSS {c['peak_rss_mb']:.0f} MB)")

    print(f"\nread-model benchmark: {args.events:,} events, {args.contacts:,} contacts, PostgreSQL, "
          f"{os.cpu_count()} CPUs, load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if loaded:
        print("load: " + ", ".join(f"{k} {v:.1f}s" for k, v in loaded.items()))
    if "cold_without_snapshot" in f:
        print(line("fresh process, no snapshot (PostgreSQL read)", f["cold_without_snapshot"]))
    build = "snapshot of an earlier run, mapped" if f["snapshot_existed"] else "first build of the snapshot (read + write)"
    print(f"{build:<44} {f['snapshot_build_seconds']:>7.2f}s  "
          f"({f['snapshot_bytes'] / 2**20:.0f} MB on disk)")
    print(line("fresh process, snapshot on disk", f["cold_with_snapshot"]))
    print(line("  the same, kernels warmed at start (web)", f["cold_with_snapshot_warm_up"]))
    print(f"{'':<44}          (Django setup before it: {f['cold_with_snapshot']['setup_seconds']:.2f}s / "
          f"{f['cold_with_snapshot_warm_up']['setup_seconds']:.2f}s)")
    warm, bare, duck = f["warm"], f["bare"], f["duckdb"]
    ratio = warm["seconds"] / bare["seconds"] if bare["seconds"] else float("inf")
    print(f"{'warm 5-step funnel, median (funnel_query)':<44} {warm['seconds']:>7.3f}s  (engine "
          f"{warm['engine_seconds']:.3f}s, fastest {warm['min_seconds']:.3f}s, CPU {warm['cpu_seconds']:.3f}s; "
          f"target <= {base.TARGETS['warm']:g}s: {'ok' if warm['seconds'] <= base.TARGETS['warm'] else 'MISSED'})")
    print(f"{'  bare state machine, same rows':<44} {bare['seconds']:>7.3f}s  (fastest {bare['min_seconds']:.3f}s, "
          f"CPU {bare['cpu_seconds']:.3f}s); warm / bare {ratio:.2f}x (target <= {base.TARGETS['ratio']:g}x)")
    print(f"{'  DuckDB ASOF joins, same rows':<44} {duck['seconds']:>7.3f}s  same counts (query, bare, DuckDB): "
          f"{'yes' if warm['counts'] == bare['counts'] == duck['counts'] else 'NO'} {warm['counts']}; "
          f"load average then {' '.join(f'{x:.1f}' for x in f['load_average'])}")
    print(f"{'refresh after new events (tail + new version)':<44} {f['refresh_seconds']:>7.2f}s  "
          f"({f['refresh_events']:,} events, ingested in {f['ingest_seconds']:.1f}s through events_ingest)")
    print(line("fresh process after the refresh", f["after_refresh"]))
    print(f"the refreshed read model holds every event of the database: "
          f"{'yes' if f['new_version_same_counts_as_database'] else 'NO'}")
    idle, one, two = f["idle_process"], f["first_process"], f["second_process"]
    print(f"memory, MB: {'':<22} {'RSS':>7} {'PSS':>7} {'USS':>7} {'peak RSS':>9}")
    for label, m in (("idle Django process", idle), ("first serving process", one),
                     ("second, while the first is alive", two), ("this (writer) process", f["parent"])):
        print(f"  {label:<32} {m['rss_mb']:>7.0f} {m['pss_mb']:>7.0f} {m['uss_mb']:>7.0f} {m['peak_rss_mb']:>9.0f}")
    print(f"the second process adds {two['uss_mb'] - idle['uss_mb']:.0f} MB of private memory (USS over an idle "
          f"process), {two['rss_mb'] - idle['rss_mb']:.0f} MB of RSS (mapped snapshot pages included, shared)")
    cost = f["log_cost"]
    print(f"ingest, 3 threads x 8 batches x 2,000 events, alternated: with the log "
          f"{' / '.join(f'{x:.2f}' for x in cost['with_log'])}s, without its statements "
          f"{' / '.join(f'{x:.2f}' for x in cost['without_log'])}s")
    same = f.get("cold_without_snapshot", f["cold_with_snapshot"])["counts"] == f["cold_with_snapshot"]["counts"]
    print(f"same counts with and without the snapshot: {'yes' if same else 'NO'}; after the refresh "
          f"{f['after_refresh']['counts']}")
    if args.json:
        print(json.dumps({"events": args.events, "contacts": args.contacts, "load": loaded, **f}, default=str))


def _workspace_sizes(url: str) -> tuple[int, int] | None:
    """Events and contacts of the benchmark's workspace (`log_cost` adds a workspace of its own,
    so counting every row would never find the database reusable after one run)."""
    import psycopg

    try:
        with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM events_event e WHERE e.workspace_id = w.id), "
                "(SELECT count(*) FROM events_contact c WHERE c.workspace_id = w.id) "
                "FROM events_workspace w WHERE w.slug = %s", [base.WORKSPACE]).fetchone()
            return tuple(row) if row else None
    except psycopg.Error:
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    reused = False
    if args.reuse:  # earlier runs added --new-events each: at least --events, and the same contacts
        sizes = _workspace_sizes(os.environ["DATABASE_URL"])
        reused = bool(sizes) and sizes[0] >= args.events and sizes[1] == args.contacts
    if not reused:
        args.reuse = False
        base.prepare_database(args)
    with tempfile.TemporaryDirectory(prefix="readmodel-bench-") as temporary:
        scratch = args.snapshot_dir or temporary
        Path(scratch).mkdir(parents=True, exist_ok=True)
        os.environ["READ_MODEL_DIR"] = scratch
        base.setup_django()
        loaded = None
        if not reused:
            started = time.perf_counter()
            rows = base.generate(args.events, args.contacts, args.seed)
            loaded = {"generate": time.perf_counter() - started, **base.load(rows, args.contacts)}
            del rows
        figures = measure(args, Path(scratch))
        report(args, loaded, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
