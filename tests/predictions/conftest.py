"""Fixtures of the predictions tests: synthetic workspaces, tiny training sizes, a trained artifact."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DAY = 86400
START = datetime(2026, 1, 1, tzinfo=UTC)
# Small enough to train in seconds on 2 shared cores; eligibility lowered to match the small data.
TINY = {"units": 4, "embedding_dim": 2, "dense_units": 4, "epochs": 2, "max_events": 16, "batch_size": 256,
        "min_positives": 20, "min_negatives": 20, "n_cutoffs": 2, "min_report_class_count": 5,
        "unit_choices": [4], "hmm_max_sequences": 300}


def ingest_synthetic(workspace, *, contacts: int = 400, seed: int = 3, days: int = 60) -> int:
    """Generate synthetic behaviour into a workspace through the product's ingestion service."""
    from funnel_site.events.services import events_ingest
    from funnel_site.events.synthetic import generate

    items = list(generate(contacts=contacts, seed=seed, start=START, days=days))
    result = events_ingest(workspace=workspace, items=list(enumerate(items)))
    assert result.rejected == 0
    return result.imported


@pytest.fixture
def synthetic_workspace(workspace_with_key):
    """The `acme` workspace with 400 synthetic contacts over 60 days."""
    workspace, _ = workspace_with_key
    ingest_synthetic(workspace)
    return workspace


def wait_for(version, statuses, timeout: float = 240.0, seen: list | None = None):
    """Poll a ModelVersion until its status is one of `statuses`; records every status seen."""
    deadline = time.monotonic() + timeout
    while True:
        version.refresh_from_db()
        if seen is not None and (not seen or seen[-1] != version.status):
            seen.append(version.status)
        if version.status in statuses:
            return version
        if time.monotonic() > deadline:
            raise AssertionError(f"model {version.pk} still {version.status} after {timeout}s: {version.progress}")
        time.sleep(0.2)


def synthetic_frame(contacts: int = 400, seed: int = 3):
    """The same synthetic behaviour as an EventFrame built in memory (no database), outbound dropped."""
    from funnel_site.events.stages import StageResolver, is_outbound
    from funnel_site.events.synthetic import generate
    from predictions.ml.data import EventFrame

    resolver = StageResolver()
    rows = [i for i in generate(contacts=contacts, seed=seed, start=START, days=60) if not is_outbound(i["event"])]
    ids = {c: n for n, c in enumerate(dict.fromkeys(r["contact_id"] for r in rows))}
    return EventFrame.from_arrays(
        [ids[r["contact_id"]] for r in rows], [r["timestamp"] for r in rows], [r["event"] for r in rows],
        [resolver.stage_of(r["event"]) for r in rows], [resolver.is_purchase(r["event"]) for r in rows],
        [r.get("campaign") for r in rows], [r.get("channel") for r in rows],
        [r.get("value", np.nan) for r in rows],
    )


@pytest.fixture(scope="session")
def trained_artifact(tmp_path_factory):
    """One tiny purchase LSTM trained in this process (no worker, no database): (directory, result)."""
    from predictions.ml.config import TrainConfig
    from predictions.ml.trainer import train_model

    config = TrainConfig(target="purchase", horizon_seconds=7 * DAY, lookback_seconds=28 * DAY, arch="lstm", **TINY)
    directory = tmp_path_factory.mktemp("artifact") / "purchase"
    result = train_model(synthetic_frame(), config, artifact_dir=directory)
    return directory, result


@pytest.fixture
def make_version(trained_artifact, settings):
    """Create a succeeded ModelVersion of a workspace backed by a copy of the trained artifact."""
    from predictions.models import ModelVersion

    directory, result = trained_artifact

    def make(workspace, *, active: bool = True, target: str = "purchase") -> ModelVersion:
        version = ModelVersion.objects.create(
            workspace=workspace, target=target, arch="lstm", trained_arch=result.arch, status="succeeded",
            scoreboard=result.to_dict()["scoreboard"], importance=result.to_dict()["importance"],
            config={"train": {**result.config, "target": target}, "cutoff_unix": None, "auto_activate": False},
            metrics=result.metrics, baselines=result.baselines, curves=result.curves, counts=result.counts,
            threshold=result.threshold, calibration=result.calibration, is_active=active,
        )
        target_dir = settings.MODEL_ARTIFACT_DIR / str(workspace.pk) / str(version.pk)
        shutil.rmtree(target_dir, ignore_errors=True)
        shutil.copytree(directory, target_dir)
        version.artifact_path = str(target_dir)
        version.save(update_fields=["artifact_path"])
        return version

    return make


@pytest.fixture(autouse=True)
def _fresh_column_cache():
    """Rolled-back tests reuse ids: never let one test's cached events leak into the next."""
    from funnel_site.events.columns import column_cache

    column_cache.clear()
    yield
    column_cache.clear()
