"""python manage.py generate_events --workspace SLUG --contacts N --seed S [--days D] [--json]"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.core.management.base import CommandError

from funnel_site.cli import ContractCommand
from funnel_site.events.services import IngestResult, events_ingest
from funnel_site.events.stages import StageResolver

BATCH = 10_000


class Command(ContractCommand):
    help = (
        "Generate realistic campaign and funnel behaviour (see funnel_site/events/synthetic.py for the "
        "hidden process) and stream it into the workspace. Same seed, same events: running it twice "
        "stores nothing new."
    )

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--contacts", type=int, default=1000)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--start", default=None, help="ISO date of the first day (default: DAYS before today)")
        parser.add_argument("--first-contact", type=int, default=0, help="generate contacts from this index on")
        parser.add_argument("--batch-size", type=int, default=BATCH)

    def handle(self, *args, **options) -> None:
        from funnel_site.events.synthetic import generate

        workspace = self.get_workspace(options["workspace"])
        if options["contacts"] <= 0:
            raise CommandError(f"--contacts must be positive, got {options['contacts']}")
        if options["days"] <= 0:
            raise CommandError(f"--days must be positive, got {options['days']}")
        if options["start"]:
            try:
                start = datetime.fromisoformat(options["start"])
            except ValueError:
                raise CommandError(f"--start {options['start']!r} is not an ISO-8601 date") from None
            start = start if start.tzinfo else start.replace(tzinfo=UTC)
        else:
            today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            start = today - timedelta(days=options["days"])
        resolver = StageResolver.for_workspace(workspace.id)
        total = IngestResult()
        batch: list[tuple[int, dict]] = []
        bar = self.progress(total=None, unit="event", desc="generate")
        started = datetime.now(UTC)
        items = generate(contacts=options["contacts"], seed=options["seed"], start=start,
                         days=options["days"], first_contact=options["first_contact"])
        try:
            for n, item in enumerate(items):
                batch.append((n, item))
                if len(batch) >= options["batch_size"]:
                    total.add(events_ingest(workspace=workspace, items=batch, resolver=resolver))
                    bar.update(len(batch))
                    batch = []
            if batch:
                total.add(events_ingest(workspace=workspace, items=batch, resolver=resolver))
                bar.update(len(batch))
        finally:
            bar.close()
        seconds = (datetime.now(UTC) - started).total_seconds()
        summary = {
            "contacts": options["contacts"],
            "generated": total.received,
            "imported": total.imported,
            "duplicates": total.duplicates,
            "rejected": total.rejected,
            "seconds": round(seconds, 2),
            "errors": total.errors[:20],
        }
        self.emit(options, summary,
                  f"generated {total.received} events for {options['contacts']} contacts: imported "
                  f"{total.imported}, duplicates {total.duplicates}, rejected {total.rejected} in {seconds:.1f}s")
