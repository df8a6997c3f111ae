"""Batch scoring runs: plan shards, score a shard, switch to the run's scores atomically (workers, commands).

A run (`ScoringRun`) scores every eligible contact with one model version as of one cut-off:
- plan: the cut-off (newest activity + 1 s) and the candidate contacts (last seen within the lookback),
  split into contact-id ranges of PREDICTION_SCORE_SHARD_SIZE;
- shard: reads only its own contacts' events (frames.contacts_frame), keeps the exactly eligible ones,
  predicts with the model loaded once per process (scorer_load), and stages its rows (not current),
  replacing whatever an earlier delivery of the same shard staged: a retry writes nothing twice;
- finish: percentiles by raw score within the run, then in one transaction the run's rows become the
  target's current scores; `scores_updated` is sent on commit. A failed run deletes its staged rows
  and the previous scores stay current.
TensorFlow is imported lazily (scorer_load), so importing this module is cheap.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import structlog
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from funnel_site.events.models import Contact
from predictions.frames import contacts_frame, unix_to_datetime
from predictions.ml.errors import ArtifactError
from predictions.models import ContactScore, ModelVersion, ScoringRun
from predictions.services import PredictionError, status_phrase
from predictions.signals import scores_updated

log = structlog.get_logger(__name__)

_SCORERS: dict[str, tuple[tuple, object]] = {}
_SCORERS_LOCK = threading.Lock()
_MAX_LOADED = 8


def scorer_load(artifact_dir: str | Path):
    """The loaded Scorer of an artifact (cached per process); ArtifactError with the reason otherwise."""
    from predictions.ml.scorer import Scorer

    path = Path(artifact_dir)
    try:  # a re-published artifact (os.replace of a new directory) has a new manifest inode
        info = (path / "manifest.json").stat()
        stamp = (info.st_ino, info.st_ctime_ns, info.st_mtime_ns)
    except OSError:
        stamp = ()
    key = str(path.resolve())
    with _SCORERS_LOCK:
        hit = _SCORERS.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        scorer = Scorer(path)  # raises ArtifactError for a missing or corrupt artifact
        if len(_SCORERS) >= _MAX_LOADED:
            _SCORERS.pop(next(iter(_SCORERS)))
        _SCORERS[key] = (stamp, scorer)
        return scorer


def scorer_for(version: ModelVersion):
    """The Scorer of a succeeded version; PredictionError naming the version and the reason otherwise."""
    if version.status != ModelVersion.Status.SUCCEEDED or not version.artifact_path:
        raise PredictionError(f"model {version.pk} {status_phrase(version.status)}: it has no artifact to score with")
    try:
        return scorer_load(version.artifact_path)
    except ArtifactError as exc:
        raise PredictionError(f"model {version.pk} cannot be loaded: {exc}") from None


def workspace_data_end(workspace_id: int) -> int | None:
    """Unix seconds just after the workspace's newest activity (Contact.last_seen), None without any."""
    newest = Contact.objects.filter(workspace_id=workspace_id).aggregate(m=Max("last_seen"))["m"]
    return None if newest is None else int(newest.timestamp()) + 1


def scoring_run_plan(*, run_id: int) -> list[tuple[int, int]] | None:
    """Mark a queued run running and split its candidates into contact-id ranges (None: not queued)."""
    with transaction.atomic():
        run = ScoringRun.objects.select_for_update().select_related("model_version").get(pk=run_id)
        if run.status != ScoringRun.Status.QUEUED:
            return None  # a second delivery of the start task
        run.status, run.started_at = ScoringRun.Status.RUNNING, timezone.now()
        run.save(update_fields=["status", "started_at"])
    planning = time.perf_counter()
    try:
        # a missing or corrupt artifact fails the run before any shard, even when a worker holds
        # the model loaded already (every file is checked against the manifest's checksums)
        from predictions.ml.artifacts import read_manifest

        try:
            read_manifest(run.model_version.artifact_path, verify=True)
        except ArtifactError as exc:
            raise PredictionError(f"model {run.model_version_id} cannot be loaded: {exc}") from None
        scorer_for(run.model_version)
        end = workspace_data_end(run.workspace_id)
        if end is None:
            raise PredictionError(f"workspace {run.workspace_id} has no events to score")
        since = unix_to_datetime(end - run.model_version.lookback_seconds)
        ids = np.fromiter(
            Contact.objects.filter(workspace_id=run.workspace_id, last_seen__gte=since)
            .order_by("pk").values_list("pk", flat=True), dtype=np.int64,
        )
    except PredictionError as exc:
        scoring_run_fail(run_id=run_id, reason=str(exc))
        return None
    size = max(int(settings.PREDICTION_SCORE_SHARD_SIZE), 1)
    bounds = [(int(ids[i]), int(ids[min(i + size, len(ids)) - 1])) for i in range(0, len(ids), size)]
    ScoringRun.objects.filter(pk=run_id).update(
        as_of=unix_to_datetime(end), shards=len(bounds), counts={"candidates": int(len(ids))},
        # includes loading the model: the first time in a process, TensorFlow's import too
        timings={"plan": time.perf_counter() - planning},
    )
    return bounds


def scoring_shard_run(*, run_id: int, first_contact: int, last_contact: int, writer=None) -> dict:
    """Score and stage the eligible contacts of one id range; returns its counts and timings.

    `writer(write)`, when given, runs the staging `write()` itself (`scoring_run_execute`: in a
    second thread, overlapping the next shard); the returned dict is completed by it."""
    from predictions.ml.labels import eligible_contacts

    run = ScoringRun.objects.select_related("model_version").get(pk=run_id)
    if run.status != ScoringRun.Status.RUNNING:
        return {"skipped": run.status}
    version = run.model_version
    started = time.perf_counter()
    scorer = scorer_for(version)
    loaded = time.perf_counter()
    cutoff = int(run.as_of.timestamp())
    frame = contacts_frame(workspace_id=run.workspace_id, contact_range=(first_contact, last_contact),
                           before=run.as_of)
    read = time.perf_counter()
    if len(frame) == 0:
        return {"eligible": 0, "scored": 0}
    samples = scorer.samples(frame, cutoff, eligible_contacts(frame, cutoff, version.lookback_seconds))
    raw, building, network = _raw_scores(scorer, frame, samples)
    probabilities = scorer.calibrator(raw)
    predicted = time.perf_counter()
    result = {"eligible": int(len(samples)), "scored": int(len(samples)), "events": int(len(frame)),
              "seconds": {"load": loaded - started, "read": read - loaded, "predict": predicted - read,
                          "features": building, "network": network}}

    def write() -> None:
        t0 = time.perf_counter()
        result["scored"] = _stage(run, first_contact, last_contact, samples.contacts, probabilities, raw)
        result["seconds"]["write"] = time.perf_counter() - t0

    if writer is None:
        write()
    else:
        writer(write)
    return result


def _raw_scores(scorer, frame, samples, batch: int = 8192) -> tuple[np.ndarray, float, float]:
    """The served candidate's raw scores of `samples`, features built a batch at a time (the frame is
    encoded once) in a second thread while the model scores the batch before: numpy and TensorFlow
    release the GIL, so the features cost little beside the network. Returns the scores with the
    seconds spent building features and waiting for the model."""
    from concurrent.futures import ThreadPoolExecutor

    from predictions.ml.labels import Samples

    def build(start: int):
        t0 = time.perf_counter()
        part = Samples(samples.contacts[start : start + batch], samples.cutoffs[start : start + batch],
                       samples.labels[start : start + batch])
        return scorer.inputs(frame, part), time.perf_counter() - t0

    parts, building, network = [], 0.0, 0.0
    starts = list(range(0, len(samples), batch))
    if not starts:
        return np.zeros(0), building, network
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="features") as pool:
        pending = pool.submit(build, starts[0])
        for index in range(len(starts)):
            inputs, seconds = pending.result()
            building += seconds
            if index + 1 < len(starts):
                pending = pool.submit(build, starts[index + 1])
            t0 = time.perf_counter()
            parts.append(scorer.raw_scores(inputs))
            network += time.perf_counter() - t0
            del inputs
    return np.concatenate(parts), building, network


def _stage(run: ScoringRun, first: int, last: int, contacts, probabilities, raw) -> int:
    """Replace the run's staged rows of an id range (idempotent for a redelivered shard)."""
    now = timezone.now()
    with transaction.atomic():
        if not _still_running(run.pk):
            return 0  # failed meanwhile (a dead worker's run, tried again as a new one): nothing staged
        ContactScore.objects.filter(scoring_run=run, contact_id__gte=first, contact_id__lte=last).delete()
        if connection.vendor == "postgresql":
            _copy_rows(run, contacts, probabilities, raw, now)
        else:
            ContactScore.objects.bulk_create(
                [ContactScore(workspace_id=run.workspace_id, model_version_id=run.model_version_id,
                              contact_id=int(c), target=run.target, scoring_run=run, is_current=False,
                              probability=float(p), raw_score=float(r), as_of=run.as_of, scored_at=now)
                 for c, p, r in zip(contacts.tolist(), probabilities.tolist(), raw.tolist(), strict=True)],
                batch_size=2000,
            )
    return int(len(contacts))


def _still_running(run_id: int) -> bool:
    """Whether the run is running, read under a share lock of its row until the caller's transaction
    ends: shards stage side by side, and scoring_run_fail (FOR UPDATE) waits for them, then deletes
    their rows, or goes first and they stage nothing (predictions/recovery.py)."""
    if connection.vendor != "postgresql":
        return ScoringRun.objects.filter(pk=run_id, status=ScoringRun.Status.RUNNING).exists()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT status FROM {ScoringRun._meta.db_table} WHERE id = %s FOR SHARE", [run_id])
        row = cursor.fetchone()
    return row is not None and row[0] == ScoringRun.Status.RUNNING


def _copy_rows(run: ScoringRun, contacts, probabilities, raw, now) -> None:
    """PostgreSQL: the staged rows through one binary COPY built by numpy (no Python step per row)."""
    from predictions.scoring_copy import COLUMNS, staged_rows_copy

    stream = staged_rows_copy(
        workspace_id=run.workspace_id, model_version_id=run.model_version_id, scoring_run_id=run.pk,
        target=run.target, as_of=run.as_of, scored_at=now, contacts=np.asarray(contacts, np.int64),
        probabilities=np.asarray(probabilities, np.float64), raw_scores=np.asarray(raw, np.float64),
    )
    table = ContactScore._meta.db_table
    with connection.cursor() as cursor, cursor.cursor.copy(
        f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN (FORMAT binary)"
    ) as copy:
        copy.write(stream)


def scoring_run_finish(*, run_id: int, shard_results: list[dict]) -> ScoringRun:
    """After every shard: percentiles, then the run's rows become current in one transaction."""
    run = ScoringRun.objects.select_related("model_version").get(pk=run_id)
    if run.status != ScoringRun.Status.RUNNING:
        return run
    failed = [r["error"] for r in shard_results if isinstance(r, dict) and r.get("error")]
    if failed:
        return scoring_run_fail(run_id=run_id, reason=failed[0])
    for attempt in range(3):
        try:
            counts = _switch(run, shard_results)
            break
        except IntegrityError:  # a real-time rescoring inserted a current row meanwhile: switch again
            if attempt == 2:
                raise
    run.refresh_from_db()
    log.info("scoring_run_succeeded", run=run_id, scored=counts["scored"], seconds=run.duration_seconds)
    return run


def _switch(run: ScoringRun, shard_results: list[dict]) -> dict:
    """Percentiles, then the run's rows become the target's current scores (one transaction)."""
    run_id = run.pk
    started = time.perf_counter()
    table = ContactScore._meta.db_table
    with transaction.atomic():
        locked = ScoringRun.objects.select_for_update().get(pk=run_id)
        if locked.status != ScoringRun.Status.RUNNING:
            return dict(locked.counts)
        current = ContactScore.objects.filter(workspace_id=run.workspace_id, target=run.target, is_current=True)
        # a real-time rescoring with this model after the run started is fresher than the run: kept
        fresher = current.filter(scoring_run__isnull=True, model_version_id=run.model_version_id,
                                 scored_at__gte=run.started_at)
        current.exclude(pk__in=fresher.values("pk")).delete()
        with connection.cursor() as cursor:
            # One pass writes each staged row once: its percentile, and current unless a fresher
            # real-time score of the contact stays (that staged row is then dropped just below).
            # Ranked by the raw score, ties (rare with float scores) by contact id: a top-N list
            # never depends on which of several equal probabilities sorts first.
            cursor.execute(
                f"UPDATE {table} SET percentile = ranked.p, is_current = {table}.contact_id NOT IN ("
                f" SELECT f.contact_id FROM {table} f WHERE f.workspace_id = %s AND f.target = %s"
                f" AND f.is_current AND f.scoring_run_id IS NULL AND f.model_version_id = %s"
                f" AND f.scored_at >= %s) FROM ("
                f" SELECT id, 100.0 * cume_dist() OVER (ORDER BY raw_score, contact_id) AS p"
                f" FROM {table} WHERE scoring_run_id = %s) ranked WHERE {table}.id = ranked.id",
                [run.workspace_id, run.target, run.model_version_id, run.started_at, run_id],
            )
        ContactScore.objects.filter(scoring_run=run, is_current=False).delete()
        raw = np.sort(np.fromiter(ContactScore.objects.filter(scoring_run=run).values_list("raw_score", flat=True),
                                  dtype=np.float64))
        counts = dict(locked.counts)
        for key in ("eligible", "scored", "events"):
            counts[key] = sum(int(r.get(key, 0)) for r in shard_results if isinstance(r, dict))
        counts["current"] = len(raw)
        counts["shards_done"] = len(shard_results)
        quantiles = np.quantile(raw, np.linspace(0, 1, 1001)).tolist() if len(raw) else []
        timings = {"shards": [r.get("seconds") for r in shard_results if isinstance(r, dict) and r.get("seconds")],
                   "plan": locked.timings.get("plan"), "finish": time.perf_counter() - started}
        ScoringRun.objects.filter(pk=run_id).update(
            status=ScoringRun.Status.SUCCEEDED, counts=counts, timings=timings, finished_at=timezone.now(),
            raw_quantiles=quantiles,
        )
        workspace_id, target = run.workspace_id, run.target
        transaction.on_commit(lambda: scores_updated.send(
            sender=ScoringRun, workspace_id=workspace_id, target=target, contact_ids=None, scoring_run_id=run_id
        ))
    return counts


def scoring_run_fail(*, run_id: int, reason: str) -> ScoringRun:
    """Fail a run with its reason and drop its staged rows; the previous scores stay current."""
    with transaction.atomic():
        run = ScoringRun.objects.select_for_update().get(pk=run_id)
        if run.status in (ScoringRun.Status.QUEUED, ScoringRun.Status.RUNNING):
            run.status, run.error, run.finished_at = ScoringRun.Status.FAILED, reason[:2000], timezone.now()
            run.save(update_fields=["status", "error", "finished_at"])
        ContactScore.objects.filter(scoring_run=run, is_current=False).delete()
    log.warning("scoring_run_failed", run=run_id, reason=reason)
    return run


def scoring_run_execute(*, run_id: int) -> ScoringRun:
    """Run a whole scoring run in this process, shard after shard (the CLI; one-shard runs)."""
    from predictions.recovery import scoring_run_heartbeat

    with scoring_run_heartbeat(run_id):  # a run whose process dies is tried again (predictions/recovery.py)
        bounds = scoring_run_plan(run_id=run_id)
        if bounds is None:
            return ScoringRun.objects.get(pk=run_id)
        if connection.vendor != "postgresql" or connection.in_atomic_block or len(bounds) == 1:
            results = [scoring_shard_safe(run_id=run_id, first_contact=lo, last_contact=hi) for lo, hi in bounds]
        else:
            results = _shards_overlapped(run_id, bounds)
        return scoring_run_finish(run_id=run_id, shard_results=results)


def _shards_overlapped(run_id: int, bounds: list[tuple[int, int]]) -> list[dict]:
    """Shard after shard, each one's staging COPY in a second thread (its own connection) while the
    next one reads and predicts: the database's work overlaps this process's. Only outside a
    transaction (a thread's connection sees committed rows only) on PostgreSQL."""
    from concurrent.futures import ThreadPoolExecutor

    pending = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="staging") as pool:
        def writer(write) -> None:
            def staged() -> None:
                try:
                    write()
                finally:
                    connection.close()  # this thread's connection
            pending.append(pool.submit(staged))

        results = [scoring_shard_safe(run_id=run_id, first_contact=lo, last_contact=hi, writer=writer)
                   for lo, hi in bounds]
        for future in pending:
            future.result()  # a failed COPY fails here, as it would inline
    return results


def scoring_shard_safe(*, run_id: int, first_contact: int, last_contact: int, writer=None) -> dict:
    """A shard whose known failures (no artifact, unreadable model) become the run's error, not a crash."""
    try:
        return scoring_shard_run(run_id=run_id, first_contact=first_contact, last_contact=last_contact,
                                 writer=writer)
    except (PredictionError, ArtifactError) as exc:
        return {"error": str(exc)}


def scoring_runs_fail_stale(*, older_than_seconds: int = 6 * 3600) -> int:
    """Fail runs still queued or running long after they started (a lost chord); returns how many."""
    limit = timezone.now() - timedelta(seconds=older_than_seconds)
    stale = list(ScoringRun.objects.filter(status__in=ScoringRun.IN_FLIGHT, created_at__lt=limit)
                 .values_list("pk", flat=True))
    for run_id in stale:
        scoring_run_fail(run_id=run_id, reason=f"not finished after {older_than_seconds // 3600} hours")
    return len(stale)


def eligibles(version: ModelVersion, frame, cutoff: int) -> np.ndarray:
    """Contact ids with any own event in the model's lookback before the cut-off."""
    from predictions.ml.labels import eligible_contacts

    return eligible_contacts(frame, cutoff, version.lookback_seconds)


def validation_auc_of(version: ModelVersion, frame, cutoff: int, train_config: dict,
                      contacts: np.ndarray | None = None) -> float | None:
    """ROC-AUC of a stored model on the samples of another training's validation cut-off (only those
    of ``contacts`` when given: the half that training reported its figures on)."""
    from sklearn.metrics import roc_auc_score

    from predictions.ml.config import TrainConfig
    from predictions.ml.labels import label_cutoff

    samples = label_cutoff(frame, cutoff, TrainConfig.from_dict(train_config))
    labels, wanted = samples.labels, samples.contacts
    if contacts is not None:
        keep = np.isin(wanted, contacts)
        labels, wanted = labels[keep], wanted[keep]
    if len(np.unique(labels)) < 2:
        return None
    scored = scorer_for(version).score(frame, cutoff=cutoff, contacts=wanted)
    return float(roc_auc_score(labels, scored.probabilities))
