"""Scoring and explanations with a stored model: runs in workers and commands (imports TensorFlow lazily).

A loaded artifact is kept per process (keyed by its path and manifest time), so a worker loads each
model once. Scores are stored as ContactScore rows (one per version and contact, replaced on each run).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.db import transaction
from django.utils import timezone

from funnel_site.events.models import Contact
from predictions.frames import unix_to_datetime, workspace_frame
from predictions.ml.data import EventFrame
from predictions.ml.errors import ArtifactError
from predictions.models import ContactScore, ModelVersion
from predictions.services import PredictionError, status_phrase

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


@dataclass
class ScoreRun:
    """The scores of one run: contact ids (Contact.id), probabilities, the cut-off, the threshold."""

    version: ModelVersion
    contacts: np.ndarray
    probabilities: np.ndarray
    as_of: int
    threshold: float

    def __len__(self) -> int:
        return len(self.contacts)


def model_version_score(
    *,
    version: ModelVersion,
    frame: EventFrame | None = None,
    as_of: int | None = None,
    contact_range: tuple[int, int] | None = None,
) -> ScoreRun:
    """Score every eligible contact (those with Contact.id in `contact_range`, a shard, when given)
    as of `as_of` (unix s; default: just after the newest event)."""
    scorer = scorer_for(version)
    frame = workspace_frame(workspace_id=version.workspace_id) if frame is None else frame
    if len(frame) == 0:
        raise PredictionError(f"workspace {version.workspace.slug!r} has no events to score")
    cutoff = frame.end_ts if as_of is None else int(as_of)
    contacts = None
    if contact_range is not None:
        eligible = eligibles(version, frame, cutoff)
        contacts = eligible[(eligible >= contact_range[0]) & (eligible <= contact_range[1])]
    result = scorer.score(frame, cutoff=cutoff, contacts=contacts)
    return ScoreRun(version, result.contacts, result.probabilities, cutoff, float(result.threshold))


def eligibles(version: ModelVersion, frame: EventFrame, cutoff: int) -> np.ndarray:
    """Contact ids with any own event in the model's lookback before the cut-off."""
    from predictions.ml.labels import eligible_contacts

    return eligible_contacts(frame, cutoff, version.lookback_seconds)


def scores_store(run: ScoreRun, *, batch_size: int = 5000) -> int:
    """Upsert the run's scores (one row per version and contact); returns the number stored."""
    version, as_of, now = run.version, unix_to_datetime(run.as_of), timezone.now()
    rows = [
        ContactScore(workspace_id=version.workspace_id, model_version=version, contact_id=int(c),
                     target=version.target, probability=float(p), as_of=as_of, scored_at=now, factors=[])
        for c, p in zip(run.contacts.tolist(), run.probabilities.tolist(), strict=True)
    ]
    with transaction.atomic():
        for start in range(0, len(rows), batch_size):
            ContactScore.objects.bulk_create(
                rows[start : start + batch_size], update_conflicts=True,
                unique_fields=["model_version", "contact"],
                update_fields=["probability", "as_of", "scored_at", "factors", "explained_at"],
            )
    return len(rows)


def scores_prune(*, version: ModelVersion, as_of: int) -> int:
    """Delete the version's scores older than a finished run (contacts no longer eligible)."""
    deleted, _ = ContactScore.objects.filter(model_version=version, as_of__lt=unix_to_datetime(as_of)).delete()
    return deleted


def validation_auc_of(version: ModelVersion, frame: EventFrame, cutoff: int, train_config: dict,
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


def contact_explain(*, version: ModelVersion, contact: Contact, top_k: int = 3) -> ContactScore:
    """Score and explain one contact as of its workspace's newest event; the result is stored."""
    from predictions.ml.explain import explain_contacts

    frame = workspace_frame(workspace_id=version.workspace_id)
    if len(frame) == 0 or not np.any(frame.contact == contact.pk):
        raise PredictionError(f"contact {contact.external_id!r} has no activity of its own to score")
    scorer = scorer_for(version)
    explanation = explain_contacts(scorer, frame, [contact.pk], top_k=top_k)[0]
    now = timezone.now()
    factors = [
        {"text": f.text, "contribution": f.contribution, "kind": f.kind} for f in explanation.factors
    ]
    score, _ = ContactScore.objects.update_or_create(
        model_version=version, contact=contact,
        defaults={"workspace_id": version.workspace_id, "target": version.target,
                  "probability": float(explanation.probability), "as_of": unix_to_datetime(frame.end_ts),
                  "scored_at": now, "factors": factors, "explained_at": now},
    )
    return score
