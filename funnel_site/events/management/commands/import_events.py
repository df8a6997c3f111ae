"""python manage.py import_events PATH --workspace SLUG [--format F] [--map field=column ...] [--jobs N] [--json]"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from funnel_site.cli import ContractCommand
from funnel_site.events.imports import BATCH, ImportFailed, events_import_file


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
        parser.add_argument("--jobs", type=int, default=None, metavar="N",
                            help="processes importing parts of a large CSV or JSONL file at once on PostgreSQL "
                                 "(default: one per core when the file is large enough; 1: one process)")

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
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        if options["jobs"] is not None and options["jobs"] < 1:
            raise CommandError("--jobs must be at least 1")
        mapping = {}
        for pair in options["map"]:
            field, sep, column = pair.partition("=")
            if not sep or not field.strip() or not column.strip():
                raise CommandError(f"--map {pair!r} must be FIELD=COLUMN, e.g. contact_id=user_id")
            mapping[field.strip()] = column.strip()

        bar = self.progress(total=None, unit="row", desc=f"import {path.name}")
        try:
            summary = events_import_file(
                workspace=workspace, path=path, fmt=fmt, mapping=mapping or None,
                batch_size=options["batch_size"], jobs=options["jobs"], progress=bar.update,
            )
        except (LoaderError, ImportFailed) as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
        finally:
            bar.close()
        self.emit(
            options,
            summary.as_dict(),
            f"{path.name}: read {summary.read}, imported {summary.imported}, duplicates {summary.duplicates}, "
            f"rejected {summary.rejected}"
            + "".join(f"\n  line {e['line']}: {e['error']}" for e in summary.errors[:20]),
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
