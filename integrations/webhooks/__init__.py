"""Inbound webhooks: one module per source over `base.WebhookView` (verify, store raw, answer)."""
