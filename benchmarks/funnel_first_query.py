"""The first funnel of a fresh process on the demo data (issue 8: < 1 s; it took 12.9 s).

    python -m benchmarks.funnel_first_query [--contacts 3000]

Sets up the demo (`manage.py run_demo --no-serve`, SQLite, in its own var folder under
var/bench-first-query, about 140,000 events for 3,000 contacts), then starts fresh Python
processes that set up Django — which starts the kernel warm-up thread as a web or worker process
does — and run a 5-step funnel through the product's path (`funnels.selectors.funnel_query`,
results cache off):

- "at start": the query is sent the moment Django is set up (it waits for whatever the warm-up
  has not loaded yet), numba's disk cache warm (a previous process filled it);
- "after warm-up": the same, once the warm-up thread has finished (a user arriving a second or two
  after the process started);
- "cold disk cache": an empty numba cache folder, query at start: the compile cost, paid once per
  deployment by the first process (in its warm-up thread).

Each also times the column cache's load of the workspace's events alone (the read model's cold
start, `events/columns.py`) and a second query of the same process.
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

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var" / "bench-first-query"
FIVE = ["Page Viewed", "Product Viewed", "Product Added", "Checkout Started", "Order Completed"]


def child(wait_for_warm_up: bool) -> None:
    """Runs in the fresh process: set up Django, run the funnel, print JSON figures."""
    started = time.perf_counter()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "funnel_site.settings")
    import django

    django.setup()
    setup_seconds = time.perf_counter() - started
    from funnel_site.funnels import apps

    warm_up_wait = 0.0
    if wait_for_warm_up and apps._warming is not None:
        waited = time.perf_counter()
        apps._warming.join()
        warm_up_wait = time.perf_counter() - waited
    from funnel_site.events.columns import column_cache, workspace_columns
    from funnel_site.events.models import Workspace
    from funnel_site.funnels.selectors import funnel_query
    from funnel_site.funnels.spec import funnel_spec_parse

    workspace = Workspace.objects.get(slug="demo")
    spec = funnel_spec_parse({"steps": FIVE, "window": "14d"})
    queried = time.perf_counter()
    payload = funnel_query(workspace=workspace, spec=spec, use_cache=False).payload
    first = time.perf_counter() - queried
    # what the first query paid for the read model's cold start: the column load, timed alone
    column_cache.clear()
    loading = time.perf_counter()
    workspace_columns(workspace.id)
    load_seconds = time.perf_counter() - loading
    again = time.perf_counter()
    funnel_query(workspace=workspace, spec=spec, use_cache=False)
    print(json.dumps({
        "setup_seconds": setup_seconds,
        "warm_up_wait_seconds": warm_up_wait,
        "first_query_seconds": first,
        "column_load_seconds": load_seconds,
        "second_query_seconds": time.perf_counter() - again,
        "engine_seconds": payload["engine_seconds"],
        "counts": [step["count"] for step in payload["steps"]],
    }))


def run_child(env: dict, wait: bool) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.funnel_first_query", "--child"]
                         + (["--wait"] if wait else []), cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.funnel_first_query")
    parser.add_argument("--contacts", type=int, default=3000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--wait", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.wait)
        return 0
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "NUMBA_CACHE_DIR")}
    env.update(FUNNEL_VAR_DIR=str(VAR), DJANGO_SETTINGS_MODULE="funnel_site.settings", LOG_LEVEL="WARNING")
    VAR.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "manage.py", "run_demo", "--no-serve", "--contacts", str(args.contacts)],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    print(f"demo set up in {time.perf_counter() - started:.1f}s ({VAR})")
    run_child(env, True)  # fills the shared numba cache if this checkout never did
    at_start = run_child(env, False)
    after = run_child(env, True)
    with tempfile.TemporaryDirectory() as empty:
        cold = run_child({**env, "NUMBA_CACHE_DIR": empty}, False)
    print(f"5-step funnel, counts {at_start['counts']}")
    for label, item in (("at start, disk cache warm", at_start), ("after warm-up", after),
                        ("cold disk cache, at start", cold)):
        print(f"  {label:<28} first query {item['first_query_seconds']:6.2f}s "
              f"(engine {item['engine_seconds']:.3f}s; the events' column load alone "
              f"{item['column_load_seconds']:.2f}s; a second query {item['second_query_seconds']:.3f}s; "
              f"Django setup {item['setup_seconds']:.2f}s, waited for the warm-up {item['warm_up_wait_seconds']:.2f}s)")
    print(json.dumps({"at_start": at_start, "after_warm_up": after, "cold_cache": cold}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
