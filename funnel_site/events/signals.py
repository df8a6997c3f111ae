"""Signals of the events app (other apps listen; events never imports them)."""

from django.dispatch import Signal

# Sent after the transaction that stored events commits: kwargs workspace_id (int), contact_ids
# (a list of Contact.id with new events). predictions connects to it to rescore those contacts.
events_ingested = Signal()
