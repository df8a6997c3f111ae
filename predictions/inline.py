"""Inline scores of a sequence sent in a request (`POST /api/v1/predict`): one query, then memory.

Everything a prediction needs besides the request is per model version, scoring run and workspace:
the loaded model (`serving.light_scorer_load`, the numpy network, no TensorFlow), the quantiles of
the newest run (the percentile) and the workspace's stage map. All are kept per process, keyed by
what one query returns on every request: the active version of the target, the newest succeeded
run and the stage mappings themselves. Activating another model, finishing a run or editing a
mapping changes that key, so the next request of every process serves the new one (no
cross-process message needed, no stale window); a re-published artifact is seen by the loader's
manifest stamp. Measured: the model lookup, the run's quantiles (1,001 numbers parsed from JSON) and
a threadpool inspection per request were most of the service time (docs/predictions-serving.md).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

import numpy as np
from django.db import connection
from django.utils.dateparse import parse_datetime

from funnel_site.events.models import StageMapping
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
_RESOLVERS: dict[int, tuple[str, object]] = {}  # workspace -> (its stage map as the query returned it, resolver)
_LOCK = threading.Lock()


def _served_sql(vendor: str) -> str:
    """The one query of a request: the active version, its newest succeeded run, and the workspace's
    stage map (as JSON text: the text is the cache key, so a changed, added or removed mapping is
    seen by the next request of every process). SQL of its own: compiling the equivalent ORM query
    with three subqueries cost more CPU than the rest of the request's Python (profiled)."""
    version, run, mapping = (ModelVersion._meta.db_table, ScoringRun._meta.db_table,
                             StageMapping._meta.db_table)
    if vendor == "postgresql":
        stage_map = (f"SELECT json_agg(json_build_array(m.event_name, m.stage) ORDER BY m.event_name)::text "
                     f"FROM {mapping} m WHERE m.workspace_id = v.workspace_id")
    else:  # SQLite's JSON1 functions
        stage_map = (f"SELECT json_group_array(json_array(m.event_name, m.stage)) FROM (SELECT event_name, stage "
                     f"FROM {mapping} WHERE workspace_id = v.workspace_id ORDER BY event_name) m")
    newest = (f"FROM {run} r WHERE r.model_version_id = v.id AND r.status = %s "
              f"ORDER BY r.finished_at DESC, r.id DESC LIMIT 1")
    return (f"SELECT v.id, v.artifact_path, (SELECT r.id {newest}), (SELECT r.finished_at {newest}), ({stage_map}) "
            f"FROM {version} v WHERE v.workspace_id = %s AND v.target = %s AND v.is_active = %s "
            f"ORDER BY v.id LIMIT 1")


_SQL: dict[str, str] = {}


def served_inline(*, workspace_id: int, target: str):
    """(the active model of a target with its newest run's quantiles, and the workspace's stage
    resolver), from one query, both kept per process under what that query returns; (None, None)
    without an active model (the caller answers 409 and needs no stage map)."""
    from funnel_site.events.stages import StageResolver

    vendor = connection.vendor
    sql = _SQL.get(vendor) or _SQL.setdefault(vendor, _served_sql(vendor))
    done = ScoringRun.Status.SUCCEEDED
    with connection.cursor() as cursor:
        cursor.execute(sql, [done, done, workspace_id, target, True])
        row = cursor.fetchone()
    if row is None:
        return None, None
    *stamp, stage_map = row
    stage_map = stage_map or "[]"
    hit = _RESOLVERS.get(workspace_id)
    if hit is not None and hit[0] == stage_map:
        resolver = hit[1]
    else:
        resolver = StageResolver({name: stage for name, stage in json.loads(stage_map)})
        with _LOCK:
            if workspace_id not in _RESOLVERS and len(_RESOLVERS) >= _MAX_CACHED:
                _RESOLVERS.pop(next(iter(_RESOLVERS)))
            _RESOLVERS[workspace_id] = (stage_map, resolver)
    return _served(workspace_id, target, tuple(stamp)), resolver


def _served(workspace_id: int, target: str, stamp: tuple) -> ServedModel:
    version_id, artifact_path, run_id, run_finished = stamp
    if isinstance(run_finished, str):  # SQLite hands raw SQL its stored text
        run_finished = parse_datetime(run_finished)
        stamp = (version_id, artifact_path, run_id, run_finished)
    key = (workspace_id, target)
    hit = _SERVED.get(key)
    if hit is not None and hit.stamp == stamp:
        return hit
    served = ServedModel(version_id, target, artifact_path or "", run_id, run_quantiles(run_id, run_finished), stamp)
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
