"""Fixtures for the loader tests: the shared real data sets (skipped when absent)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

#: ../shared/datasets beside the project root; never copied into the repository.
DATASETS = Path(__file__).resolve().parents[3] / ".." / "shared" / "datasets"


@pytest.fixture
def datasets() -> Path:
    if not DATASETS.is_dir():
        pytest.skip("the shared data sets are not on this machine")
    return DATASETS


def dataset(relative: str) -> Path:
    path = DATASETS / relative
    if not path.exists():
        pytest.skip(f"{relative} is not on this machine")
    return path


@pytest.fixture
def write(tmp_path):
    """write(name, text_or_bytes, gz=False) -> path of a small inline fixture file."""

    def _write(name: str, content: str | bytes, gz: bool = False) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode("utf-8") if isinstance(content, str) else content
        if gz:
            with gzip.open(path, "wb") as fh:
                fh.write(data)
        else:
            path.write_bytes(data)
        return path

    return _write
