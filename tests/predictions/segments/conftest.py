"""Small generated workspaces for the segment tests: events through the ingestion service, traits
and emails on the contacts, and stored scores of an active model per target (no training)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
START = AS_OF - timedelta(days=40)
# event name -> stage under the default map (Order Completed after a first one is loyalty)
NAMES = {"Email Opened": "awareness", "Product Viewed": "interest", "Product Added": "consideration",
         "Order Completed": "purchase"}
PLANS = ["free", "pro", "team", "Pro"]


@dataclass
class Generated:
    """What was generated, in plain Python (the oracles read this, never the database)."""

    workspace: object
    contact_ids: dict[str, int] = field(default_factory=dict)  # external id -> Contact.id
    events: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)  # sorted by time
    traits: dict[str, dict] = field(default_factory=dict)
    emails: dict[str, str] = field(default_factory=dict)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # target -> external id -> p
    versions: dict[str, object] = field(default_factory=dict)


def make_scores(workspace, target: str, probabilities: dict[int, float]):
    """An active ModelVersion of `target` with these stored scores (Contact.id -> probability)."""
    from predictions.models import ContactScore, ModelVersion

    ModelVersion.objects.filter(workspace=workspace, target=target, is_active=True).update(is_active=False)
    version = ModelVersion.objects.create(workspace=workspace, target=target, status="succeeded", is_active=True,
                                          config={}, threshold=0.5)
    ContactScore.objects.bulk_create([
        ContactScore(workspace=workspace, model_version=version, contact_id=c, target=target, probability=p,
                     as_of=AS_OF, factors=[{"text": f"Viewed a product {c % 5} days ago", "contribution": 0.1,
                                            "kind": "event"}])
        for c, p in probabilities.items()
    ])
    return version


def generate_workspace(workspace, *, contacts: int = 60, seed: int = 7) -> Generated:
    """Random contacts with distinct event times, traits of three types, emails and scores."""
    from funnel_site.events.models import Contact
    from funnel_site.events.services import events_ingest

    rng = random.Random(seed)
    out = Generated(workspace=workspace)
    items = []
    for n in range(contacts):
        external = f"c{n:03d}"
        seconds = sorted(rng.sample(range(0, 40 * 86400), rng.randint(1, 8)))
        names = [rng.choice(list(NAMES)) for _ in seconds]
        out.events[external] = [(START + timedelta(seconds=s), name) for s, name in zip(seconds, names, strict=True)]
        for k, (moment, name) in enumerate(out.events[external]):
            items.append({"contact_id": external, "event": name, "timestamp": moment.isoformat(),
                          "message_id": f"{external}-{k}"})
        traits = {}
        if rng.random() < 0.7:
            traits["plan"] = rng.choice(PLANS)
        if rng.random() < 0.7:
            traits["age"] = rng.choice([rng.randint(18, 70), rng.randint(18, 70) + 0.5, str(rng.randint(18, 70))])
        if rng.random() < 0.5:
            traits["vip"] = rng.random() < 0.5
        out.traits[external] = traits
        out.emails[external] = rng.choice(["", f"{external}@example.com", f"{external.upper()}@Shop.io"])
    result = events_ingest(workspace=workspace, items=list(enumerate(items)))
    assert result.rejected == 0, result.errors
    for contact in Contact.objects.filter(workspace=workspace):
        out.contact_ids[contact.external_id] = contact.id
        contact.traits = out.traits[contact.external_id]
        contact.email = out.emails[contact.external_id]
        contact.save(update_fields=["traits", "email"])
    for target in ("purchase", "churn"):
        scored = [e for e in out.contact_ids if rng.random() < 0.85]
        # a few ties on purpose: top-N % must still be a well-defined list
        out.scores[target] = {e: round(rng.choice([rng.random(), 0.5, 0.25]), 3) for e in scored}
        out.versions[target] = make_scores(workspace, target,
                                           {out.contact_ids[e]: p for e, p in out.scores[target].items()})
    return out


@pytest.fixture
def generated(workspace_with_key):
    """The `acme` workspace filled by `generate_workspace`."""
    return generate_workspace(workspace_with_key[0])


@pytest.fixture
def viewer_api(workspace_with_key):
    """A DRF client with a viewer key of `acme`."""
    from rest_framework.test import APIClient

    from funnel_site.events.services import api_key_create

    key, clear = api_key_create(workspace=workspace_with_key[0], name="viewer")
    key.role = "viewer"
    key.save(update_fields=["role"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")
    client.workspace = workspace_with_key[0]
    return client
