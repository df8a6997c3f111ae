"""Files: the whole audience as CSV or JSONL, replaced atomically after each run, at a local path
(the default) or in object storage through Django's storage API.

A file is a snapshot, not a stream of changes: the engine still diffs (so counts say what changed)
and then hands the adapter every delivered record.

- Local (`INTEGRATIONS_FILE_STORAGE` empty): the path lies under INTEGRATIONS_FILE_ROOT (so an API
  caller cannot write anywhere); the file is written to a temporary name in the same directory,
  flushed, fsynced and renamed over the old one, so a reader never sees half a file.
- Storage (`INTEGRATIONS_FILE_STORAGE` names an alias of STORAGES, e.g. django-storages' S3Storage):
  the file is rendered to a local temporary file first, then handed to the storage in one `save`.
  An object store replaces an object whole (an S3 PUT, or a multipart upload, becomes visible only
  when complete), so readers see the old export or the new one. A storage with local paths
  (FileSystemStorage) gets the temporary-file-and-rename above under its own location. The storage
  must overwrite (S3Storage `file_overwrite`, its default): one that would save under another name
  is refused rather than leaving exports beside each other.
"""

from __future__ import annotations

import csv
import io
import json
import os
import posixpath
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
        self.storage  # noqa: B018 - refuse an unknown storage when the destination is made
        self.path if self.storage is None else self.name  # noqa: B018 - refuse a path outside the root
        self.format  # noqa: B018

    @property
    def storage(self):
        """The Django storage of INTEGRATIONS_FILE_STORAGE, or None for the local path."""
        alias = getattr(settings, "INTEGRATIONS_FILE_STORAGE", "")
        if not alias:
            return None
        from django.core.files.storage import InvalidStorageError, storages

        try:
            return storages[alias]
        except InvalidStorageError:
            raise ConfigurationError(f"INTEGRATIONS_FILE_STORAGE={alias!r} is not an alias of STORAGES") from None

    @property
    def name(self) -> str:
        """The export's name inside the storage: relative, normalised, never above its root."""
        raw = str(self.settings["path"]).replace("\\", "/")
        name = posixpath.normpath(raw.lstrip("/"))
        if raw.startswith("/") or name == "." or name.startswith("../") or name == "..":
            raise ConfigurationError("settings.path must be a relative path inside the export storage")
        return name

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
        storage = self.storage
        if storage is not None:
            try:
                present = storage.exists(self.name)  # a cheap authenticated call
            except Exception as exc:  # noqa: BLE001 - any backend's error: the sentence names it
                raise ConfigurationError(f"export storage refused: {exc.__class__.__name__}: {exc}"[:500]) from None
            return f"storage {settings.INTEGRATIONS_FILE_STORAGE!r} reachable; {self.name} " + (
                "exists" if present else "will be created") + f" ({self.format})"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(self.path.parent, os.W_OK):
            raise ConfigurationError(f"{self.path.parent} is not writable")
        return f"{self.path} is writable ({self.format})"

    def upsert(self, records: list[Record]) -> list[Outcome]:
        return [Outcome(r.contact_id, True) for r in records]

    def remove(self, records: list[Record]) -> list[Outcome]:
        return [Outcome(r.contact_id, True) for r in records]

    def _render(self, records: list[Record], out) -> None:
        columns = sorted({k for r in records for k in r.fields})
        if self.format == "csv":
            writer = csv.writer(out)
            writer.writerow(["contact_id", "email", *columns])
            for r in records:
                writer.writerow([r.external_id, r.email, *("" if r.fields.get(c) is None else r.fields[c] for c in columns)])
        else:
            for r in records:
                out.write(json.dumps({"contact_id": r.external_id, "email": r.email, **r.fields}) + "\n")

    def write_snapshot(self, records: list[Record]) -> None:
        storage = self.storage
        if storage is None:
            self._replace_local(records, self.path)
            return
        try:
            local = Path(storage.path(self.name))
        except NotImplementedError:  # an object store: no local path
            local = None
        if local is not None:
            self._replace_local(records, local)
            return
        self._save_to_storage(storage, records)

    def _replace_local(self, records: list[Record], target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
                self._render(records, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _save_to_storage(self, storage, records: list[Record]) -> None:
        from django.core.files import File

        name = self.name
        with tempfile.TemporaryFile() as buffer:
            text = io.TextIOWrapper(buffer, encoding="utf-8", newline="")
            self._render(records, text)
            text.flush()
            text.detach()  # keep `buffer` open for the upload
            buffer.seek(0)
            saved = storage.save(name, File(buffer, name=posixpath.basename(name)))
        if saved != name:
            storage.delete(saved)
            raise ConfigurationError(f"the export storage saved {name} as {saved}: it must overwrite "
                                     "(S3Storage: file_overwrite=True, its default)")
