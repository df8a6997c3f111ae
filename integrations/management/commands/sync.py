"""`python manage.py sync --workspace SLUG --sync ID [--dry-run] [--confirm-removals] [--json]`:
run one sync now, in this process, and print the run's counts."""

from __future__ import annotations

from django.core.management.base import CommandError

from funnel_site.cli import ContractCommand


class Command(ContractCommand):
    help = "Run one sync now and print the run's counts."

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--sync", required=True, type=int, help="the sync's id")
        parser.add_argument("--dry-run", action="store_true", help="report what would change, send nothing")
        parser.add_argument("--confirm-removals", action="store_true", help="let a mirror run past its removal limit")

    def handle(self, *args, **options) -> None:
        from integrations.engine import sync_run_execute
        from integrations.models import Sync
        from integrations.services import sync_run_request

        workspace = self.get_workspace(options["workspace"])
        sync = Sync.objects.filter(workspace=workspace, pk=options["sync"]).first()
        if sync is None:
            raise CommandError(f"--sync {options['sync']}: no such sync in workspace {workspace.slug}")
        run, created = sync_run_request(sync=sync, dry_run=options["dry_run"], trigger="cli",
                                        confirm_removals=options["confirm_removals"], enqueue=False)
        if not created:
            raise CommandError(f"run {run.pk} of sync {sync.pk} is {run.status} already: wait for it to finish")
        run = sync_run_execute(run_id=run.pk)
        payload = {"run_id": run.pk, "sync_id": sync.pk, "status": run.status, "dry_run": run.dry_run,
                   "added": run.added, "updated": run.updated, "removed": run.removed, "failed": run.failed,
                   "skipped": run.skipped, "error": run.error,
                   "duration_seconds": run.duration_seconds}
        self.emit(options, payload, (
            f"run {run.pk}: {run.status}; added {run.added}, updated {run.updated}, removed {run.removed}, "
            f"failed {run.failed}, skipped {run.skipped}" + (f"\n{run.error}" if run.error else "")))
        if run.status == "failed":
            raise CommandError(run.error or f"run {run.pk} failed: see its records")
