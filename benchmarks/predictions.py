"""Prediction quality on real data and on the synthetic generator, through the product's own path.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_predictions python -m benchmarks.predictions
        [--only cdnow,taobao,synthetic] [--cdnow sample|master] [--contacts 5000] [--archs lstm,gru,ensemble]

DATABASE_URL names a scratch PostgreSQL database (its name starts with 'bench'): it is dropped, created
and migrated. Each data set goes into a scratch workspace with `import_events` / `generate_events`,
each model is queued with `model_version_queue` and trained by `model_version_run`, the very function
the `training` worker runs (in this process, so no worker is needed). Printed per data set and target:
the network(s), the ensemble and the baselines side by side, on the model's validation cut-off.

Data sets and targets (horizons as stated in docs/predictions.md):
- CDNOW (the 1/10 sample of the BG/NBD papers by default): as of the end of the 39-week calibration
  period (1997-10-01), purchase within 13 weeks and churn (no purchase) within 26 weeks, lookback 39 weeks.
- Taobao slice: purchase within 1 day as of the last complete day (2017-12-03 00:00 UTC+8), lookback 7 days.
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
COLUMNS = (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("brier", "Brier"), ("lift_top_decile", "lift@10%"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="cdnow,taobao,synthetic")
    parser.add_argument("--cdnow", default="sample", choices=("sample", "master"))
    parser.add_argument("--contacts", type=int, default=5000, help="synthetic contacts")
    parser.add_argument("--archs", default="lstm,gru,ensemble")
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

    arch = "lstm" if variant == "ensemble" else variant
    with mock.patch("predictions.services._send_training"):  # this process is the worker
        version = model_version_queue(
            workspace=workspace, target=case["target"], horizon_seconds=case["horizon"],
            lookback_seconds=case["lookback"], arch=arch, ensemble=variant == "ensemble",
            cutoff=case["cutoff"], overrides=case["options"],
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
            "epochs": version.progress.get("epochs_trained"), "model_id": version.pk}


def table(case: dict, runs: dict[str, dict]) -> str:
    """The side-by-side table of one data set and target."""
    first = next((r for r in runs.values() if r["status"] == "succeeded"), None)
    head = (f"\n{case['data']} · {case['target']} within {case['horizon'] // DAY}d, lookback {case['lookback'] // DAY}d"
            + (f" · validation cut-off {first['validation_cutoff']} · {first['counts']}" if first else ""))
    lines = [head, f"{'model':34}" + "".join(f"{label:>10}" for _, label in COLUMNS) + f"{'seconds':>9}"]
    for variant, run in runs.items():
        if run["status"] != "succeeded":
            lines.append(f"{variant:34}{run['status']}: {run['failure_reason']}")
            continue
        lines.append(f"{variant:34}" + "".join(f"{run['metrics'].get(k) or 0:10.3f}" for k, _ in COLUMNS)
                     + f"{run['seconds']:9.0f}")
    if first:
        for name, figures in first["baselines"].items():
            lines.append(f"{'baseline ' + name:34}" + "".join(f"{figures.get(k) or 0:10.3f}" for k, _ in COLUMNS))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("MODEL_ARTIFACT_DIR", tempfile.mkdtemp(prefix="bench-models-"))
    scratch_database()
    setup_django()
    results = []
    workspaces: dict[str, object] = {}
    for case in cases(args):
        workspace = workspaces.get(case["data"]) or load(case["data"], args)
        workspaces[case["data"]] = workspace
        runs = {variant: train(workspace, case, variant) for variant in args.archs.split(",")}
        print(table(case, runs), flush=True)
        results.append({**{k: v for k, v in case.items() if k != "cutoff"}, "cutoff": str(case["cutoff"]),
                        "runs": runs})
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
