"""Serving: load an artifact once per process and score contacts as of a cut-off, in batches."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from . import artifacts
from .calibration import Calibrator
from .config import TrainConfig
from .data import EventFrame
from .errors import ArtifactError
from .features import FeatureBatch, Preprocessor
from .labels import Samples, eligible_contacts


@dataclass
class ScoreResult:
    """Calibrated probabilities per contact as of ``cutoff``."""

    contacts: np.ndarray
    probabilities: np.ndarray
    cutoff: int
    threshold: float
    # uncalibrated scores of the served model, aligned with `contacts`: the ranking key (percentiles)
    raw_scores: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.contacts)

    def rows(self) -> list[tuple[int, float]]:
        """[(contact_id, probability)] for CSV export or bulk inserts."""
        return list(zip(self.contacts.tolist(), self.probabilities.tolist(), strict=True))


class Scorer:
    """A loaded model artifact. Load once per worker process; ``score`` is safe to call repeatedly."""

    def __init__(self, artifact_dir: str | Path) -> None:
        self.artifact_dir = Path(artifact_dir)
        self.manifest = artifacts.read_manifest(self.artifact_dir, verify=True)
        self.config = TrainConfig.from_dict(self.manifest["config"])
        self.threshold = float(self.manifest["threshold"])
        self.preprocessor = Preprocessor.load(self.artifact_dir / artifacts.PREPROCESSOR_DIR)
        try:
            self.calibrator = Calibrator.from_dict(
                json.loads((self.artifact_dir / artifacts.CALIBRATION_FILE).read_text())
            )
            self.model = keras.models.load_model(self.artifact_dir / artifacts.MODEL_FILE, compile=False)
            with np.load(self.artifact_dir / artifacts.BACKGROUND_FILE) as background:
                self.background = {k: background[k] for k in background.files}
            self.gbt = None
            if self.manifest.get("ensemble"):
                with (self.artifact_dir / artifacts.GBT_FILE).open("rb") as handle:
                    self.gbt = pickle.load(handle)
        except ArtifactError:
            raise
        except Exception as error:  # keras/zip/pickle raise many types; the caller needs one with a reason
            raise ArtifactError(f"model artifact {self.artifact_dir} cannot be loaded: {error}") from error
        signature = {
            name: tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype, name=name)
            for name, tensor in self.model.input.items()
        }
        self._predict = tf.function(
            lambda inputs: self.model(inputs, training=False), input_signature=[signature]
        )

    @property
    def target(self) -> str:
        return self.config.target

    @property
    def arch(self) -> str:
        return str(self.manifest["arch"])

    def samples(self, frame: EventFrame, cutoff: int | None = None, contacts=None) -> Samples:
        """The samples to score: given contacts, or every contact eligible at the cut-off."""
        cutoff = frame.end_ts if cutoff is None else int(cutoff)
        ids = (
            eligible_contacts(frame, cutoff, self.config.lookback_seconds)
            if contacts is None
            else np.asarray(contacts, np.int64)
        )
        return Samples(ids, np.full(len(ids), cutoff, np.int64), np.zeros(len(ids), np.int8))

    def raw_scores(self, batch: FeatureBatch, batch_size: int = 4096) -> np.ndarray:
        """Uncalibrated scores (network, averaged with the GBT for ensembles)."""
        if len(batch) == 0:
            return np.zeros(0)
        inputs = batch.inputs()
        parts = [
            self._predict({k: tf.constant(v[start : start + batch_size]) for k, v in inputs.items()}).numpy()
            for start in range(0, len(batch), batch_size)
        ]
        raw = np.concatenate(parts).reshape(-1).astype(np.float64)
        if self.gbt is not None:
            raw = (raw + self.gbt.predict_proba(batch.aggregates)[:, 1]) / 2
        return raw

    def score(
        self, frame: EventFrame, *, cutoff: int | None = None, contacts=None, batch_size: int = 4096
    ) -> ScoreResult:
        """Calibrated probabilities as of ``cutoff`` (default: just after the newest event).

        Without ``contacts`` every contact with an event in the lookback before the cut-off is scored.
        """
        cutoff = frame.end_ts if cutoff is None else int(cutoff)
        samples = self.samples(frame, cutoff, contacts)
        batch = self.preprocessor.transform(frame, samples)
        raw = self.raw_scores(batch, batch_size)
        return ScoreResult(samples.contacts, self.calibrator(raw), cutoff, self.threshold, raw)
