"""`manage.py score` refreshes segment memberships (through the scores_updated receiver) and prints counts."""

from __future__ import annotations

import io
import json
import math

import pytest
from django.core.management import call_command

from predictions.models import ContactScore, SegmentMembership

pytestmark = pytest.mark.django_db


def run(*args) -> dict:
    out = io.StringIO()
    call_command(*args, "--json", stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_score_refreshes_segments_and_prints_their_counts(synthetic_workspace, make_version):
    version = make_version(synthetic_workspace)
    payload = run("score", "--workspace", "acme", "--target", "purchase")
    segments = {s["name"]: s for s in payload["segments"]}
    likely = segments["Likely purchasers"]
    assert likely["size"] == math.ceil(payload["scored"] / 10) == likely["entered"]
    best = ContactScore.objects.filter(model_version=version).order_by("-probability", "contact_id").first()
    assert SegmentMembership.objects.filter(segment_id=likely["segment_id"], contact_id=best.contact_id,
                                            exited_at__isnull=True).exists()
    assert segments["Churn risk"]["size"] == 0  # no churn model yet
    again = {s["name"]: s for s in run("score", "--workspace", "acme", "--target", "purchase")["segments"]}
    assert again["Likely purchasers"]["entered"] == 0 and again["Likely purchasers"]["size"] == likely["size"]
    human = io.StringIO()
    call_command("score", "--workspace", "acme", stdout=human)
    assert f"segment 'Likely purchasers': {likely['size']} members (+0 entered, -0 exited)" in human.getvalue()
