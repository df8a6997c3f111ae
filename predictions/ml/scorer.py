"""Serving: load an artifact once per process and score contacts as of a cut-off, for every family."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import artifacts
from .calibration import Calibrator
from .candidates import CLASSICAL, Candidate, Inputs
from .config import TrainConfig
from .data import EventFrame
from .errors import ArtifactError
from .features import Preprocessor
from .inputs import build_inputs, load_inputs
from .labels import Samples, eligible_contacts

NETWORKS = ("lstm", "gru", "rnn")
_POOLS: list = []


def _thread_pools():
    """The process's native thread pools, found once: a `threadpool_limits` per call scans every loaded
    library again (0.1 s per batch of a scoring shard, profiled)."""
    if not _POOLS:
        from threadpoolctl import ThreadpoolController

        _POOLS.append(ThreadpoolController())
    return _POOLS[0]


@dataclass
class ScoreResult:
    """Calibrated probabilities per contact as of ``cutoff``; ``raw_scores`` is the served candidate's
    uncalibrated score (higher = more likely), the ranking key for percentiles."""

    contacts: np.ndarray
    probabilities: np.ndarray
    cutoff: int
    threshold: float
    raw_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.contacts)

    def rows(self) -> list[tuple[int, float]]:
        """[(contact_id, probability)] for CSV export or bulk inserts."""
        return list(zip(self.contacts.tolist(), self.probabilities.tolist(), strict=True))


def load_candidate(directory: Path, name: str, config: TrainConfig, preprocessor, parts=None,
                   network_loader=None) -> Candidate:
    """The fitted candidate saved under ``directory/name``; ``network_loader(folder)``, when given,
    loads a network instead of Keras (predictions.serving: a numpy forward pass, no TensorFlow)."""
    folder = directory / artifacts.CANDIDATES_DIR / name
    if name in NETWORKS:
        if network_loader is not None:
            return network_loader(folder)
        from .networks import Network

        return Network.load(folder, config, preprocessor)
    if name == "stack":
        from .stack import Stack

        return Stack.load(folder, config, parts)
    if name in CLASSICAL:
        return CLASSICAL[name].load(folder, config)
    raise ArtifactError(f"model artifact {directory}: unknown candidate {name!r}")


class Scorer:
    """A loaded model artifact. Load once per worker process; ``score`` is safe to call repeatedly."""

    def __init__(self, artifact_dir: str | Path, *, network_loader=None) -> None:
        self.artifact_dir = Path(artifact_dir)
        self.manifest = artifacts.read_manifest(self.artifact_dir, verify=True)
        self.config = TrainConfig.from_dict(self.manifest["config"])
        self.threshold = float(self.manifest["threshold"])
        self.state_names = list(self.manifest.get("state_names", []))
        try:
            self.preprocessor = Preprocessor.load(self.artifact_dir / artifacts.PREPROCESSOR_DIR)
            self.calibrator = Calibrator.from_dict(
                json.loads((self.artifact_dir / artifacts.CALIBRATION_FILE).read_text()))
            self.background = load_inputs(self.artifact_dir / artifacts.BACKGROUND_FILE)
            self.state_model = None
            if (self.artifact_dir / artifacts.HMM_FILE).is_file():
                with (self.artifact_dir / artifacts.HMM_FILE).open("rb") as handle:
                    self.state_model = pickle.load(handle)
            parts = {n: load_candidate(self.artifact_dir, n, self.config, self.preprocessor,
                                       network_loader=network_loader)
                     for n in self.manifest.get("parts", [])}
            self.candidate = load_candidate(self.artifact_dir, self.arch, self.config, self.preprocessor, parts,
                                            network_loader=network_loader)
        except ArtifactError:
            raise
        except Exception as error:  # keras/zip/pickle raise many types; the caller needs one with a reason
            raise ArtifactError(f"model artifact {self.artifact_dir} cannot be loaded: {error}") from error

    @property
    def target(self) -> str:
        return self.config.target

    @property
    def arch(self) -> str:
        """The served candidate (lstm, gru, rnn, hmm, gbt, gbt_hmm, logreg, recency, bgnbd, stack)."""
        return str(self.manifest["arch"])

    @property
    def model(self):
        """The Keras model of a served network (None for other families)."""
        return getattr(self.candidate, "model", None) if self.arch in NETWORKS else None

    def samples(self, frame: EventFrame, cutoff: int | None = None, contacts=None) -> Samples:
        """The samples to score: given contacts, or every contact eligible at the cut-off."""
        cutoff = frame.end_ts if cutoff is None else int(cutoff)
        ids = (eligible_contacts(frame, cutoff, self.config.lookback_seconds) if contacts is None
               else np.asarray(contacts, np.int64))
        return Samples(ids, np.full(len(ids), cutoff, np.int64), np.zeros(len(ids), np.int8))

    def inputs(self, frame: EventFrame, samples: Samples) -> Inputs:
        """Everything the served candidate reads about ``samples`` (the HMM posterior only when the
        candidate uses it: a network or a tree without states does not pay for it)."""
        uses_hmm = bool(getattr(self.candidate, "uses_hmm", False))
        return build_inputs(self.preprocessor, frame, samples, self.config.target,
                            self.state_model if uses_hmm else None)

    def raw_scores(self, inputs: Inputs) -> np.ndarray:
        """The served candidate's uncalibrated scores (native pools single-threaded, see train_model)."""
        if not len(inputs):
            return np.zeros(0)
        with _thread_pools().limit(limits=1):
            return self.candidate.score(inputs)

    def score(self, frame: EventFrame, *, cutoff: int | None = None, contacts=None,
              batch_size: int = 20_000) -> ScoreResult:
        """Calibrated probabilities as of ``cutoff`` (default: just after the newest event).

        Without ``contacts`` every contact with an event in the lookback before the cut-off is scored.
        """
        cutoff = frame.end_ts if cutoff is None else int(cutoff)
        samples = self.samples(frame, cutoff, contacts)
        parts = []
        for start in range(0, max(len(samples), 1), batch_size):
            chunk = Samples(samples.contacts[start:start + batch_size], samples.cutoffs[start:start + batch_size],
                            samples.labels[start:start + batch_size])
            parts.append(self.raw_scores(self.inputs(frame, chunk)))
        raw = np.concatenate(parts) if parts else np.zeros(0)
        return ScoreResult(samples.contacts, self.calibrator(raw), cutoff, self.threshold, raw)

