"""Artifact directory layout, atomic publishing and integrity checks (no TensorFlow here).

Layout: manifest.json (metadata + sha256 of every other file; ``arch`` names the served candidate),
preprocessor/, calibration.json, background.npz (explanation reference samples), hmm.pkl (when the
served candidate reads the HMM state), candidates/<name>/ (the served candidate; for the stack also
its parts).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from .errors import ArtifactError

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
PREPROCESSOR_DIR = "preprocessor"
CALIBRATION_FILE = "calibration.json"
BACKGROUND_FILE = "background.npz"
HMM_FILE = "hmm.pkl"
CANDIDATES_DIR = "candidates"
REQUIRED = (CALIBRATION_FILE, BACKGROUND_FILE)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def publish(artifact_dir: str | Path, write_files: Callable[[Path], None], manifest: dict) -> Path:
    """Write files into a temp dir beside ``artifact_dir``, add the manifest, then os.replace it into place.

    Readers never see a half-written artifact; an existing artifact at the path is replaced whole.
    """
    final = Path(artifact_dir).resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    temp.mkdir()
    try:
        write_files(temp)
        files = sorted(p for p in temp.rglob("*") if p.is_file())
        manifest = {
            **manifest,
            "format_version": FORMAT_VERSION,
            "files": {str(p.relative_to(temp)): _sha256(p) for p in files},
        }
        (temp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))
        move_into_place(temp, final)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return final


def move_into_place(source: str | Path, final: str | Path) -> Path:
    """Rename the directory ``source`` to ``final`` (same file system), replacing whatever was there whole.

    A reader sees the old directory or the new one, never a mix: the old one is renamed aside first,
    then removed.
    """
    source, final = Path(source), Path(final)
    trash = None
    if final.exists():
        trash = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(final, trash)
    os.replace(source, final)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
    return final


def read_manifest(artifact_dir: str | Path, verify: bool = True) -> dict:
    """The manifest of an artifact; with ``verify`` every listed file must exist with its checksum."""
    directory = Path(artifact_dir)
    if not directory.is_dir():
        raise ArtifactError(f"model artifact {directory} does not exist")
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError as error:
        raise ArtifactError(f"model artifact {directory} has no {MANIFEST} (incomplete write?)") from error
    except (OSError, ValueError) as error:
        raise ArtifactError(f"model artifact {directory}: unreadable {MANIFEST}: {error}") from error
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"model artifact {directory}: unsupported format {manifest.get('format_version')!r}"
        )
    files = manifest.get("files", {})
    for required in REQUIRED:
        if required not in files:
            raise ArtifactError(f"model artifact {directory}: manifest lists no {required}")
    if verify:
        for name, checksum in files.items():
            path = directory / name
            if not path.is_file():
                raise ArtifactError(f"model artifact {directory}: missing file {name}")
            if _sha256(path) != checksum:
                raise ArtifactError(f"model artifact {directory}: {name} is corrupt (checksum mismatch)")
    return manifest
