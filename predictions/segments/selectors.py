"""Reads of segments: lists with sizes, members with their scores, size over time, and the one
place that ranks scores for "top N %" and percentiles.

Ranking: the active model's current scores of the target (`ContactScore.is_current`), by the
model's raw score descending (the ranking key of the scoring runs' percentiles: calibration ties
never decide who is in), then Contact id ascending; rows without a raw score rank by probability.
A contact's rank r (0-based) among n scores gives percentile 100 * (n - 1 - r) / n when the score
has no stored percentile, and the top N % are the ceil(N * n / 100) first.
"""

from __future__ import annotations

import math
from typing import Any

from django.db import connection
from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import Coalesce

from funnel_site.events.models import Workspace
from predictions.models import ContactScore, ModelVersion, Segment, SegmentMembership, SegmentSize, Target


class SegmentNotFound(LookupError):
    """No such segment in this workspace (another tenant's id is unknown, too)."""


def active_scores(*, workspace: Workspace, target: str) -> tuple[ModelVersion | None, QuerySet]:
    """The active model of `target` and its stored scores (one per contact), ranked."""
    version = ModelVersion.objects.filter(workspace=workspace, target=target, is_active=True).first()
    if version is None:
        return None, ContactScore.objects.none()
    scores = (ContactScore.objects.filter(model_version=version, is_current=True)
              .annotate(rank_key=Coalesce("raw_score", "probability")))
    return version, scores.order_by(F("rank_key").desc(), "contact_id")


def no_model_warning(*, workspace: Workspace, target: str) -> str:
    """What to tell a user whose segment reads a target without an active model."""
    return (f"no active {target} model, so its score conditions match nobody: train one "
            f"(manage.py train --workspace {workspace.slug} --target {target}) or activate one")


def score_member_ids(
    *, workspace: Workspace, target: str, min_probability: float | None = None, top_percent: float | None = None,
    among: list[int] | None = None,
) -> tuple[list[int], str | None]:
    """Contact ids with probability >= `min_probability`, or in the top `top_percent` % (see the
    module docstring), optionally only among the contacts `among`; and a warning when the target
    has no active model."""
    if min_probability is None and among is not None and 0 < len(among) <= FEW:
        ranked = _few_ranks(workspace=workspace, target=target, contact_ids=among)
        if ranked:  # else: none of them scored, or no active model (which the query below tells)
            total = ranked[0][2]
            wanted = math.ceil(float(top_percent) * total / 100 - 1e-9)
            return [contact for contact, rank, _ in ranked if rank < wanted], None
    version, scores = active_scores(workspace=workspace, target=target)
    if version is None:
        return [], no_model_warning(workspace=workspace, target=target)
    if min_probability is not None:
        chosen = scores.filter(probability__gte=min_probability)
        if among is not None:
            chosen = chosen.filter(contact_id__in=among)
        return list(chosen.values_list("contact_id", flat=True)), None
    if among is None:
        total = scores.count()
        wanted = math.ceil(float(top_percent) * total / 100 - 1e-9)
        return list(scores.values_list("contact_id", flat=True)[:wanted]), None
    # a few contacts (a real-time rescoring): their ranks and the count in one pass, not the top list
    ranks, total = _ranks(version=version, contact_ids=among)
    wanted = math.ceil(float(top_percent) * total / 100 - 1e-9)
    return [contact for contact, rank in ranks.items() if rank < wanted], None


RANK_CHUNK = 100
FEW = 8  # asked contacts ranked by `_few_ranks` (one scan of the scores each) rather than `_ranks`


def _few_ranks(*, workspace: Workspace, target: str, contact_ids: list[int]) -> list[tuple[int, int, int]]:
    """(contact, 0-based rank, number of current scores) of each scored contact of a few, for the
    target's active model, in one round trip (the ranking of `_ranks`: the module docstring). A
    real-time rescoring refreshes "top N %" for one contact: this is its one query, where the model
    lookup, the contact's key and the counting pass were three (profiled: each ORM query cost more
    CPU to compile than the database spent on it)."""
    scores, versions = ContactScore._meta.db_table, ModelVersion._meta.db_table
    placeholders = ", ".join(["%s"] * len(contact_ids))
    sql = (f"SELECT s.contact_id, SUM(CASE WHEN COALESCE(o.raw_score, o.probability) > "
           f"COALESCE(s.raw_score, s.probability) OR (COALESCE(o.raw_score, o.probability) = "
           f"COALESCE(s.raw_score, s.probability) AND o.contact_id < s.contact_id) THEN 1 ELSE 0 END), COUNT(*) "
           f"FROM {scores} s JOIN {scores} o ON o.model_version_id = s.model_version_id AND o.is_current = %s "
           f"WHERE s.model_version_id = (SELECT v.id FROM {versions} v WHERE v.workspace_id = %s AND v.target = %s "
           f"AND v.is_active = %s ORDER BY v.id LIMIT 1) AND s.is_current = %s AND s.contact_id IN ({placeholders}) "
           f"GROUP BY s.contact_id")
    with connection.cursor() as cursor:
        cursor.execute(sql, [True, workspace.pk, target, True, True, *[int(c) for c in contact_ids]])
        return [(int(c), int(rank), int(total)) for c, rank, total in cursor.fetchall()]


def _ranks(*, version: ModelVersion, contact_ids: list[int]) -> tuple[dict[int, int], int]:
    """0-based rank of each scored contact of `contact_ids` in the version's ranking, and the number
    of the version's current scores: one pass over them counting, for every asked contact at once,
    the scores ranked ahead of it (a per-contact count would cost its rank each), and all of them
    in the same pass (no separate COUNT). No asked contact scored: no pass, the total is not needed."""
    scores = (ContactScore.objects.filter(model_version=version, is_current=True)
              .annotate(rank_key=Coalesce("raw_score", "probability")))
    mine = dict(scores.filter(contact_id__in=contact_ids).values_list("contact_id", "rank_key"))
    ranks: dict[int, int] = {}
    total = 0
    contacts = sorted(mine)
    for start in range(0, len(contacts), RANK_CHUNK):
        chunk = contacts[start : start + RANK_CHUNK]
        counts = scores.aggregate(total=Count("id"), **{
            f"c{c}": Count("id", filter=Q(rank_key__gt=mine[c]) | Q(rank_key=mine[c], contact_id__lt=c))
            for c in chunk
        })
        total = counts["total"]
        ranks.update({c: counts[f"c{c}"] for c in chunk})
    return ranks, total


def score_details(*, workspace: Workspace, contact_ids: list[int]) -> dict[int, dict[str, dict[str, Any]]]:
    """Per contact and target: probability, percentile (module docstring) and top factor of the
    active model's score; one query per target."""
    out: dict[int, dict[str, dict[str, Any]]] = {c: {} for c in contact_ids}
    for target in Target.values:
        version, scores = active_scores(workspace=workspace, target=target)
        if version is None or not contact_ids:
            continue
        ranks, total = _ranks(version=version, contact_ids=contact_ids)
        rows = (ContactScore.objects.filter(model_version=version, is_current=True, contact_id__in=contact_ids)
                .values("contact_id", "probability", "percentile", "factors", "scored_at"))
        for row in rows:
            factors = row["factors"] or []
            top = factors[0] if factors else None
            out[row["contact_id"]][target] = {
                "probability": row["probability"],
                "percentile": round(row["percentile"] if row["percentile"] is not None
                                    else 100 * (total - 1 - ranks[row["contact_id"]]) / total, 2),
                "top_factor": ({"text": top.get("text"), "value": top.get("value", top.get("contribution"))}
                               if top else None),
                "model_id": version.pk,
                "scored_at": row["scored_at"],
            }
    return out


def segment_list(*, workspace: Workspace) -> QuerySet:
    """The workspace's segments by name, each with `size` (its open memberships)."""
    return Segment.objects.filter(workspace=workspace).annotate(
        size=Count("memberships", filter=Q(memberships__exited_at__isnull=True))
    ).order_by("name", "id")


def segment_get(*, workspace: Workspace, segment_id) -> Segment:
    """One segment of this workspace, with `size`; SegmentNotFound otherwise."""
    try:
        return segment_list(workspace=workspace).get(pk=int(segment_id))
    except (Segment.DoesNotExist, TypeError, ValueError):
        raise SegmentNotFound(f"segment {segment_id} does not exist in workspace {workspace.slug!r}") from None


def segment_size(*, segment: Segment) -> int:
    """The number of current members."""
    return SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).count()


def segment_members(*, segment: Segment) -> QuerySet:
    """Current members, newest entry first (stable order for pages)."""
    return (SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True)
            .select_related("contact").order_by("-entered_at", "-id"))


def member_rows(*, segment: Segment, memberships: list[SegmentMembership]) -> list[dict[str, Any]]:
    """The members' public rows: contact id, email, entered_at and scores by target."""
    details = score_details(workspace=segment.workspace, contact_ids=[m.contact_id for m in memberships])
    return [
        {"contact_id": m.contact.external_id, "email": m.contact.email, "entered_at": m.entered_at,
         "scores": details.get(m.contact_id, {})}
        for m in memberships
    ]


def segment_history(*, segment: Segment, limit: int = 500) -> list[SegmentSize]:
    """The newest `limit` sizes, oldest first."""
    newest = list(SegmentSize.objects.filter(segment=segment).order_by("-at", "-id")[:limit])
    return newest[::-1]


def segments_of_contact(*, workspace: Workspace, contact_id: int) -> QuerySet:
    """Every stay of a contact in the workspace's segments (entered / exited), newest first."""
    return (SegmentMembership.objects.filter(workspace=workspace, contact_id=contact_id)
            .select_related("segment").order_by("-entered_at", "-id"))
