"""Files: the whole audience as CSV or JSONL at a path, replaced atomically after each run.

A file is a snapshot, not a stream of changes: the engine still diffs (so counts say what changed)
and then hands the adapter every delivered record; the file is written to a temporary name in the
same directory, flushed, fsynced and renamed over the old one, so a reader never sees half a file.
The path must lie under INTEGRATIONS_FILE_ROOT (a setting), so an API caller cannot write anywhere.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

from django.conf import settings

from integrations.destinations.base import BaseDestination, ConfigurationError, Outcome, Record


class FileDestination(BaseDestination):
    kind = "file"
    batch_size = 10_000
    max_batch_size = 100_000
    rate_limit = (1_000_000.0, 1_000_000)
    snapshot = True
    required_settings = ("path",)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.path  # noqa: B018 - refuse a path outside the root when the destination is made
        self.format  # noqa: B018

    @property
    def path(self) -> Path:
        """The target file, resolved under INTEGRATIONS_FILE_ROOT."""
        root = Path(settings.INTEGRATIONS_FILE_ROOT).resolve()
        target = (root / self.settings["path"]).resolve()
        if root != target and root not in target.parents:
            raise ConfigurationError(f"settings.path must stay under {root}")
        return target

    @property
    def format(self) -> str:
        fmt = self.settings.get("format") or ("jsonl" if str(self.settings["path"]).endswith(".jsonl") else "csv")
        if fmt not in ("csv", "jsonl"):
            raise ConfigurationError("settings.format must be csv or jsonl")
        return fmt

    def test_connection(self) -> str:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(self.path.parent, os.W_OK):
            raise ConfigurationError(f"{self.path.parent} is not writable")
        return f"{self.path} is writable ({self.format})"

    def upsert(self, records: list[Record]) -> list[Outcome]:
        return [Outcome(r.contact_id, True) for r in records]

    def remove(self, records: list[Record]) -> list[Outcome]:
        return [Outcome(r.contact_id, True) for r in records]

    def write_snapshot(self, records: list[Record]) -> None:
        target = self.path
        target.parent.mkdir(parents=True, exist_ok=True)
        columns = sorted({k for r in records for k in r.fields})
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
                if self.format == "csv":
                    writer = csv.writer(out)
                    writer.writerow(["contact_id", "email", *columns])
                    for r in records:
                        writer.writerow([r.external_id, r.email, *("" if r.fields.get(c) is None else r.fields[c] for c in columns)])
                else:
                    for r in records:
                        out.write(json.dumps({"contact_id": r.external_id, "email": r.email, **r.fields}) + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
