"""One module per destination over `base.BaseDestination`; `adapter_class(kind)` picks one."""

from __future__ import annotations

from importlib import import_module

ADAPTERS = {
    "hubspot": "integrations.destinations.hubspot.HubSpotDestination",
    "mailchimp": "integrations.destinations.mailchimp.MailchimpDestination",
    "klaviyo": "integrations.destinations.klaviyo.KlaviyoDestination",
    "salesforce": "integrations.destinations.salesforce.SalesforceDestination",
    "webhook": "integrations.destinations.webhook.WebhookDestination",
    "file": "integrations.destinations.file.FileDestination",
}


def adapter_class(kind: str):
    """The adapter class of a destination kind (KeyError names the kind)."""
    module, _, name = ADAPTERS[kind].rpartition(".")
    return getattr(import_module(module), name)
