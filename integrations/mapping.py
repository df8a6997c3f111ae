"""What a sync should deliver: the segment's current members with their mapped fields.

A mapping is `{destination field: source}`; a source is `email`, `contact_id`, `trait:<name>`,
`score:<target>.probability`, `score:<target>.percentile` or `score:<target>.top_factor` (the
strongest factor of the newest score of the active model, in words).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from predictions.models import ContactScore, SegmentMembership, Target

SOURCE = re.compile(r"^(email|contact_id|trait:[\w.\- ]{1,100}|score:(purchase|churn)\.(probability|percentile|top_factor))$")


class MappingError(ValueError):
    """A mapping entry that names no known source."""


def mapping_validate(mapping: object) -> dict[str, str]:
    """The mapping if every entry is `{field: source}` with a known source; MappingError names the entry."""
    if not isinstance(mapping, dict):
        raise MappingError("field_mapping must be an object of {destination field: source}")
    for field, source in mapping.items():
        if not isinstance(field, str) or not field.strip():
            raise MappingError("field_mapping: destination field names must be non-empty strings")
        if not isinstance(source, str) or not SOURCE.match(source):
            raise MappingError(
                f"field_mapping.{field}: {source!r} is not a source; use email, contact_id, trait:<name>, "
                "score:<purchase|churn>.<probability|percentile|top_factor>"
            )
    return dict(mapping)


def score_percentile(score: ContactScore) -> float | None:
    """The score's percentile among the model's scores (0-100), or None where scores have none yet.

    Stored by the scoring run (100 x the share of the run ranked at or below, by raw score)."""
    value = score.percentile
    return None if value is None else round(float(value), 2)


def top_factor_text(score: ContactScore) -> str:
    """The strongest factor of an explained score, in words ('' before it is explained)."""
    for factor in score.factors or []:
        if isinstance(factor, dict) and factor.get("text"):
            return str(factor["text"])
    return ""


def _score_targets(mapping: dict[str, str]) -> set[str]:
    return {s.split(":", 1)[1].split(".")[0] for s in mapping.values() if s.startswith("score:")} & set(Target.values)


def member_rows(*, segment_id: int, chunk: int = 5000) -> Iterator[tuple[int, str, str, dict]]:
    """(contact id, external id, email, traits) of the current members, by contact id."""
    rows = (
        SegmentMembership.objects.filter(segment_id=segment_id, exited_at__isnull=True)
        .order_by("contact_id")
        .values_list("contact_id", "contact__external_id", "contact__email", "contact__traits")
    )
    yield from rows.iterator(chunk_size=chunk)


def newest_scores(*, segment_id: int, targets: set[str]) -> dict[tuple[int, str], ContactScore]:
    """The newest score of each member under the active model of each target."""
    if not targets:
        return {}
    members = SegmentMembership.objects.filter(segment_id=segment_id, exited_at__isnull=True).values("contact_id")
    scores = (
        ContactScore.objects.filter(contact_id__in=members, target__in=targets, model_version__is_active=True,
                                    is_current=True)
        .order_by("contact_id", "target", "scored_at", "id")
    )
    newest: dict[tuple[int, str], ContactScore] = {}
    for score in scores.iterator(chunk_size=5000):
        newest[(score.contact_id, score.target)] = score  # later rows win: newest last
    return newest


def mapped_fields(
    *, mapping: dict[str, str], external_id: str, email: str, traits: dict, scores: dict[str, ContactScore],
    write_empty: bool,
) -> dict:
    """One member's destination fields; empty values dropped unless `write_empty` (the guard against
    blanking a field the tool already has)."""
    out: dict = {}
    for field, source in mapping.items():
        if source == "email":
            value = email
        elif source == "contact_id":
            value = external_id
        elif source.startswith("trait:"):
            value = (traits or {}).get(source[6:])
        else:
            target, _, what = source[6:].partition(".")
            score = scores.get(target)
            if score is None:
                value = None
            elif what == "probability":
                value = round(score.probability, 4)
            elif what == "percentile":
                value = score_percentile(score)
            else:
                value = top_factor_text(score)
        if value is None or value == "":
            if write_empty:
                out[field] = ""
            continue
        out[field] = value
    return out


def desired_records(*, sync) -> dict[int, tuple[str, str, dict]]:
    """{contact id: (external id, email, fields)} of every current member of the sync's segment."""
    mapping = sync.field_mapping or {}
    scores = newest_scores(segment_id=sync.segment_id, targets=_score_targets(mapping))
    out: dict[int, tuple[str, str, dict]] = {}
    for contact_id, external_id, email, traits in member_rows(segment_id=sync.segment_id):
        member_scores = {t: scores[(contact_id, t)] for t in Target.values if (contact_id, t) in scores}
        out[contact_id] = (external_id, email or "", mapped_fields(
            mapping=mapping, external_id=external_id, email=email or "", traits=traits or {},
            scores=member_scores, write_empty=sync.write_empty,
        ))
    return out
