"""Signals other apps listen to (data flows predictions -> integrations, never back)."""

from django.dispatch import Signal

# Sent (after commit) when a segment's membership changed: kwargs segment_id, workspace_id,
# entered (int), exited (int). integrations connects to it to run the syncs of that segment.
segment_membership_changed = Signal()

# Sent (after commit) when contacts' scores were written: kwargs workspace_id, target, contact_ids
# (a list, or None for "every scored contact" after a batch run), scoring_run_id (or None for a
# real-time rescoring). The segments code connects to it to refresh memberships.
scores_updated = Signal()
