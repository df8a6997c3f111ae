"""python manage.py train --workspace SLUG --target purchase|churn [--horizon 7d] [--lookback 28d]
[--arch auto|lstm|gru|rnn|hmm|gbt|gbt_hmm|logreg|recency|bgnbd|stack] [--cutoff ISO] [--ensemble] [--wait] [--json]"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from django.conf import settings
from django.core.management.base import CommandError

from funnel_site.cli import ContractCommand, parse_duration
from predictions.models import Arch, ModelVersion, Target


def parse_cutoff(text: str) -> datetime:
    """ISO-8601 (naive means UTC) or unix seconds -> aware datetime; CommandError otherwise."""
    try:
        if text.strip().isdigit():
            return datetime.fromtimestamp(int(text), tz=UTC)
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise CommandError(f"--cutoff {text!r} is not an ISO-8601 date/time or unix seconds") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_target(value: str | None) -> str | None:
    """The --target value, or a CommandError: one sentence and exit 1 (argparse's `choices` would print
    its usage block and exit 2, unlike every other validation error of the commands)."""
    if value is not None and value not in Target.values:
        raise CommandError(f"--target {value!r} is not a target: use {' or '.join(Target.values)}")
    return value


def version_payload(version: ModelVersion) -> dict:
    """The JSON of a version for commands (the contract's keys first)."""
    return {
        "model_id": version.pk,
        "status": version.status,
        "metrics": version.metrics,
        "baselines": version.baselines,
        "target": version.target,
        "arch": version.trained_arch or version.arch,
        "ensemble": version.ensemble,
        "is_active": version.is_active,
        "counts": version.counts,
        "progress": version.progress,
        "validation_cutoff": version.validation_cutoff,
        "failure_reason": version.failure_reason or None,
        # the tournament: which candidate is served and why (a fall-back to a baseline is named)
        "scoreboard": version.scoreboard,
    }


class Command(ContractCommand):
    help = (
        "Queue the training of a purchase or churn model on a worker (the `training` queue). With --wait, "
        "wait for it and print its metrics beside the baselines; a failed training exits non-zero with the reason."
    )

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        # validated in handle: a wrong value is one sentence and exit 1, like every other validation error
        parser.add_argument("--target", required=True, help=" or ".join(Target.values))
        parser.add_argument("--horizon", default="7d", help="predict what happens within this (default 7d)")
        parser.add_argument("--lookback", default="28d", help="eligible: any event within this before the cut-off")
        parser.add_argument("--arch", default=Arch.AUTO,
                            help=f"the model family, or auto: the tournament's best ({', '.join(Arch.values)})")
        parser.add_argument("--cutoff", default=None, help="train as of this moment (ISO-8601 or unix s)")
        parser.add_argument("--ensemble", action="store_true", help="serve the stacked fusion of the candidates")
        parser.add_argument("--auto-activate", action="store_true",
                            help="activate it if it beats the active model on validation")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--epochs", type=int, default=None)
        parser.add_argument("--units", type=int, default=None)
        parser.add_argument("--min-positives", type=int, default=None)
        parser.add_argument("--min-negatives", type=int, default=None)
        parser.add_argument("--wait", action="store_true", help="wait for the training to finish")
        parser.add_argument("--timeout", default=None, help="with --wait: give up waiting after this (e.g. 2h)")

    def handle(self, *args, **options) -> None:
        from predictions.services import PredictionError, model_version_queue

        check_target(options["target"])
        workspace = self.get_workspace(options["workspace"])
        horizon = parse_duration(options["horizon"], field="horizon")
        lookback = parse_duration(options["lookback"], field="lookback")
        cutoff = parse_cutoff(options["cutoff"]) if options["cutoff"] else None
        overrides = {
            key: options[key]
            for key in ("epochs", "units", "min_positives", "min_negatives")
            if options[key] is not None
        }
        try:
            version = model_version_queue(
                workspace=workspace, target=options["target"], horizon_seconds=horizon,
                lookback_seconds=lookback, arch=options["arch"], ensemble=options["ensemble"], cutoff=cutoff,
                seed=options["seed"], auto_activate=options["auto_activate"] or None, overrides=overrides,
            )
        except PredictionError as exc:
            raise CommandError(str(exc)) from None
        if not options["wait"]:
            self.emit(options, version_payload(version),
                      f"queued {version.target} model {version.pk} (follow it: GET /api/v1/models/{version.pk})")
            return
        timeout = (parse_duration(options["timeout"], field="timeout") if options["timeout"]
                   else settings.PREDICTION_TRAIN_TIME_LIMIT + 900)
        version = self._wait(version, timeout)
        self.emit(options, version_payload(version), self._summary(version))
        if version.status != ModelVersion.Status.SUCCEEDED:
            raise CommandError(f"model {version.pk} {version.status}: {version.failure_reason or 'no reason given'}")

    def _wait(self, version: ModelVersion, timeout: int) -> ModelVersion:
        deadline = time.monotonic() + timeout
        shown = ""
        while version.status in ModelVersion.IN_FLIGHT:
            if time.monotonic() > deadline:
                raise CommandError(
                    f"model {version.pk} is still {version.status} after {timeout}s; it goes on on the worker "
                    f"(is a worker consuming the training queue?)"
                )
            time.sleep(0.5)
            version.refresh_from_db()
            line = f"model {version.pk}: {version.status} {version.progress.get('phase', '')} " \
                   f"epoch {version.progress.get('epoch', '-')} val_auc {version.progress.get('val_auc', '-')}"
            if sys.stderr.isatty() and line != shown:
                sys.stderr.write("\r" + line[:100].ljust(100))
                shown = line
        if shown:
            sys.stderr.write("\n")
        return version

    @staticmethod
    def _summary(version: ModelVersion) -> str:
        if version.status != ModelVersion.Status.SUCCEEDED:
            return f"model {version.pk}: {version.status}"
        why = version.scoreboard.get("why", "")
        lines = [f"model {version.pk} ({version.target}, {version.trained_arch}) succeeded"
                 f"{' and is active' if version.is_active else ''}{f': {why}' if why else ''}",
                 f"{'':22}{'ROC-AUC':>8} {'PR-AUC':>8} {'Brier':>8} {'lift@10%':>8}"]
        for name, figures in {"model": version.metrics, **version.baselines}.items():
            cells = [figures.get(k) for k in ("roc_auc", "pr_auc", "brier", "lift_top_decile")]
            lines.append(f"{name:22}" + " ".join(f"{c:8.3f}" if c is not None else f"{'-':>8}" for c in cells))
        return "\n".join(lines)
