"""The read model's snapshot on disk: a workspace's columns as .npy files that every process maps.

Layout, per database and workspace, under `READ_MODEL_DIR` (default `<VAR_DIR>/readmodel`):

    <db key>/ws<id>/CURRENT              the name of the newest version directory (replaced atomically)
    <db key>/ws<id>/v<seq>-<token>/      one version: <column>.npy files and manifest.json
    <db key>/ws<id>/lock                 flock: one writer at a time

A version is written completely into a directory of its own, then named in CURRENT by an atomic
rename: a reader sees either the old version or the new one, never half of one. Readers map the
files read-only (the page cache holds one copy for all processes) and check each file's CRC-32
against the manifest first: a corrupt or partial file is reported (`SnapshotCorrupt`) and the
version deleted, so the caller rebuilds it from the database, which holds every event.
The manifest names the log's epoch, sequence number and that log row's id range, so a snapshot
of another database, or of one since recreated, is never taken for this one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog
from django.conf import settings
from django.db import connection

log = structlog.get_logger(__name__)

COLUMNS = {
    "event_id": np.int64, "contact": np.int64, "ts": np.int64, "name": np.int32,
    "campaign": np.int64, "channel": np.int32, "value": np.float64,
}
_FORMAT = 1
_CRC_BLOCK = 1 << 24


class SnapshotCorrupt(Exception):
    """A snapshot file does not match its manifest (checksum, size or format)."""


@dataclass
class Snapshot:
    """A mapped version: its arrays (read-only memory maps) and its manifest."""

    arrays: dict[str, np.ndarray]
    manifest: dict
    path: Path


def snapshots_enabled() -> bool:
    """Whether the read model keeps snapshots on disk (`READ_MODEL_DIR`; empty disables them)."""
    return bool(getattr(settings, "READ_MODEL_DIR", None))


def workspace_dir(workspace_id: int) -> Path:
    """The snapshot folder of a workspace of the default database."""
    db = connection.settings_dict
    key = hashlib.sha256(
        f"{connection.vendor}|{db.get('HOST')}|{db.get('PORT')}|{db.get('NAME')}".encode()
    ).hexdigest()[:12]
    return Path(settings.READ_MODEL_DIR) / key / f"ws{workspace_id}"


def _crc(array: np.ndarray) -> int:
    flat = array.reshape(-1).view(np.uint8)
    crc = 0
    for start in range(0, flat.shape[0], _CRC_BLOCK):
        crc = zlib.crc32(flat[start : start + _CRC_BLOCK], crc)
    return crc


def _crcs(arrays: list[np.ndarray]) -> list[int]:
    """CRC-32 of each array, in threads (zlib releases the GIL): a fresh process checks 480 MB
    at 10 M events before it answers, and this halves that on two cores."""
    if sum(a.nbytes for a in arrays) < 4 * _CRC_BLOCK:
        return [_crc(a) for a in arrays]
    largest_first = sorted(range(len(arrays)), key=lambda x: -arrays[x].nbytes)
    with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, len(arrays))) as pool:
        found = dict(zip(largest_first, pool.map(lambda x: _crc(arrays[x]), largest_first), strict=True))
    return [found[x] for x in range(len(arrays))]


def current_name(workspace_id: int) -> str:
    """The name of the newest version ('' when there is none)."""
    try:
        return (workspace_dir(workspace_id) / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return ""


def snapshot_open(workspace_id: int) -> Snapshot | None:
    """The newest version of the workspace, mapped and verified; None when there is none.

    Raises `SnapshotCorrupt` (after deleting the version) when a file fails its checksum.
    """
    folder = workspace_dir(workspace_id)
    for _ in range(3):  # a writer may delete the version named a moment ago: read CURRENT again
        try:
            name = (folder / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        path = folder / name
        try:
            manifest = json.loads((path / "manifest.json").read_text())
            if manifest.get("format") != _FORMAT:
                raise SnapshotCorrupt(f"snapshot {path} has format {manifest.get('format')!r}, not {_FORMAT}")
            arrays = {}
            for column, dtype in COLUMNS.items():
                array = np.load(path / f"{column}.npy", mmap_mode="r", allow_pickle=False)
                if array.dtype != dtype or array.shape != (manifest["size"],):
                    raise SnapshotCorrupt(f"snapshot file {path / column}.npy has the wrong type or length")
                arrays[column] = array
            for column, crc in zip(arrays, _crcs(list(arrays.values())), strict=True):
                if crc != manifest["crc32"][column]:
                    raise SnapshotCorrupt(f"snapshot file {path / column}.npy fails its checksum")
            return Snapshot(arrays=arrays, manifest=manifest, path=path)
        except FileNotFoundError:
            if (folder / "CURRENT").exists() and (folder / "CURRENT").read_text().strip() != name:
                continue
            _discard(path)
            raise SnapshotCorrupt(f"snapshot {path} is incomplete (a file is missing)") from None
        except SnapshotCorrupt:
            _discard(path)
            raise
        except (ValueError, KeyError, OSError) as exc:  # unreadable header or manifest
            _discard(path)
            raise SnapshotCorrupt(f"snapshot {path} is unreadable: {exc}") from exc
    return None


def _discard(path: Path) -> None:
    log.warning("read_model_snapshot_discarded", path=str(path))
    shutil.rmtree(path, ignore_errors=True)
    pointer = path.parent / "CURRENT"
    try:
        if pointer.read_text().strip() == path.name:
            pointer.unlink()
    except FileNotFoundError:
        pass


@contextmanager
def writer_lock(workspace_id: int, timeout: float) -> Iterator[None]:
    """Hold the workspace's writer lock (other processes wait, then map what it wrote)."""
    folder = workspace_dir(workspace_id)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "a+") as handle:
        give_up = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > give_up:
                    raise TimeoutError(f"another process has held the read-model lock of workspace "
                                       f"{workspace_id} for over {timeout:g} s") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def snapshot_write(workspace_id: int, *, manifest: dict, fill) -> Snapshot:
    """Write a new version and make it CURRENT; `fill(column, out)` writes each column into `out`.

    Call under `writer_lock`. Older versions are deleted: processes that mapped them keep their
    pages until they unmap them (POSIX unlink semantics), and map CURRENT on their next refresh.
    """
    folder = workspace_dir(workspace_id)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"v{manifest['seq']}-{secrets.token_hex(4)}"
    path = folder / f".{name}.tmp"
    path.mkdir()
    crcs = {}
    for column, dtype in COLUMNS.items():
        out = np.lib.format.open_memmap(path / f"{column}.npy", mode="w+", dtype=dtype, shape=(manifest["size"],))
        fill(column, out)
        out.flush()
        crcs[column] = _crc(out)
        del out
    manifest = {**manifest, "format": _FORMAT, "crc32": crcs, "written_at": time.time()}
    (path / "manifest.json").write_text(json.dumps(manifest))
    os.rename(path, folder / name)
    pointer = folder / f".CURRENT.{secrets.token_hex(4)}"
    pointer.write_text(name)
    os.replace(pointer, folder / "CURRENT")
    for old in folder.iterdir():
        if old.is_dir() and old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    arrays = {c: np.load(folder / name / f"{c}.npy", mmap_mode="r") for c in COLUMNS}
    return Snapshot(arrays=arrays, manifest=manifest, path=folder / name)
