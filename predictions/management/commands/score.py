"""python manage.py score --workspace SLUG [--target purchase|churn] [--model ID] [--output FILE.csv] [--json]"""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

from django.core.management.base import CommandError

from funnel_site.cli import ContractCommand
from predictions.management.commands.train import check_target
from predictions.models import Target

CSV_HEADER = ["contact_id", "probability", "above_threshold", "model_id", "as_of", "percentile"]


def model_for(workspace, *, target: str, model_id) -> object:
    """The version to score with: --model (of this workspace), else the active one of the target."""
    from predictions.selectors import NotFound, active_model_version_required, model_version_get

    try:
        if model_id is not None:
            return model_version_get(workspace=workspace, model_id=model_id)
        return active_model_version_required(workspace=workspace, target=target)
    except NotFound as exc:
        raise CommandError(str(exc)) from None


def write_csv_atomically(path: Path, rows) -> None:
    """Write the CSV to a temporary file beside `path`, then rename: never a half-written file."""
    path = path.resolve()
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(CSV_HEADER)
            writer.writerows(rows)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def segments_after_run(*, workspace) -> list[dict]:
    """Refresh the workspace's segments now and return their counts. The run's `scores_updated`
    signal refreshes them too once its transaction commits; a second refresh changes nothing."""
    from predictions.segments.services import segments_refresh

    return [
        {key: r.to_dict()[key] for key in ("segment_id", "name", "size", "entered", "exited")}
        for r in segments_refresh(workspace=workspace, contact_ids=None)
    ]


IN_FLIGHT_WAIT_SECONDS = 600


def _queue_after_any_in_flight(version):
    """A new run of `version` for this command. A run already in flight (one queued by the model's
    activation, say) is waited for first, so the scores printed are this command's, as of now."""
    import time

    from predictions.models import ScoringRun
    from predictions.services import PredictionError, ScoringInProgress, scoring_run_queue

    deadline = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
    while True:
        try:
            return scoring_run_queue(version=version, trigger="cli", send=False)
        except ScoringInProgress as exc:
            if time.monotonic() > deadline:
                raise CommandError(f"{exc}; it did not finish within {IN_FLIGHT_WAIT_SECONDS} s") from None
            busy = exc.run
            while busy is not None and time.monotonic() < deadline:
                busy.refresh_from_db(fields=["status"])
                if busy.status not in ScoringRun.IN_FLIGHT:
                    break
                time.sleep(0.5)
        except PredictionError as exc:
            raise CommandError(str(exc)) from None


class Command(ContractCommand):
    help = (
        "Score every eligible contact (any own event within the model's lookback) with the active model as of "
        "the newest event in a scoring run (here, in this process), make those the current scores, print the "
        "run's counts, and optionally write them as CSV (contact_id,probability,...)."
    )

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        # validated in handle (check_target): one sentence and exit 1, not argparse's usage and exit 2
        parser.add_argument("--target", default=Target.PURCHASE, help=" or ".join(Target.values))
        parser.add_argument("--model", default=None, help="score with this model id instead of the active one")
        parser.add_argument("--output", default=None, help="write contact_id,probability,... to this CSV file")

    def handle(self, *args, **options) -> None:
        from predictions.models import ContactScore
        from predictions.scoring import scoring_run_execute

        check_target(options["target"])
        workspace = self.get_workspace(options["workspace"])
        version = model_for(workspace, target=options["target"], model_id=options["model"])
        output = Path(options["output"]) if options["output"] else None
        if output is not None and not output.resolve().parent.is_dir():
            raise CommandError(f"--output {output}: the folder {output.resolve().parent} does not exist")
        run = _queue_after_any_in_flight(version)
        run = scoring_run_execute(run_id=run.pk)
        if run.status != run.Status.SUCCEEDED:
            raise CommandError(f"scoring run {run.pk} failed: {run.error}; the previous scores are kept")
        segments = segments_after_run(workspace=workspace)
        threshold = version.threshold if version.threshold is not None else 0.5
        scores = ContactScore.objects.filter(scoring_run=run, is_current=True)
        above = scores.filter(probability__gte=threshold).count()
        if output is not None:
            rows = scores.select_related("contact").order_by("-raw_score", "contact_id")
            write_csv_atomically(output, (
                (s.contact.external_id, f"{s.probability:.6f}", int(s.probability >= threshold), version.pk,
                 run.as_of.isoformat(), f"{s.percentile:.3f}")
                for s in rows.iterator(chunk_size=5000)
            ))
        counts = run.counts
        payload = {
            "run_id": run.pk, "model_id": version.pk, "target": version.target, "as_of": run.as_of,
            "status": run.status, "candidates": counts.get("candidates"), "eligible": counts.get("eligible"),
            "scored": counts.get("scored"), "current": counts.get("current"), "shards": run.shards,
            "seconds": run.duration_seconds, "above_threshold": above, "threshold": threshold,
            "output": str(output) if output else None,
            "segments": segments,
        }
        self.emit(options, payload,
                  f"scoring run {run.pk}: scored {payload['scored']} of {payload['candidates']} candidate contacts "
                  f"({payload['eligible']} eligible, {run.shards} shard(s), {run.duration_seconds:.1f} s) with "
                  f"{version.target} model {version.pk} as of {run.as_of:%Y-%m-%d %H:%M:%S} UTC "
                  f"({above} above the threshold {threshold:.3f})" + (f"; wrote {output}" if output else "")
                  + "".join(f"\nsegment {s['name']!r}: {s['size']} members (+{s['entered']} entered, "
                            f"-{s['exited']} exited)" for s in segments))
