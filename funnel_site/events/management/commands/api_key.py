"""python manage.py api_key create|list|revoke --workspace SLUG [--name NAME] [--prefix P] [--json]"""

from __future__ import annotations

from django.core.management.base import CommandError

from funnel_site.cli import ContractCommand
from funnel_site.events.models import ApiKey
from funnel_site.events.services import api_key_create, api_key_revoke


class Command(ContractCommand):
    help = "Create (shown once), list or revoke a workspace's API keys."

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("action", choices=["create", "list", "revoke"])
        parser.add_argument("--name", default="default", help="a label for a new key")
        parser.add_argument("--prefix", help="the prefix of the key to revoke (as `list` shows it)")

    def handle(self, *args, **options) -> None:
        workspace = self.get_workspace(options["workspace"])
        action = options["action"]
        if action == "create":
            api_key, key = api_key_create(workspace=workspace, name=options["name"])
            self.emit(options, {"prefix": api_key.prefix, "name": api_key.name, "api_key": key},
                      f"New API key for {workspace.slug} (shown once, keep it safe): {key}")
        elif action == "list":
            keys = [
                {"prefix": k.prefix, "name": k.name, "created_at": k.created_at.isoformat(),
                 "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                 "revoked": k.revoked_at is not None}
                for k in ApiKey.objects.filter(workspace=workspace).order_by("created_at")
            ]
            self.emit(options, {"keys": keys}, "\n".join(
                f"{k['prefix']}  {k['name']:<16} {'revoked' if k['revoked'] else 'active'}" for k in keys))
        else:
            if not options["prefix"]:
                raise CommandError("--prefix is required to revoke a key (see `api_key list`)")
            api_key = ApiKey.objects.filter(workspace=workspace, prefix=options["prefix"]).first()
            if api_key is None:
                raise CommandError(f"workspace {workspace.slug!r} has no key with prefix {options['prefix']!r}")
            api_key_revoke(api_key=api_key)
            self.emit(options, {"prefix": api_key.prefix, "revoked": True}, f"Revoked key {api_key.prefix}")
