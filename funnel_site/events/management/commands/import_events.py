"""python manage.py import_events PATH --workspace SLUG [--format F] [--map field=column ...] [--json]"""

from __future__ import annotations

from collections import deque
from pathlib import Path

from django.core.management.base import CommandError

from funnel_site.cli import ContractCommand
from funnel_site.events.services import IngestResult, events_ingest_stream
from funnel_site.events.stages import StageResolver

BATCH = 10_000
MAX_ERRORS_LISTED = 1000  # constant memory on a file of bad rows; the count stays exact


class Command(ContractCommand):
    help = (
        "Import events from a file: the canonical CSV (contact_id,event,timestamp[,campaign,channel,"
        "value,message_id,properties]), JSONL, Segment messages, or the Taobao, CDNOW, Complete Journey "
        "and Olist data sets. Importing the same file again imports nothing new."
    )

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("path")
        parser.add_argument("--format", default=None, help="csv|jsonl|segment|cdnow|taobao|completejourney|olist")
        parser.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN",
                            help="read a canonical field from a differently named column")
        parser.add_argument("--batch-size", type=int, default=BATCH)

    def handle(self, *args, **options) -> None:
        from funnel_site.events.loaders import LOADERS
        from funnel_site.events.loaders.base import LoaderError

        workspace = self.get_workspace(options["workspace"])
        path = Path(options["path"])
        if not path.exists():
            raise CommandError(f"{path} does not exist")
        fmt = options["format"] or _guess_format(path)
        if fmt not in LOADERS:
            raise CommandError(f"--format {fmt!r} is unknown: use one of {', '.join(sorted(LOADERS))}")
        mapping = {}
        for pair in options["map"]:
            field, sep, column = pair.partition("=")
            if not sep or not field.strip() or not column.strip():
                raise CommandError(f"--map {pair!r} must be FIELD=COLUMN, e.g. contact_id=user_id")
            mapping[field.strip()] = column.strip()

        total = IngestResult()
        errors: list[dict] = []
        resolver = StageResolver.for_workspace(workspace.id)
        size = options["batch_size"]
        read = 0
        # Rows the loader rejects, per batch, listed before that batch's own rejections: batches are
        # stored while the next ones are read, so their results come back later than the reading.
        loader_errors: deque[tuple[int, list[dict]]] = deque()
        bar = self.progress(total=None, unit="row", desc=f"import {path.name}")

        def note(result: IngestResult | None, rows_in_batch: int) -> None:
            rejected_by_loader, listed = loader_errors.popleft()
            total.rejected += rejected_by_loader
            for e in listed:
                if len(errors) < MAX_ERRORS_LISTED:
                    errors.append(e)
            if result is not None:
                total.add(IngestResult(received=0, imported=result.imported, duplicates=result.duplicates,
                                       rejected=result.rejected, identified=result.identified))
                for e in result.errors:
                    if len(errors) < MAX_ERRORS_LISTED:
                        errors.append({"line": e["position"], "error": e["error"]})
            bar.update(rows_in_batch)

        def batches(rows):
            nonlocal read
            batch: list[tuple[int, object]] = []
            rejected, listed = 0, []
            for line, item, error in rows:
                read += 1
                if error is not None:
                    rejected += 1
                    if len(listed) < MAX_ERRORS_LISTED:
                        listed.append({"line": line, "error": error})
                    continue
                batch.append((line, item))
                if len(batch) >= size:
                    loader_errors.append((rejected, listed))
                    yield batch
                    batch, rejected, listed = [], 0, []
            loader_errors.append((rejected, listed))
            if batch:
                yield batch

        try:
            rows = LOADERS[fmt](path, mapping=mapping or None)
            for result in events_ingest_stream(workspace=workspace, batches=batches(rows), resolver=resolver):
                note(result, result.received)
            if loader_errors:  # rejected rows after the last batch
                note(None, 0)
        except LoaderError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
        finally:
            bar.close()
        summary = {
            "read": read,
            "imported": total.imported,
            "duplicates": total.duplicates,
            "rejected": total.rejected,
            "errors": errors,
        }
        if total.identified:
            summary["identified"] = total.identified
        if total.rejected > len(errors):
            summary["errors_not_listed"] = total.rejected - len(errors)
        self.emit(
            options,
            summary,
            f"{path.name}: read {read}, imported {total.imported}, duplicates {total.duplicates}, "
            f"rejected {total.rejected}"
            + "".join(f"\n  line {e['line']}: {e['error']}" for e in errors[:20]),
        )


def _guess_format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if path.is_dir():
        if (path / "campaign_descriptions.csv").exists():
            return "completejourney"
        if (path / "olist_marketing_qualified_leads_dataset.csv").exists():
            return "olist"
        raise CommandError(f"{path} is a directory: say --format completejourney or --format olist")
    if name.endswith(".jsonl") or name.endswith(".ndjson"):
        return "jsonl"
    if name.startswith("cdnow"):
        return "cdnow"
    if name.startswith("userbehavior"):
        return "taobao"
    return "csv"
