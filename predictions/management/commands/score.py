"""python manage.py score --workspace SLUG [--target purchase|churn] [--model ID] [--output FILE.csv] [--json]"""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

from django.core.management.base import CommandError

from funnel_site.cli import ContractCommand
from predictions.models import Target

CSV_HEADER = ["contact_id", "probability", "above_threshold", "model_id", "as_of"]


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


def scores_announce(*, workspace, target: str) -> list[dict]:
    """Send `scores_updated` for a batch run; the segment receiver refreshes the workspace's
    segments and returns their counts, which are printed."""
    from predictions.signals import scores_updated

    responses = scores_updated.send(sender=Command, workspace_id=workspace.pk, target=target, contact_ids=None,
                                    scoring_run_id=None)
    return [
        {key: segment[key] for key in ("segment_id", "name", "size", "entered", "exited")}
        for _, response in responses if isinstance(response, dict)
        for segment in response.get("segments", [])
    ]


class Command(ContractCommand):
    help = (
        "Score every eligible contact (any own event within the model's lookback) with the active model as of "
        "the newest event, store the scores, and optionally write them as CSV (contact_id,probability,...)."
    )

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--target", default=Target.PURCHASE, choices=Target.values)
        parser.add_argument("--model", default=None, help="score with this model id instead of the active one")
        parser.add_argument("--output", default=None, help="write contact_id,probability,... to this CSV file")

    def handle(self, *args, **options) -> None:
        from predictions.frames import contact_external_ids, unix_to_datetime
        from predictions.scoring import model_version_score, scores_prune, scores_store
        from predictions.services import PredictionError

        workspace = self.get_workspace(options["workspace"])
        version = model_for(workspace, target=options["target"], model_id=options["model"])
        output = Path(options["output"]) if options["output"] else None
        if output is not None and not output.resolve().parent.is_dir():
            raise CommandError(f"--output {output}: the folder {output.resolve().parent} does not exist")
        try:
            run = model_version_score(version=version)
        except PredictionError as exc:
            raise CommandError(str(exc)) from None
        stored = scores_store(run)
        scores_prune(version=version, as_of=run.as_of)
        segments = scores_announce(workspace=workspace, target=version.target)
        as_of = unix_to_datetime(run.as_of)
        if output is not None:
            names = contact_external_ids(run.contacts)
            order = sorted(range(len(run)), key=lambda i: -run.probabilities[i])
            write_csv_atomically(output, (
                (names[int(run.contacts[i])], f"{run.probabilities[i]:.6f}",
                 int(run.probabilities[i] >= run.threshold), version.pk, as_of.isoformat())
                for i in order
            ))
        payload = {
            "model_id": version.pk,
            "target": version.target,
            "as_of": as_of,
            "scored": stored,
            "above_threshold": int((run.probabilities >= run.threshold).sum()),
            "threshold": run.threshold,
            "output": str(output) if output else None,
            "segments": segments,
        }
        self.emit(options, payload,
                  f"scored {stored} contacts with {version.target} model {version.pk} as of {as_of:%Y-%m-%d %H:%M:%S} "
                  f"UTC ({payload['above_threshold']} above the threshold {run.threshold:.3f})"
                  + (f"; wrote {output}" if output else "")
                  + "".join(f"\nsegment {s['name']!r}: {s['size']} members (+{s['entered']} entered, "
                            f"-{s['exited']} exited)" for s in segments))
