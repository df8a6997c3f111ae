"""Evaluate a validated segment definition to the sorted array of its members' Contact ids.

Set-based: every leaf is one query (scores, traits, email) or one pass of numpy over the
workspace's columnar event cache (stages, saved funnels); and / or / not are sorted-array set
operations. `not` is relative to the universe: every contact of the workspace (or, for a partial
refresh, the contacts asked about).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import numpy as np
from django.db import connection
from django.db.models import F, Func
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Lower
from django.utils import timezone

from funnel_site.events.models import Contact, Workspace
from funnel_site.events.stages import STAGES
from predictions.segments.definition import duration_seconds
from predictions.segments.selectors import score_member_ids

EMPTY = np.zeros(0, dtype=np.int64)
STAGE_INDEX = {stage: i for i, stage in enumerate(STAGES)}


def _ids(values) -> np.ndarray:
    return np.unique(np.fromiter(values, dtype=np.int64))


@dataclasses.dataclass
class Evaluation:
    """The members of a definition, and what the user should know about how they were found."""

    contact_ids: np.ndarray
    warnings: list[str]


class Evaluator:
    """Evaluates definitions of one workspace as of one moment (the columns are loaded once)."""

    def __init__(self, *, workspace: Workspace, as_of: datetime | None = None,
                 contact_ids: np.ndarray | None = None) -> None:
        self.workspace = workspace
        self.as_of = as_of or timezone.now()
        self.as_of_us = int(self.as_of.timestamp() * 1_000_000)
        self.restrict = None if contact_ids is None else np.unique(np.asarray(contact_ids, dtype=np.int64))
        self.warnings: list[str] = []
        self._universe: np.ndarray | None = None
        self._columns = None
        self._stages: np.ndarray | None = None

    # --- shared inputs ------------------------------------------------------------------------
    @property
    def universe(self) -> np.ndarray:
        """Every contact `not` is relative to."""
        if self._universe is None:
            self._universe = self._fetch(self._contacts().values_list("id", flat=True))
        return self._universe

    def _fetch(self, values_qs) -> np.ndarray:
        """Sorted unique ids of a values_list query (one plain fetch: a server-side cursor cost
        several round trips per 100,000 ids and saved little memory on int ids)."""
        return _ids(list(values_qs))

    @property
    def columns(self):
        if self._columns is None:
            from funnel_site.events.columns import workspace_columns

            self._columns = workspace_columns(self.workspace.id)
        return self._columns

    @property
    def stages(self) -> np.ndarray:
        """Stage code per cached event, derived with the workspace's stage map (the one place)."""
        if self._stages is None:
            from funnel_site.events.stages import StageResolver

            self._stages = self.columns.stages(StageResolver.for_workspace(self.workspace.id))
        return self._stages

    def _contacts(self):
        qs = Contact.objects.filter(workspace=self.workspace)
        if self.restrict is not None:
            qs = qs.filter(id__in=self.restrict.tolist())
        return qs

    # --- evaluation -----------------------------------------------------------------------------
    def run(self, definition: dict) -> Evaluation:
        """Members of `definition` (validated), within the universe."""
        ids = self.node(definition)
        if self.restrict is not None:
            # every leaf reads only this workspace's contacts (and `not` is relative to the universe),
            # so keeping the asked ones is the universe's cut without querying it
            ids = np.intersect1d(ids, self.restrict, assume_unique=True)
        return Evaluation(contact_ids=ids, warnings=list(dict.fromkeys(self.warnings)))

    def node(self, node: dict) -> np.ndarray:
        """Sorted unique contact ids matching one condition (not yet cut to the universe)."""
        key, value = next(iter(node.items()))
        if key == "and":
            result = self.node(value[0])
            for child in value[1:]:
                if result.size == 0:
                    break
                result = np.intersect1d(result, self.node(child), assume_unique=True)
            return result
        if key == "or":
            return np.unique(np.concatenate([self.node(child) for child in value]))
        if key == "not":
            return np.setdiff1d(self.universe, self.node(value), assume_unique=True)
        return getattr(self, f"leaf_{key}")(value)

    def leaf_score(self, spec: dict) -> np.ndarray:
        """Scores of the target's active model: probability >= threshold, or the top N %."""
        ids, warning = score_member_ids(
            workspace=self.workspace, target=spec["target"], min_probability=spec.get("min_probability"),
            top_percent=spec.get("top_percent"), among=None if self.restrict is None else self.restrict.tolist(),
        )
        if warning:
            self.warnings.append(warning)
        return _ids(ids)

    def _latest_per_contact(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(contact ids, newest timestamp of a masked event) per contact; events are sorted by
        (contact, ts), so the last masked event of a contact is its newest."""
        contact = self.columns.contact[mask]
        ts = self.columns.ts[mask]
        if contact.size == 0:
            return EMPTY, EMPTY
        last = np.r_[contact[1:] != contact[:-1], True]
        return contact[last], ts[last]

    def leaf_stage(self, spec: dict) -> np.ndarray:
        """Reached stage S; with `not_next_within` T: the latest arrival at S is at least T before
        the as-of moment and no event of a later stage came at or after it."""
        cols = self.columns
        if cols.size == 0:
            return EMPTY
        code = STAGE_INDEX[spec["reached"]]
        seen = cols.ts <= self.as_of_us
        reached_contacts, reached_at = self._latest_per_contact(seen & (self.stages == code))
        if "not_next_within" not in spec:
            return reached_contacts
        within_us = duration_seconds(spec["not_next_within"]) * 1_000_000
        later_contacts, later_at = self._latest_per_contact(seen & (self.stages > code))
        # for each contact that reached S: its newest later-stage event, or -inf when none
        newest_later = np.full(reached_contacts.size, np.iinfo(np.int64).min, dtype=np.int64)
        if later_contacts.size:
            position = np.minimum(np.searchsorted(later_contacts, reached_contacts), later_contacts.size - 1)
            match = later_contacts[position] == reached_contacts
            newest_later[match] = later_at[position[match]]
        keep = (reached_at <= self.as_of_us - within_us) & (newest_later < reached_at)
        return reached_contacts[keep]

    def leaf_funnel(self, spec: dict) -> np.ndarray:
        """Reached step k of the saved funnel (evaluated as saved, counting unique contacts); with
        `not_next_within` T: the furthest step is exactly k and step k was reached at least T ago."""
        from funnel_site.funnels.engine import funnel_evaluate
        from funnel_site.funnels.inputs import funnel_input_build
        from funnel_site.funnels.models import SavedFunnel
        from funnel_site.funnels.spec import funnel_spec_parse

        funnel = SavedFunnel.objects.filter(workspace=self.workspace, id=spec["id"]).first()
        if funnel is None:  # deleted after the segment was saved
            self.warnings.append(f"saved funnel {spec['id']} no longer exists: its condition matches nobody")
            return EMPTY
        definition = dataclasses.replace(funnel_spec_parse(funnel.definition).definition, count="unique",
                                         breakdown=None)
        step = int(spec["step"])
        if step > definition.step_count:
            self.warnings.append(f"saved funnel {funnel.name!r} has fewer than {step} steps now")
            return EMPTY
        built = funnel_input_build(workspace_id=self.workspace.id, definition=definition, cols=self.columns)
        columns = built.columns.normalised(check_sorted=False)
        outcomes = funnel_evaluate(definition=definition, columns=columns, check_sorted=False)
        if "not_next_within" not in spec:
            return np.unique(outcomes.contact_ids[outcomes.furthest >= step])
        within_us = duration_seconds(spec["not_next_within"]) * 1_000_000
        stuck = np.flatnonzero(outcomes.furthest == step)
        reached_at = columns.ts[outcomes.chain[stuck, step - 1]]
        keep = reached_at <= self.as_of_us - within_us
        return np.unique(outcomes.contact_ids[stuck[keep]])

    def leaf_trait(self, spec: dict) -> np.ndarray:
        """One traits key compared in the database (numeric operators match JSON numbers only)."""
        key, op, value = spec["key"], spec["op"], spec.get("value")
        qs = self._contacts().alias(trait=KeyTransform(key, "traits"))
        if op == "exists":
            qs = qs.filter(traits__has_key=key)
        elif op == "eq":
            qs = qs.filter(trait=value)
        elif op == "in":
            qs = qs.filter(trait__in=value)
        elif op == "contains":
            # jsonb orders types before values, so the type is checked too ({"age": true} > 30 in jsonb)
            qs = qs.alias(trait_text=KeyTextTransform(key, "traits"), kind=_json_kind(key)).filter(
                kind__in=_kinds("string"), trait_text__icontains=value
            )
        else:
            qs = qs.alias(kind=_json_kind(key)).filter(kind__in=_kinds("number"), **{f"trait__{op}": value})
        return self._fetch(qs.values_list("id", flat=True))

    def leaf_email(self, spec: dict) -> np.ndarray:
        """The email, compared without case."""
        op, value = spec["op"], (spec.get("value") or "").lower()
        qs = self._contacts()
        if op == "exists":
            qs = qs.exclude(email="")
        else:
            qs = qs.alias(email_lower=Lower(F("email")))
            lookup = {"eq": "email_lower", "ends_with": "email_lower__endswith", "contains": "email_lower__contains"}[op]
            qs = qs.filter(**{lookup: value})
        return self._fetch(qs.values_list("id", flat=True))


def _json_kind(key: str):
    """The JSON type of `traits[key]`: jsonb_typeof on PostgreSQL, json_type on SQLite."""
    from django.db.models import CharField, Value

    if connection.vendor == "postgresql":
        return Func(KeyTransform(key, "traits"), function="jsonb_typeof", output_field=CharField())
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return Func(F("traits"), Value(f'$."{escaped}"'), function="json_type", output_field=CharField())


def _kinds(kind: str) -> tuple[str, ...]:
    """The names `_json_kind` gives a JSON number or string on this database."""
    if connection.vendor == "postgresql":
        return (kind,)
    return {"number": ("integer", "real"), "string": ("text",)}[kind]


def definition_evaluate(*, workspace: Workspace, definition: dict, as_of: datetime | None = None,
                        contact_ids=None) -> Evaluation:
    """Members of a validated definition (optionally only among `contact_ids`)."""
    return Evaluator(workspace=workspace, as_of=as_of, contact_ids=contact_ids).run(definition)


def definition_preview(*, workspace: Workspace, definition: dict, sample: int = 10) -> dict:
    """`{"size", "sample": [{"contact_id", "email"}], "warnings"}` of a validated definition, saving nothing."""
    evaluation = definition_evaluate(workspace=workspace, definition=definition)
    chosen = evaluation.contact_ids[:sample].tolist()
    rows = {c["id"]: c for c in Contact.objects.filter(id__in=chosen).values("id", "external_id", "email")}
    return {"size": int(evaluation.contact_ids.size),
            "sample": [{"contact_id": rows[c]["external_id"], "email": rows[c]["email"]} for c in chosen if c in rows],
            "warnings": evaluation.warnings}
