"""Signals other apps listen to (data flows predictions -> integrations, never back)."""

from django.dispatch import Signal

# Sent (after commit) when a segment's membership changed: kwargs segment_id, workspace_id,
# entered (int), exited (int). integrations connects to it to run the syncs of that segment.
segment_membership_changed = Signal()
