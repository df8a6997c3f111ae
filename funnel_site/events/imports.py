"""File import: a loader's rows, in batches, through the one ingestion service; large plain files in
several processes at once.

`events_import_file` is what ``manage.py import_events`` runs. A large uncompressed canonical CSV, Taobao or
JSON-lines file on PostgreSQL is cut into byte ranges that start on record boundaries
(``loaders.shards``), and each range is imported by a forked process of its own, with its own
database connection: parsing and validating rows is Python work bound to one core per process,
so one process cannot keep up with what the database takes. The summary is the same as that of a
one-process import of the file: counts add up, rejected rows keep their line numbers, errors come
in line order. Concurrent batches are safe in the ingest service (``_store_valid`` locks the
contacts it updates), as they are for concurrent HTTP requests.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import queue as queue_module
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from django.conf import settings
from django.db import connection, connections

from funnel_site.events import store
from funnel_site.events.loaders import LOADERS, RECORD_LOADERS, shards
from funnel_site.events.models import Workspace
from funnel_site.events.services import IngestResult, events_ingest
from funnel_site.events.stages import StageResolver

log = structlog.get_logger(__name__)

BATCH = 10_000
MAX_ERRORS_LISTED = 1000  # constant memory on a file of bad rows; the count stays exact
#: Formats whose files can be cut into byte ranges (one record per line, or CSV quoting).
SPLITTABLE = {"csv": True, "taobao": True, "jsonl": False}  # format -> records may span lines in quotes

Progress = Callable[[int], None]


class ImportFailed(RuntimeError):
    """A process of a parallel import failed; the message says which part and why."""


@dataclass
class ImportSummary:
    """What an import did, as the command prints it."""

    read: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0
    identified: int = 0
    errors: list[dict] = field(default_factory=list)  # {"line", "error"}, the first ones by line
    processes: int = 1

    def merge(self, other: ImportSummary) -> None:
        """Add another part's counts; keep the first listed errors by line."""
        self.read += other.read
        self.imported += other.imported
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.identified += other.identified
        self.errors = sorted(self.errors + other.errors, key=lambda e: e["line"])[:MAX_ERRORS_LISTED]

    def as_dict(self) -> dict:
        """The JSON summary of the public contract."""
        summary = {"read": self.read, "imported": self.imported, "duplicates": self.duplicates,
                   "rejected": self.rejected, "errors": self.errors, "processes": self.processes}
        if self.identified:
            summary["identified"] = self.identified
        if self.rejected > len(self.errors):
            summary["errors_not_listed"] = self.rejected - len(self.errors)
        return summary


def events_import_file(
    *,
    workspace: Workspace,
    path: Path,
    fmt: str,
    mapping: dict[str, str] | None = None,
    batch_size: int = BATCH,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import the file at ``path`` (format ``fmt``) into ``workspace``; returns the summary.

    Raises the loader's ``LoaderError`` (a missing column, say) before anything is stored.
    ``jobs``: processes to use (``None``: one per core when the file is large enough to split).
    """
    progress = progress or (lambda rows: None)
    read = RECORD_LOADERS.get(fmt) or LOADERS[fmt]
    rows = read(path, mapping=mapping)  # checks the header (or the folder's files) now
    if jobs is None:  # one process per core, for a file large enough to split
        jobs = max(1, min(os.cpu_count() or 1, settings.IMPORT_MAX_JOBS))
    spans = None
    # A daemonic process (a Celery prefork child, say) may not have children: it imports alone.
    forkable = not multiprocessing.current_process().daemon
    if jobs > 1 and forkable and fmt in SPLITTABLE and store.is_postgres() and not connection.in_atomic_block:
        spans = shards.split(path, jobs, quoted=SPLITTABLE[fmt], min_bytes=settings.IMPORT_MIN_SHARD_BYTES)
    with _gc_relaxed():
        if spans is None:
            return _import_rows(workspace=workspace, rows=rows, batch_size=batch_size, progress=progress)
        close = getattr(rows, "close", None)
        if close is not None:
            close()  # the header was checked; each process reads its own part
        return _import_parallel(workspace=workspace, path=path, read=read, mapping=mapping, spans=spans,
                                batch_size=batch_size, progress=progress)


@contextlib.contextmanager
def _gc_relaxed() -> Iterator[None]:
    """Fewer cyclic garbage collections while importing.

    An import allocates tens of millions of short-lived tuples; with the default threshold the
    collector ran every 700 allocations and walked every object Django had loaded, about a quarter
    of the CPU time of an import. Nothing here makes reference cycles, so collections are made rare
    and the objects of the process so far are frozen out of them (which also keeps forked processes'
    memory shared).
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _batches(rows: Iterable, size: int, summary: ImportSummary) -> Iterator[tuple[list, list[dict]]]:
    """``(batch of (line, item), rows the loader rejected before it)``; counts rows read and rejected."""
    batch: list = []
    rejected: list[dict] = []
    for line, item, error in rows:
        summary.read += 1
        if error is not None:
            summary.rejected += 1
            rejected.append({"line": line, "error": error})
            continue
        batch.append((line, item))
        if len(batch) >= size:
            yield batch, rejected
            batch, rejected = [], []
    if batch or rejected:
        yield batch, rejected


def _import_rows(*, workspace: Workspace, rows: Iterable, batch_size: int, progress: Progress) -> ImportSummary:
    """Import rows in this process, batch after batch, in file order."""
    summary = ImportSummary()
    resolver = StageResolver.for_workspace(workspace.id)
    for batch, rejected in _batches(rows, batch_size, summary):
        result = events_ingest(workspace=workspace, items=batch, resolver=resolver) if batch else IngestResult()
        summary.imported += result.imported
        summary.duplicates += result.duplicates
        summary.rejected += result.rejected
        summary.identified += result.identified
        if len(summary.errors) < MAX_ERRORS_LISTED:
            found = rejected + [{"line": e["position"], "error": e["error"]} for e in result.errors]
            found.sort(key=lambda e: e["line"])  # a batch covers a run of lines: the list stays in order
            summary.errors.extend(found[: MAX_ERRORS_LISTED - len(summary.errors)])
        progress(len(batch) + len(rejected))
    return summary


def _import_parallel(*, workspace: Workspace, path: Path, read, mapping, spans: list, batch_size: int,
                     progress: Progress) -> ImportSummary:
    """Import each span in a forked process; merge their summaries."""
    context = multiprocessing.get_context("fork")
    messages = context.Queue()
    connections.close_all()  # a forked child must open its own connection, never share the parent's
    children = [
        context.Process(
            target=_import_span,
            args=(messages, part, workspace, path, read, mapping, span, batch_size),
            name=f"import-part-{part}",
            daemon=True,
        )
        for part, span in enumerate(spans)
    ]
    log.info("import_parallel", path=str(path), processes=len(children),
             spans=[(s.start, s.end, s.first_line) for s in spans])
    for child in children:
        child.start()
    total = ImportSummary(processes=len(children))
    finished: set[int] = set()
    try:
        while len(finished) < len(children):
            try:
                kind, part, payload = messages.get(timeout=0.5)
            except queue_module.Empty:
                for part, child in enumerate(children):
                    if part not in finished and not child.is_alive() and child.exitcode != 0:
                        raise ImportFailed(
                            f"part {part + 1} of {len(children)} (from line {spans[part].first_line}) stopped "
                            f"with exit code {child.exitcode}"
                        ) from None
                continue
            if kind == "progress":
                progress(payload)
            elif kind == "done":
                total.merge(payload)
                finished.add(part)
            else:
                raise ImportFailed(
                    f"part {part + 1} of {len(children)} (from line {spans[part].first_line}) failed: {payload}"
                )
    except BaseException:
        for child in children:
            if child.is_alive():
                child.terminate()
        raise
    finally:
        for child in children:
            child.join(timeout=30)
        messages.close()
    return total


def _import_span(messages, part: int, workspace: Workspace, path: Path, read, mapping, span, batch_size: int) -> None:
    """The body of a forked import process: import one span, report progress and the summary."""
    _forget_inherited_connections()
    try:
        rows = read(path, mapping=mapping, span=span)
        summary = _import_rows(workspace=workspace, rows=rows, batch_size=batch_size,
                               progress=lambda n: messages.put(("progress", part, n)))
        messages.put(("done", part, summary))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which stops the others
        messages.put(("failed", part, f"{exc.__class__.__name__}: {exc}"))
    finally:
        connections.close_all()


_INHERITED: list = []


def _forget_inherited_connections() -> None:
    """In a forked process: drop, never close, the database connections inherited from the parent.

    The parent closes its connections before forking, but only those its current context sees (a
    thread that ran an asyncio loop keeps others); the child sees the plain thread-local ones, which
    may hold a connection of the parent's: using it would interleave two processes on one socket,
    closing it would end the parent's session. So the child forgets them and opens its own; the
    forgotten wrappers stay referenced until the process exits, so no finalizer closes them either.
    """
    for alias in connections:
        _INHERITED.append(connections[alias])
        del connections[alias]
