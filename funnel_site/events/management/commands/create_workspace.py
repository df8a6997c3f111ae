"""python manage.py create_workspace SLUG [--name NAME] [--time-zone TZ] [--json]"""

from django.core.management.base import CommandError

from funnel_site.cli import ContractCommand
from funnel_site.events.services import WorkspaceError, workspace_create


class Command(ContractCommand):
    help = "Create a workspace and print its API key (shown once)."
    workspace_required = False

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", default="")
        parser.add_argument("--time-zone", default="UTC")
        parser.add_argument("--json", action="store_true", help="print {slug, api_key}")

    def handle(self, *args, **options) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(options["time_zone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise CommandError(f"--time-zone {options['time_zone']!r} is not a known IANA time zone") from None
        try:
            workspace, key = workspace_create(
                slug=options["slug"], name=options["name"], time_zone=options["time_zone"]
            )
        except WorkspaceError as exc:
            raise CommandError(str(exc)) from None
        self.emit(
            options,
            {"slug": workspace.slug, "api_key": key},
            f"Created workspace {workspace.slug}. API key (shown once, keep it safe): {key}",
        )
