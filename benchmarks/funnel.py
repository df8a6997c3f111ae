"""Funnel query latency on PostgreSQL, beside DuckDB computing the same funnel over the same rows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_funnel python -m benchmarks.funnel \
        [--events 10000000 --contacts 1000000] [--repeat 5] [--reuse]

DATABASE_URL names a scratch database whose name starts with ``bench`` (default
``bench_funnel``); it is dropped, created and migrated, unless ``--reuse`` finds it loaded with
the same sizes. Loading is not the product's ingestion path (benchmarks/ingest.py measures that):
events are generated with vectorised numpy (a funnel-shaped mix of 24 names, campaigns, channels,
product ids), sent with one binary COPY of fixed-width columns into an unlogged staging table and
expanded into ``events_event`` by one INSERT ... SELECT; the secondary indexes are dropped during
the insert and rebuilt after it.

Measured, through the product's own path (`funnels.selectors.funnel_query`, cache off): the
kernels' start-up load (what `FunnelsConfig.ready` does), the cold first query (the column cache
loads every event), the warm median of a 5-step sequential funnel with a 14-day window and its
engine time, beside two baselines on exactly the engine's rows (`benchmarks/funnel_baselines.py`):
a bare compiled state machine (the speed limit) and DuckDB with ASOF joins; counts of all three
compared. Then breakdowns (campaign, a property fetched from PostgreSQL), hold-constant,
2/5/10/20-step funnels, and peak RSS. Figures and the design are in docs/funnels.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bench_funnel"
WORKSPACE = "bench-funnel"
T0_US = 1_767_225_600 * 1_000_000  # 2026-01-01
DAY_US = 86_400 * 1_000_000
# the journey in funnel order (a contact walks it to a random depth), then events outside it
FUNNEL_NAMES = [
    "Page Viewed", "Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Product Reviewed",
    "Referral Sent", "Promotion Viewed", "Email Opened", "Email Clicked", "Product List Viewed", "Product Clicked",
    "Product Added to Wishlist", "Cart Viewed", "Coupon Applied", "Checkout Step Viewed",
    "Checkout Step Completed", "Payment Info Entered", "Subscription Started", "Subscription Renewed",
]
NOISE_NAMES = ["Email Sent", "Signed In", "Products Searched", "Support Ticket Opened"]
NAMES = FUNNEL_NAMES + NOISE_NAMES
FIVE_STEPS = FUNNEL_NAMES[:5]
CHANNELS = ["", "organic", "paid_search", "social", "email", "referral", "direct_mail"]
N_CAMPAIGNS = 20
N_PRODUCTS = 5_000
TARGETS = {"warm": 0.2, "ratio": 5.0}  # issue 8: warm 5-step funnel <= 0.2 s and <= 5x the bare machine


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.funnel", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="warm runs per query; the median is shown")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="keep the scratch database when already loaded")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    if args.events <= 0 or args.contacts <= 0 or args.contacts > args.events:
        parser.error("--events and --contacts must be positive, with at most one contact per event")
    return args


# --------------------------------------------------------------------------- database and Django


def prepare_database(args: argparse.Namespace) -> bool:
    """Point DATABASE_URL at the scratch database; (re)create and migrate it. True when loaded already."""
    url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    from benchmarks.ingest import is_scratch_name

    if parts.scheme not in ("postgres", "postgresql") or not is_scratch_name(name):
        sys.exit("DATABASE_URL must name a scratch PostgreSQL database starting with 'bench' or "
                 f"'<prefix>_bench' (it is dropped), e.g. {DEFAULT_URL}")
    os.environ["DATABASE_URL"] = url
    import psycopg

    if args.reuse and _loaded_sizes(url) == (args.events, args.contacts):
        return True
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "funnel_site.settings", "LOG_LEVEL": "WARNING"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    return False


def _loaded_sizes(url: str) -> tuple[int, int] | None:
    import psycopg

    try:
        with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as conn:
            row = conn.execute("SELECT (SELECT count(*) FROM events_event), (SELECT count(*) FROM events_contact)")
            return tuple(row.fetchone())
    except psycopg.Error:
        return None


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "funnel_site.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ.setdefault("FUNNEL_QUERY_TIMEOUT_SECONDS", "600")
    os.environ["FUNNEL_WARM_KERNELS"] = "0"  # measure() warms them in the foreground, timed
    import django

    django.setup()


# --------------------------------------------------------------------------- synthetic rows


def generate(events: int, contacts: int, seed: int) -> dict[str, np.ndarray]:
    """Events as arrays in time order: contact index, ts (µs), name code, campaign, channel, value, product.

    Each contact has a start in an 80-day period and a journey depth D (P(D >= k) = 0.7^k, at most
    19); each of its journey events is a uniformly drawn rank 0..D, named FUNNEL_NAMES[rank], at
    start + 6 h per rank + up to 2 days of jitter, so later steps tend to come later but not always.
    A quarter of the events are noise names at any time within 12 days of the start. Journey events
    carry a `product_id` property (Zipf-distributed over 5,000 products).
    """
    rng = np.random.default_rng(seed)
    contact = rng.integers(0, contacts, size=events, dtype=np.int64)
    depth = np.minimum(rng.geometric(0.3, size=contacts) - 1, len(FUNNEL_NAMES) - 1)[contact]
    rank = np.floor(rng.random(events) * (depth + 1)).astype(np.int64)
    noise = rng.random(events) < 0.25
    name = np.where(noise, len(FUNNEL_NAMES) + rng.integers(0, len(NOISE_NAMES), size=events), rank).astype(np.int32)
    start = rng.integers(0, 80 * DAY_US, size=contacts, dtype=np.int64)[contact]
    offset = np.where(noise, rng.integers(0, 12 * DAY_US, size=events),
                      rank * (DAY_US // 4) + rng.integers(0, 2 * DAY_US, size=events))
    ts = T0_US + start + offset
    ts -= ts % 1_000_000  # whole seconds: equal timestamps occur, as in real data
    order = np.argsort(ts, kind="stable")
    campaign = np.where(rng.random(events) < 0.3, rng.integers(0, N_CAMPAIGNS, size=events), -1)
    return {
        "contact": contact[order],
        "ts": ts[order],
        "name": name[order],
        "campaign": campaign[order].astype(np.int32),
        "channel": rng.integers(0, len(CHANNELS), size=events, dtype=np.int32)[order],
        "value": np.where(name == NAMES.index("Order Completed"), rng.lognormal(3.6, 0.8, events), np.nan)[order],
        "product": np.where(noise, -1, rng.zipf(1.3, events) % N_PRODUCTS)[order].astype(np.int32),
    }


def _copy_binary(columns: list[tuple[np.ndarray, str]]) -> bytes:
    """PostgreSQL binary COPY data of fixed-width columns (no NULLs), built by numpy in one pass."""
    n = columns[0][0].shape[0]
    fields = [("count", ">i2")]
    for i, (_, pg_type) in enumerate(columns):
        fields += [(f"len{i}", ">i4"), (f"v{i}", pg_type)]
    rows = np.empty(n, dtype=np.dtype(fields))
    rows["count"] = len(columns)
    for i, (values, pg_type) in enumerate(columns):
        rows[f"len{i}"] = np.dtype(pg_type).itemsize
        rows[f"v{i}"] = values
    return b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8 + rows.tobytes() + b"\xff\xff"


def load(rows: dict[str, np.ndarray], contacts: int) -> dict[str, float]:
    """Contacts, campaigns and events into the scratch database; seconds per phase."""
    from django.db import connection

    from funnel_site.events.models import Campaign, Workspace
    from funnel_site.events.services import workspace_create

    timings = {}
    started = time.perf_counter()
    workspace, _ = workspace_create(slug=WORKSPACE)
    campaigns = [Campaign.objects.create(workspace=workspace, key=f"campaign-{k:02d}", channel=CHANNELS[1 + k % 6])
                 for k in range(N_CAMPAIGNS)]
    names_sql = "ARRAY[" + ",".join(f"'{n}'" for n in NAMES) + "]"
    channels_sql = "ARRAY[" + ",".join(f"'{c}'" for c in CHANNELS) + "]"
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO events_contact (workspace_id, external_id, email, traits) "
            "SELECT %s, 'b' || g, '', jsonb_build_object('tier', (ARRAY['gold','silver','bronze'])[1 + g %% 3]) "
            "FROM generate_series(0, %s) g ORDER BY g", [workspace.id, contacts - 1])
        cursor.execute("SELECT min(id) FROM events_contact WHERE workspace_id = %s", [workspace.id])
        first_contact = cursor.fetchone()[0]
        timings["contacts"] = time.perf_counter() - started

        started = time.perf_counter()
        cursor.execute("CREATE UNLOGGED TABLE bench_stage (seq int8, contact int8, ts int8, name int4, "
                       "campaign int4, channel int4, value float8, product int4)")
        data = _copy_binary([
            (np.arange(rows["ts"].shape[0]), ">i8"), (rows["contact"] + first_contact, ">i8"), (rows["ts"], ">i8"),
            (rows["name"], ">i4"), (rows["campaign"], ">i4"), (rows["channel"], ">i4"), (rows["value"], ">f8"),
            (rows["product"], ">i4"),
        ])
        with cursor.cursor.copy("COPY bench_stage FROM STDIN (FORMAT binary)") as copy:
            view = memoryview(data)
            for at in range(0, len(view), 1 << 24):
                copy.write(view[at : at + (1 << 24)])
        del data
        timings["copy_staging"] = time.perf_counter() - started

        started = time.perf_counter()
        cursor.execute("SELECT indexdef, indexname FROM pg_indexes WHERE tablename = 'events_event' "
                       "AND indexname <> 'events_event_pkey'")
        indexes = cursor.fetchall()
        cursor.execute("ALTER TABLE events_event DROP CONSTRAINT IF EXISTS uniq_event_message")
        for _, index_name in indexes:
            cursor.execute(f'DROP INDEX IF EXISTS "{index_name}"')
        cursor.execute(
            "INSERT INTO events_event (workspace_id, contact_id, name, timestamp, received_at, campaign_id, "
            "channel, value, properties, message_id) "
            f"SELECT %s, contact, ({names_sql})[name + 1], "
            "'epoch'::timestamptz + ts * interval '1 microsecond', now(), "
            "CASE WHEN campaign >= 0 THEN %s + campaign END, "
            f"({channels_sql})[channel + 1], NULLIF(value, 'NaN'::float8), "
            "CASE WHEN product >= 0 THEN jsonb_build_object('product_id', 'p' || product) ELSE '{}'::jsonb END, "
            "'bench-' || seq FROM bench_stage ORDER BY seq",
            [workspace.id, campaigns[0].id])
        cursor.execute("DROP TABLE bench_stage")
        timings["insert_events"] = time.perf_counter() - started

        started = time.perf_counter()
        cursor.execute("ALTER TABLE events_event ADD CONSTRAINT uniq_event_message UNIQUE (workspace_id, message_id)")
        for definition, index_name in indexes:
            if index_name != "uniq_event_message":
                cursor.execute(definition)
        cursor.execute("ANALYZE events_event")
        timings["indexes"] = time.perf_counter() - started
    assert Workspace.objects.filter(slug=WORKSPACE).exists()
    return timings


# --------------------------------------------------------------------------- measurements


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """The resident set now (Linux), to tell the column cache from the first load's transient peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_query(workspace, query: dict) -> tuple[float, dict]:
    from funnel_site.funnels.selectors import funnel_query
    from funnel_site.funnels.spec import funnel_spec_parse

    started = time.perf_counter()
    payload = funnel_query(workspace=workspace, spec=funnel_spec_parse(query), use_cache=False).payload
    return time.perf_counter() - started, payload


def warm_median(workspace, query: dict, repeat: int) -> dict:
    """Median wall seconds, engine seconds and process CPU seconds (all threads) of `repeat` runs."""
    times, engine, cpu = [], [], []
    for _ in range(repeat):
        cpu_started = time.process_time()
        seconds, payload = run_query(workspace, query)
        cpu.append(time.process_time() - cpu_started)
        times.append(seconds)
        engine.append(payload["engine_seconds"])
    return {"seconds": statistics.median(times), "engine_seconds": statistics.median(engine),
            "cpu_seconds": statistics.median(cpu), "min_seconds": min(times),
            "counts": [s["count"] for s in payload["steps"]], "breakdown_values": len(payload["breakdown"] or [])}


def measure(args: argparse.Namespace) -> dict:
    from funnel_site.events.columns import column_cache, workspace_columns
    from funnel_site.events.models import Workspace
    from funnel_site.funnels.engine.warmup import warm_kernels
    from funnel_site.funnels.inputs import funnel_input_build
    from funnel_site.funnels.spec import funnel_spec_parse

    from .funnel_baselines import bare_median, duckdb_median

    workspace = Workspace.objects.get(slug=WORKSPACE)
    five = {"steps": FIVE_STEPS, "window": "14d", "order": "sequential"}
    figures: dict = {}
    started = time.perf_counter()
    warm_kernels()  # what a process does at start (FunnelsConfig.ready), here in the foreground
    figures["kernel_warm_up_seconds"] = time.perf_counter() - started
    column_cache.clear()
    started = time.perf_counter()
    workspace_columns(workspace.id)
    figures["column_load_seconds"] = time.perf_counter() - started
    figures["peak_rss_mb_after_load"] = peak_rss_mb()
    figures["rss_mb_after_load"] = current_rss_mb()
    column_cache.clear()
    seconds, payload = run_query(workspace, five)
    figures["cold_first_query_seconds"] = seconds
    figures["cold_first_query_engine_seconds"] = payload["engine_seconds"]
    figures["five_steps"] = warm_median(workspace, five, args.repeat)

    # the baselines, on exactly the rows the engine reads for the 5-step funnel
    cols = workspace_columns(workspace.id)
    built = funnel_input_build(workspace_id=workspace.id, definition=funnel_spec_parse(five).definition, cols=cols)
    figures["bare"] = bare_median(built.columns, len(FIVE_STEPS), 14 * DAY_US, args.repeat)
    names = np.asarray(cols.names, dtype=object)[cols.name]
    figures["duckdb"] = duckdb_median(cols.contact, cols.ts, names, FIVE_STEPS, 14 * 86_400, min(args.repeat, 3))
    del names, built
    figures["same_counts"] = figures["duckdb"]["counts"] == figures["five_steps"]["counts"] == figures["bare"]["counts"]
    figures["peak_rss_mb_with_duckdb"] = peak_rss_mb()

    figures["five_steps_breakdown_campaign"] = warm_median(workspace, {**five, "breakdown": "campaign"}, args.repeat)
    by_product = {**five, "breakdown": "property:product_id"}
    figures["product_first_use_seconds"], _ = run_query(workspace, by_product)  # fetches the property once
    figures["five_steps_breakdown_product"] = warm_median(workspace, by_product, args.repeat)
    held = {**five, "hold_constant": "product_id"}
    figures["hold_first_use_seconds"], _ = run_query(workspace, held)
    figures["five_steps_hold_product"] = warm_median(workspace, held, args.repeat)
    figures["steps"] = {}
    for n in (2, 5, 10, 20):
        figures["steps"][n] = warm_median(workspace, {"steps": FUNNEL_NAMES[:n], "window": "14d"}, args.repeat)
    figures["peak_rss_mb"] = peak_rss_mb()
    figures["rss_mb_after_queries"] = current_rss_mb()
    return figures


def report(args: argparse.Namespace, loaded: dict | None, figures: dict) -> None:
    print(f"\nfunnel benchmark: {args.events:,} events, {args.contacts:,} contacts, PostgreSQL, "
          f"{os.cpu_count()} CPUs, warm medians of {args.repeat}")
    if loaded:
        print("load: " + ", ".join(f"{k} {v:.1f}s" for k, v in loaded.items()))
    print(f"kernels at process start (numba disk cache): {figures['kernel_warm_up_seconds']:.2f}s; "
          f"column cache, first load of every event from PostgreSQL: {figures['column_load_seconds']:.2f}s")
    print(f"cold first 5-step query (load included): {figures['cold_first_query_seconds']:.2f}s "
          f"({figures['cold_first_query_engine_seconds']:.3f}s in the engine)")
    five, bare, duck = figures["five_steps"], figures["bare"], figures["duckdb"]
    ratio = five["seconds"] / bare["seconds"] if bare["seconds"] else float("inf")
    print(f"{'query':<40} {'seconds':>8} {'engine':>8} {'target':>12}  counts")
    mark = f"<={TARGETS['warm']:g}s " + ("ok" if five["seconds"] <= TARGETS["warm"] else "MISSED")
    print(f"{'5-step sequential, 14d window (warm)':<40} {five['seconds']:>8.3f} {five['engine_seconds']:>8.3f} "
          f"{mark:>12}  {five['counts']}")
    print(f"{'  bare state machine, same rows':<40} {bare['seconds']:>8.3f} {'':>8} {'':>12}  {bare['counts']}")
    print(f"  fastest of the runs: query {five['min_seconds']:.3f}s, bare {bare['min_seconds']:.3f}s; process CPU "
          f"(a busy shared machine inflates wall time): query {five['cpu_seconds']:.3f}s, bare {bare['cpu_seconds']:.3f}s")
    print(f"{'  DuckDB ASOF joins, same rows':<40} {duck['seconds']:>8.3f} {'':>8} {'':>12}  {duck['counts']}")
    cpu_ratio = five["cpu_seconds"] / bare["cpu_seconds"] if bare["cpu_seconds"] else float("inf")
    print(f"warm query / bare state machine: {ratio:.1f}x wall, {cpu_ratio:.1f}x CPU (target <= "
          f"{TARGETS['ratio']:g}x: {'ok' if ratio <= TARGETS['ratio'] else 'MISSED'}); same counts "
          f"(engine, bare, DuckDB): {'yes' if figures['same_counts'] else 'NO'}")
    rows = [("  + breakdown by campaign", figures["five_steps_breakdown_campaign"]),
            ("  + breakdown by property product_id", figures["five_steps_breakdown_product"]),
            ("  + hold product_id constant", figures["five_steps_hold_product"])]
    rows += [(f"{n} steps (first {n} journey names)", figures["steps"][n]) for n in (2, 5, 10, 20)]
    for label, item in rows:
        print(f"{label:<40} {item['seconds']:>8.3f} {item['engine_seconds']:>8.3f} {'':>12}  {item['counts']}")
    print(f"first use of property product_id (fetched from PostgreSQL, then cached): breakdown "
          f"{figures['product_first_use_seconds']:.2f}s, hold-constant {figures['hold_first_use_seconds']:.2f}s")
    print(f"peak RSS: {figures['peak_rss_mb_after_load']:.0f} MB after the first column load, "
          f"{figures['peak_rss_mb_with_duckdb']:.0f} MB with DuckDB's copy of the rows, "
          f"{figures['peak_rss_mb']:.0f} MB at the end; resident after the load "
          f"{figures['rss_mb_after_load']:.0f} MB, after the queries {figures['rss_mb_after_queries']:.0f} MB")
    if args.json:
        print(json.dumps({"events": args.events, "contacts": args.contacts, "load": loaded, **figures}, default=str))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reused = prepare_database(args)
    setup_django()
    loaded = None
    if not reused:
        started = time.perf_counter()
        rows = generate(args.events, args.contacts, args.seed)
        generated = time.perf_counter() - started
        loaded = {"generate": generated, **load(rows, args.contacts)}
        del rows
    figures = measure(args)
    report(args, loaded, figures)
    return 0 if figures["same_counts"] else 1


if __name__ == "__main__":
    sys.exit(main())
