"""Prediction quality on real data and on the synthetic generator, through the product's own path.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_predictions python -m benchmarks.predictions
        [--only cdnow,taobao,completejourney,olist,synthetic] [--cdnow sample|master] [--contacts 5000]
        [--archs auto]
    python -m benchmarks.predictions --scale [--scale-contacts 100000 --scale-events 64 --budget 600]

DATABASE_URL names a scratch PostgreSQL database (its name starts with 'bench'): it is dropped, created
and migrated. Each data set goes into a scratch workspace with `import_events` / `generate_events`,
each model is queued with `model_version_queue` and trained by `model_version_run`, the very function
the `training` worker runs (in this process, so no worker is needed). Printed per data set and target:
the tournament's scoreboard (every candidate's backtest ROC-AUC, PR-AUC and Brier with standard
errors, fit time, status) and the served model's figures on the report contacts, which chose nothing.

`--scale`: the performance target, a full `auto` training (tournament included) of the ML package on
random sequences of 100,000 contacts x 64 events within a time budget (default 600 s), printing wall
time, time per candidate, peak memory and the machine's load, beside the fair baseline run in the
same process: the same data trained with `--arch gbt` (the four baselines and nothing else).

Data sets and targets (horizons as stated in docs/predictions.md):
- CDNOW (the 1/10 sample of the BG/NBD papers by default): as of the end of the 39-week calibration
  period (1997-10-01), purchase within 13 weeks and churn (no purchase) within 26 weeks, lookback 39 weeks.
- Taobao slice: purchase within 1 day as of the last complete day (2017-12-03 00:00 UTC+8), lookback 7 days.
- Complete Journey (2017 baskets of 2,377 households): purchase within 14 days, lookback 8 weeks, as of
  the newest event.
- Olist (8,000 leads, 842 won deals): a won deal within 30 days, lookback 90 days, validated as of 2018-06-01.
- Synthetic (`generate_events`, 90 days): purchase within 7 days, lookback 28 days, as of the newest event.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.ingest import ROOT, scratch_database, setup_django

DATASETS = ROOT.parent / "shared" / "datasets"
DAY, WEEK = 86400, 7 * 86400
CDNOW_CALIBRATION_END = datetime(1997, 1, 1, tzinfo=UTC) + timedelta(weeks=39)  # 1997-10-01
TAOBAO_LAST_DAY = datetime(2017, 12, 2, 16, 0, tzinfo=UTC)  # 2017-12-03 00:00 in UTC+8, the shop's day
OLIST_VALIDATION = datetime(2018, 6, 1, tzinfo=UTC)
COLUMNS = (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("brier", "Brier"), ("lift_top_decile", "lift@10%"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="cdnow,taobao,completejourney,olist,synthetic")
    parser.add_argument("--cdnow", default="sample", choices=("sample", "master"))
    parser.add_argument("--contacts", type=int, default=5000, help="synthetic contacts")
    parser.add_argument("--archs", default="auto")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="each training's time budget in seconds (default: the settings')")
    parser.add_argument("--scale", action="store_true", help="the 100k x 64 performance run instead")
    parser.add_argument("--scale-contacts", type=int, default=100_000)
    parser.add_argument("--scale-events", type=int, default=64)
    # 570 s: what runs after the budget (the stack's meta-learner, calibration, the artifact, the
    # importance sample) takes about half a minute, so the whole training stays within 10 minutes
    parser.add_argument("--budget", type=float, default=570.0, help="--scale: the tournament's time budget (s)")
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    return parser.parse_args(argv)


def cases(args) -> list[dict]:
    """(data set, target, horizon, lookback, cut-off) of every comparison."""
    wanted = set(args.only.split(","))
    out = []
    if "cdnow" in wanted:
        # the validation cut-off is one horizon before the newest event used, so train as of
        # calibration end + horizon (+ the noon time stamps of the daily data)
        for target, horizon in (("purchase", 13 * WEEK), ("churn", 26 * WEEK)):
            cut = CDNOW_CALIBRATION_END + timedelta(seconds=horizon + 12 * 3600 + 1)
            out.append({"data": "cdnow", "target": target, "horizon": horizon, "lookback": 39 * WEEK, "cutoff": cut,
                        "options": {"n_cutoffs": 3, "min_positives": 50, "min_negatives": 50}})
    if "taobao" in wanted:
        out.append({"data": "taobao", "target": "purchase", "horizon": DAY, "lookback": 7 * DAY,
                    "cutoff": TAOBAO_LAST_DAY + timedelta(days=1), "options": {"n_cutoffs": 6}})
    if "completejourney" in wanted:
        out.append({"data": "completejourney", "target": "purchase", "horizon": 14 * DAY, "lookback": 8 * WEEK,
                    "cutoff": None, "options": {"n_cutoffs": 4}})
    if "olist" in wanted:
        # as of the newest event the last 30 days hold no won deal (the leads end in May 2018, the
        # deals trail off after it): validate on June 2018, where the deals still come in
        out.append({"data": "olist", "target": "purchase", "horizon": 30 * DAY, "lookback": 90 * DAY,
                    "cutoff": OLIST_VALIDATION + timedelta(days=30),
                    "options": {"n_cutoffs": 3, "min_positives": 30, "min_negatives": 30}})
    if "synthetic" in wanted:
        out.append({"data": "synthetic", "target": "purchase", "horizon": 7 * DAY, "lookback": 28 * DAY,
                    "cutoff": None, "options": {"n_cutoffs": 4}})
    return out


def load(data: str, args) -> object:
    """A scratch workspace filled through the product's commands; returns it."""
    from django.core.management import call_command

    from funnel_site.events.services import workspace_create

    workspace, _ = workspace_create(slug=f"bench-{data}")
    started = time.monotonic()
    if data == "cdnow":
        name = "CDNOW_sample.txt" if args.cdnow == "sample" else "CDNOW_master.txt"
        call_command("import_events", str(DATASETS / "cdnow" / name), "--workspace", workspace.slug,
                     "--format", "cdnow", "--json", stdout=io.StringIO())
    elif data == "taobao":
        call_command("import_events", str(DATASETS / "taobao" / "UserBehavior_first814users_clean.csv"),
                     "--workspace", workspace.slug, "--format", "taobao", "--json", stdout=io.StringIO())
    elif data in ("completejourney", "olist"):
        folder = "completejourney" if data == "completejourney" else "olist_marketing_funnel"
        call_command("import_events", str(DATASETS / folder), "--workspace", workspace.slug, "--format", data,
                     "--json", stdout=io.StringIO())
    else:
        start = (datetime.now(UTC) - timedelta(days=91)).date().isoformat()
        call_command("generate_events", "--workspace", workspace.slug, "--contacts", str(args.contacts),
                     "--seed", "11", "--days", "90", "--start", start, "--json", stdout=io.StringIO())
    print(f"[{data}] loaded in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return workspace


def train(workspace, case: dict, variant: str) -> dict:
    """Queue and run one training; returns the version's figures."""
    from unittest import mock

    from predictions.services import model_version_queue
    from predictions.training import model_version_run

    with mock.patch("predictions.services._send_training"):  # this process is the worker
        version = model_version_queue(
            workspace=workspace, target=case["target"], horizon_seconds=case["horizon"],
            lookback_seconds=case["lookback"], arch=variant, cutoff=case["cutoff"], overrides=case["options"],
        )
    started = time.monotonic()
    with mock.patch("predictions.training.scoring_queue"):  # no scoring runs here
        model_version_run(version_id=version.pk)
    version.refresh_from_db()
    seconds = time.monotonic() - started
    print(f"[{case['data']} {case['target']}] {variant}: {version.status} in {seconds:.0f}s "
          f"{version.failure_reason}", file=sys.stderr)
    return {"status": version.status, "failure_reason": version.failure_reason, "metrics": version.metrics,
            "baselines": version.baselines, "counts": version.counts, "seconds": round(seconds, 1),
            "validation_cutoff": version.validation_cutoff.isoformat() if version.validation_cutoff else None,
            "epochs": version.progress.get("epochs_trained"), "model_id": version.pk,
            "scoreboard": version.scoreboard, "served": version.trained_arch}


def table(case: dict, runs: dict[str, dict]) -> str:
    """The scoreboard of each run of one data set and target."""
    lines = []
    for variant, run in runs.items():
        head = f"\n{case['data']} · {case['target']} within {case['horizon'] // DAY}d, lookback {case['lookback'] // DAY}d"
        if run["status"] != "succeeded":
            lines.append(f"{head} · {variant}: {run['status']}: {run['failure_reason']}")
            continue
        board = run["scoreboard"]
        lines += [f"{head} · {variant} · validation cut-off {run['validation_cutoff']} · {run['counts']}",
                  f"served {board['served']}: {board['why']}" + (" (FALL-BACK)" if board["fallback"] else "")
                  + f" · origins {board.get('fold_step_seconds', 0) // DAY}d apart, dropped: {board['folds_dropped']}",
                  f"{'candidate':10}{'ROC-AUC':>16}{'PR-AUC':>16}{'Brier':>16}{'fit s':>8}{'report AUC':>11}  status"]
        for c in board["candidates"]:
            if c["status"] == "succeeded":
                cells = "".join(f"{c[k]:9.3f} ±{c[k + '_se']:.3f}" for k in ("roc_auc", "pr_auc", "brier"))
            else:
                cells = f"{'-':>16}" * 3
            report = c.get("report", {}).get("roc_auc")
            lines.append(f"{c['name'] + ('*' if c['served'] else ''):10}{cells}{c['fit_seconds']:8.1f}"
                         f"{report if report is not None else float('nan'):11.3f}  {c['status']} {c['reason'][:70]}")
        m = run["metrics"]
        lines.append(f"served on {board['report_contacts']} report contacts: ROC-AUC {m['roc_auc']:.3f} PR-AUC "
                     f"{m['pr_auc']:.3f} Brier {m['brier']:.3f} · {run['seconds']:.0f}s")
    return "\n".join(lines)


def scale(args) -> dict:
    """The 100k x 64 run: the tournament within its budget, beside the baselines alone."""
    import resource

    from predictions.ml.bench import random_frame
    from predictions.ml.config import TrainConfig
    from predictions.ml.trainer import train_model

    started = time.monotonic()
    frame = random_frame(args.scale_contacts, args.scale_events, 0)
    generated = time.monotonic() - started
    figures = {"contacts": args.scale_contacts, "events": len(frame), "generate_seconds": round(generated, 1),
               "cpu_count": os.cpu_count(), "load_average_before": os.getloadavg()}
    for arch, budget in (("gbt", None), ("auto", args.budget)):
        config = TrainConfig(arch=arch, max_events=args.scale_events, horizon_seconds=7 * DAY,
                             lookback_seconds=28 * DAY, n_cutoffs=1, time_limit_seconds=budget)
        with tempfile.TemporaryDirectory() as directory:
            began = time.monotonic()
            result = train_model(frame, config, artifact_dir=os.path.join(directory, "model"))
            wall = time.monotonic() - began
        figures[arch] = {
            "wall_seconds": round(wall, 1), "served": result.arch, "why": result.scoreboard["why"],
            "phase_seconds": {k: v for k, v in result.timings.items() if k != "candidates"},
            "candidates": [{k: c.get(k) for k in ("name", "status", "reason", "fit_seconds", "roc_auc", "roc_auc_se")}
                           for c in result.scoreboard["candidates"]],
            "report_roc_auc": result.metrics["roc_auc"], "load_average_after": os.getloadavg(),
            "peak_rss_mb_so_far": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        print(json.dumps({arch: figures[arch]}, indent=1), flush=True)
    print(f"auto (tournament) {figures['auto']['wall_seconds']}s vs the baselines alone {figures['gbt']['wall_seconds']}s"
          f" · peak RSS {figures['auto']['peak_rss_mb_so_far']} MB · load before {figures['load_average_before']}")
    return figures


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.scale:
        figures = scale(args)
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=1, default=str))
        return
    os.environ.setdefault("MODEL_ARTIFACT_DIR", tempfile.mkdtemp(prefix="bench-models-"))
    scratch_database()
    setup_django()
    results = []
    workspaces: dict[str, object] = {}
    for case in cases(args):
        workspace = workspaces.get(case["data"]) or load(case["data"], args)
        workspaces[case["data"]] = workspace
        if args.time_limit:
            case["options"] = {**case["options"], "time_limit_seconds": args.time_limit}
        runs = {variant: train(workspace, case, variant) for variant in args.archs.split(",")}
        print(table(case, runs), flush=True)
        results.append({**{k: v for k, v in case.items() if k != "cutoff"}, "cutoff": str(case["cutoff"]),
                        "runs": runs})
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
