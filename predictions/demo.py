"""The demo's first model: `run_demo` calls this after generating data (settings.DEMO_SETUP_HOOKS)."""

from __future__ import annotations

from predictions.models import ModelVersion

DAY = 86400


def queue_first_model(*, workspace, stdout) -> ModelVersion | None:
    """Queue a purchase model on the demo data when it has enough positives and none exists yet.

    Eligibility is checked here with the same labelling the trainer uses (no TensorFlow), so the
    demo says why when it does not train; the worker started by `run_demo` then takes the job.
    """
    from predictions.frames import workspace_frame
    from predictions.ml.errors import NotEnoughData
    from predictions.ml.labels import build_split
    from predictions.services import PredictionError, model_version_queue, train_config_build

    if ModelVersion.objects.filter(workspace=workspace, target="purchase").exclude(
        status__in=[ModelVersion.Status.FAILED, ModelVersion.Status.CANCELLED]
    ).exists():
        stdout.write("A purchase model exists already: not training another.\n")
        return None
    horizon, lookback = 7 * DAY, 28 * DAY
    config = train_config_build(target="purchase", horizon_seconds=horizon, lookback_seconds=lookback)
    try:
        build_split(workspace_frame(workspace_id=workspace.pk), config)
        version = model_version_queue(workspace=workspace, target="purchase", horizon_seconds=horizon,
                                      lookback_seconds=lookback)
    except (NotEnoughData, PredictionError) as exc:
        stdout.write(f"No purchase model for the demo: {exc}\n")
        return None
    stdout.write(f"Queued purchase model {version.pk} (the worker trains it in the background: see Models).\n")
    return version
