"""Error messages read as sentences: the field once, durations as written, a status in words."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


@pytest.mark.django_db
def test_funnel_window_over_the_limit_is_written_as_entered(workspace_with_key):
    with pytest.raises(CommandError) as err:
        call_command("funnel", "--workspace", "acme", "--steps", "Page Viewed,Order Completed", "--window", "100d")
    assert "got 100d" in str(err.value) and "8640000" not in str(err.value)


@pytest.mark.django_db
def test_segment_message_without_ids_names_the_field_once(workspace_with_key):
    from rest_framework.test import APIClient

    _, key = workspace_with_key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic " + __import__("base64").b64encode(f"{key}:".encode()).decode())
    body = {"batch": [{"type": "track", "event": "Page Viewed"},
                      {"type": "track", "event": "Page Viewed", "userId": "u1"}]}
    response = client.post("/v1/batch", json.dumps(body), content_type="application/json")
    text = json.dumps(response.json())
    assert "userId" in text and "userId: userId" not in text
