"""Inline scores of a sequence sent in a request (`POST /api/v1/predict`): one query, then memory.

Everything a prediction needs besides the request is per model version and scoring run: the loaded
model (`serving.light_scorer_load`, the numpy network, no TensorFlow) and the quantiles of the
newest run (the percentile). Both are kept per process, keyed by what one query returns on every
request: the active version of the target and the newest succeeded run. Activating another model
or finishing a run changes that key, so the next request of every process serves the new one (no
cross-process message needed, no stale window); a re-published artifact is seen by the loader's
manifest stamp. Measured: the model lookup, the run's quantiles (1,001 numbers parsed from JSON) and
a threadpool inspection per request were most of the service time (docs/predictions-serving.md).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from django.db.models import OuterRef, Subquery

from predictions.models import ModelVersion, ScoringRun

_MAX_CACHED = 64  # (workspace, target) pairs per process; the oldest goes first


@dataclass(frozen=True)
class ServedModel:
    """The active model of a target as one process serves it."""

    version_id: int
    target: str
    artifact_path: str
    run_id: int | None
    quantiles: np.ndarray  # the newest run's raw scores at evenly spaced ranks (empty: no run yet)
    stamp: tuple = ()  # what the query returned: (version, artifact path, run, run finished at)

    def percentiles(self, raw: np.ndarray) -> np.ndarray:
        """Percentile of raw scores within the newest run (nan before any run)."""
        return percentiles_from(self.quantiles, raw)


def percentiles_from(quantiles: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """100 x the share of a run at or below each raw score, from the run's evenly spaced quantiles."""
    if len(quantiles) < 2:
        return np.full(len(raw), np.nan)
    ranks = np.linspace(0.0, 100.0, len(quantiles))
    return np.interp(np.asarray(raw, np.float64), quantiles, ranks, left=0.0, right=100.0)


_SERVED: dict[tuple[int, str], ServedModel] = {}
_LOCK = threading.Lock()


def served_model(*, workspace_id: int, target: str) -> ServedModel | None:
    """The active model of a target with its newest run's quantiles; None without an active model."""
    # the newest succeeded run of this model: another model's quantiles rank other raw scores
    newest_run = (ScoringRun.objects.filter(model_version_id=OuterRef("pk"), status=ScoringRun.Status.SUCCEEDED)
                  .order_by("-finished_at", "-id"))
    row = (ModelVersion.objects.filter(workspace_id=workspace_id, target=target, is_active=True)
           .annotate(run_id=Subquery(newest_run.values("pk")[:1]),
                     run_finished=Subquery(newest_run.values("finished_at")[:1]))
           .values_list("pk", "artifact_path", "run_id", "run_finished").first())
    if row is None:
        return None
    version_id, artifact_path, run_id, run_finished = row
    key = (workspace_id, target)
    hit = _SERVED.get(key)
    if hit is not None and hit.stamp == row:
        return hit
    served = ServedModel(version_id, target, artifact_path or "", run_id, run_quantiles(run_id, run_finished), row)
    with _LOCK:
        if key not in _SERVED and len(_SERVED) >= _MAX_CACHED:
            _SERVED.pop(next(iter(_SERVED)))
        _SERVED[key] = served
    return served


_QUANTILES: dict[tuple, np.ndarray] = {}


def run_quantiles(run_id: int | None, finished_at=None) -> np.ndarray:
    """A succeeded run's stored raw-score quantiles, kept per process: written once when the run
    finishes (keyed with that time too, so an id reused after a rollback or a restore is not mistaken)."""
    if run_id is None:
        return np.zeros(0)
    key = (run_id, finished_at)
    hit = _QUANTILES.get(key)
    if hit is None:
        stored = ScoringRun.objects.filter(pk=run_id).values_list("raw_quantiles", flat=True).first()
        hit = np.asarray(stored or [], dtype=np.float64)
        with _LOCK:
            if len(_QUANTILES) >= _MAX_CACHED:
                _QUANTILES.pop(next(iter(_QUANTILES)))
            _QUANTILES[key] = hit
    return hit
