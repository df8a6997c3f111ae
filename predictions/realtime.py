"""Real-time scores: a contact with new events is rescored within seconds; explanations are stored once.

Ingestion (any path: bulk API, Segment API, file import) sends `events_ingested` on commit. The
receiver marks the contacts dirty (a RescoreRequest row per contact, so a burst of 1,000 events of one
contact is one row) and schedules one drain task per workspace (the RescoreDrain row debounces: it
exists while a drain is pending). The drain takes the dirty contacts, reads only their events, scores
them with the numpy forward pass (`predictions.serving`, the same outputs as Keras), replaces their
current rows, sends `scores_updated` on commit, and queues their explanations (a separate task, so a
fresh score never waits for SHAP) when they are few.

Works on every broker (the rows are in the database), and nothing here imports TensorFlow: scores
and explanations both come from the numpy network (predictions/serving.py, predictions/gradients.py).
"""

from __future__ import annotations

import numpy as np
import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from predictions.frames import contacts_frame, unix_to_datetime
from predictions.inline import percentiles_from, run_quantiles
from predictions.ml.errors import ArtifactError
from predictions.models import ContactScore, ModelVersion, RescoreDrain, RescoreRequest, ScoringRun
from predictions.signals import scores_updated

log = structlog.get_logger(__name__)


def rescore_request(*, workspace_id: int, contact_ids) -> int:
    """Mark contacts for rescoring and schedule the workspace's drain once; returns how many were marked."""
    if not contact_ids or not ModelVersion.objects.filter(workspace_id=workspace_id, is_active=True).exists():
        return 0
    ids = sorted({int(c) for c in contact_ids})
    RescoreRequest.objects.bulk_create(
        [RescoreRequest(workspace_id=workspace_id, contact_id=c) for c in ids], ignore_conflicts=True,
        batch_size=5000,
    )
    _drain_schedule(workspace_id)
    return len(ids)


def _drain_schedule(workspace_id: int) -> None:
    try:
        _, created = RescoreDrain.objects.get_or_create(workspace_id=workspace_id)
    except IntegrityError:  # another process scheduled it at the same moment
        return
    if created:
        transaction.on_commit(lambda: _send_drain(workspace_id))


def _send_drain(workspace_id: int) -> None:
    from predictions.tasks import rescore_drain

    rescore_drain.apply_async(args=[workspace_id], countdown=settings.PREDICTION_RESCORE_DELAY_SECONDS)


def rescore_drain_run(*, workspace_id: int) -> int:
    """Rescore the workspace's dirty contacts (at most PREDICTION_RESCORE_BATCH; the rest next time)."""
    # The drain row goes first, so an event arriving from now on schedules the next drain; the
    # requests are deleted before the events are read, so an event committed before that delete is
    # read below, and one after it makes a new request.
    RescoreDrain.objects.filter(workspace_id=workspace_id).delete()
    limit = settings.PREDICTION_RESCORE_BATCH
    ids = list(RescoreRequest.objects.filter(workspace_id=workspace_id).order_by("contact_id")
               .values_list("contact_id", flat=True)[:limit])
    if not ids:
        return 0
    RescoreRequest.objects.filter(workspace_id=workspace_id, contact_id__in=ids).delete()
    if len(ids) == limit and RescoreRequest.objects.filter(workspace_id=workspace_id).exists():
        _drain_schedule(workspace_id)
    return contacts_rescore(workspace_id=workspace_id, contact_ids=ids)


def contacts_rescore(*, workspace_id: int, contact_ids, explain: bool | None = None) -> int:
    """Score contacts now with every active model of the workspace and make those their current scores.

    The cut-off is the newest of the model's last run and the contacts' newest event + 1 s.
    `explain`: True explains here; None (a worker's drain) queues one
    explanation task per new row when they are at most PREDICTION_REALTIME_EXPLAIN_MAX, so the fresh
    score never waits for its explanation (else they are explained lazily, on first read); False: neither.
    Returns the number of rows written.
    """
    from predictions.ml.labels import eligible_contacts
    from predictions.serving import light_scorer_load

    ids = [int(c) for c in contact_ids]
    versions = list(ModelVersion.objects.filter(workspace_id=workspace_id, is_active=True))
    if not ids or not versions:
        return 0
    frame = contacts_frame(workspace_id=workspace_id, contact_ids=ids)
    if len(frame) == 0:
        return 0
    written = 0
    for version in versions:
        try:
            light = light_scorer_load(version.artifact_path)
        except ArtifactError as exc:
            log.warning("rescore_model_unavailable", model=version.pk, reason=str(exc))
            continue
        last_run = (ScoringRun.objects.filter(workspace_id=workspace_id, target=version.target,
                                              status=ScoringRun.Status.SUCCEEDED)
                    .only("as_of", "model_version_id", "finished_at").order_by("-finished_at", "-id").first())
        cutoff = int(frame.ts.max()) + 1
        if last_run is not None and last_run.model_version_id == version.pk and last_run.as_of is not None:
            cutoff = max(cutoff, int(last_run.as_of.timestamp()))
        eligible = eligible_contacts(frame, cutoff, version.lookback_seconds)
        if len(eligible) == 0:
            continue
        probabilities, raw, _ = light.score_frame(frame, eligible, cutoff)
        explained = _explain(version, frame, eligible, cutoff) if explain else {}
        queue = explain is None and len(eligible) <= settings.PREDICTION_REALTIME_EXPLAIN_MAX
        percentiles = percentiles_from(
            run_quantiles(None, None) if last_run is None else run_quantiles(last_run.pk, last_run.finished_at), raw)
        written += _replace_current(version, eligible, probabilities, raw, percentiles, cutoff, explained,
                                    queue_explain=queue)
    return written


def _explain(version: ModelVersion, frame, contacts, cutoff: int) -> dict[int, tuple[float, list[dict]]]:
    """{contact: (base value, factors)} of the served model, by the TensorFlow-free scorer: the same
    explanations as SHAP on the Keras model (networks: predictions/gradients.py), in milliseconds."""
    from predictions.ml.explain import explain_contacts
    from predictions.serving import light_scorer_load

    try:
        scorer = light_scorer_load(version.artifact_path).scorer
        explanations = explain_contacts(scorer, frame, contacts, cutoff=cutoff)
    except ArtifactError as exc:
        log.warning("explain_failed", model=version.pk, reason=str(exc))
        return {}
    return {e.contact: (e.base_value, factors_json(e.factors, other=e.other)) for e in explanations}


def factors_json(factors, *, other: float = 0.0) -> list[dict]:
    """Stored form of explanation factors: [{"text", "value", "kind"}], strongest first, then the
    sum of the factors left out ("All other factors"), so base value + values = the probability."""
    out = [{"text": f.text, "value": round(float(f.contribution), 5), "kind": f.kind} for f in factors]
    if abs(other) >= 5e-4:
        out.append({"text": "All other factors", "value": round(float(other), 5), "kind": "other"})
    return out


def _replace_current(version, contacts, probabilities, raw, percentiles, cutoff, explained, *,
                     queue_explain: bool) -> int:
    now = timezone.now()
    target, workspace_id = version.target, version.workspace_id
    rows = []
    for c, p, r, pct in zip(contacts.tolist(), probabilities.tolist(), raw.tolist(), percentiles.tolist(),
                            strict=True):
        base, factors = explained.get(int(c), (None, []))
        rows.append(ContactScore(
            workspace_id=workspace_id, model_version=version, contact_id=int(c), target=target, is_current=True,
            probability=float(p), raw_score=float(r), percentile=None if np.isnan(pct) else float(pct),
            as_of=unix_to_datetime(cutoff), scored_at=now, factors=factors, base_value=base,
            explained_at=now if int(c) in explained else None,
            explain_requested_at=now if queue_explain else None,
        ))
    ids = [int(c) for c in contacts.tolist()]
    for attempt in range(3):  # two drains of one contact at once: the second one's insert conflicts
        try:
            with transaction.atomic():
                ContactScore.objects.filter(contact_id__in=ids, target=target, is_current=True).delete()
                ContactScore.objects.bulk_create(rows, batch_size=2000)
                if queue_explain:
                    fresh = list(ContactScore.objects.filter(contact_id__in=ids, target=target, is_current=True,
                                                             explained_at__isnull=True).values_list("pk", flat=True))
                    transaction.on_commit(lambda fresh=fresh: _send_explains(fresh))
                transaction.on_commit(lambda: scores_updated.send(
                    sender=ContactScore, workspace_id=workspace_id, target=target, contact_ids=ids,
                    scoring_run_id=None,
                ))
            return len(rows)
        except IntegrityError:
            if attempt == 2:
                raise
    return 0


def _send_explains(score_ids: list[int]) -> None:
    from predictions.tasks import explain_score

    for score_id in score_ids:
        explain_score.delay(score_id)


def score_explain(*, score_id: int) -> ContactScore | None:
    """Explain one stored score as of its own cut-off and keep the result on the row (computed once)."""
    score = ContactScore.objects.select_related("model_version").filter(pk=score_id).first()
    if score is None or score.explained_at is not None:
        return score
    frame = contacts_frame(workspace_id=score.workspace_id, contact_ids=[score.contact_id], before=score.as_of)
    if len(frame) == 0:
        return score
    explained = _explain(score.model_version, frame, [score.contact_id], int(score.as_of.timestamp()))
    if score.contact_id not in explained:
        return score
    base, factors = explained[score.contact_id]
    updated = ContactScore.objects.filter(pk=score.pk).update(factors=factors, base_value=base,
                                                              explained_at=timezone.now())
    if not updated:  # replaced by a newer score meanwhile (that one gets its own explanation)
        return None
    score.refresh_from_db()
    return score
