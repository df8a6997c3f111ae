"""Building a candidate's Inputs from events, and storing a few of them (the explanation background)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .bgnbd import history_stats
from .candidates import Inputs
from .features import FeatureBatch, Preprocessor
from .hmm import symbols
from .labels import Samples


def build_inputs(preprocessor: Preprocessor, frame, samples: Samples, target: str, state_model=None) -> Inputs:
    """Features, BG/NBD history, HMM tokens (and the HMM posterior when a state model is given)."""
    batch = preprocessor.transform(frame, samples)
    inputs = Inputs(batch, history_stats(frame, samples, target), symbols(batch, frame, samples.cutoffs),
                    samples.cutoffs.astype(np.int64), samples.contacts.astype(np.int64))
    if state_model is not None and len(inputs):
        inputs.hmm = state_model.posterior(inputs.symbols)
    return inputs


def save_inputs(path: Path, inputs: Inputs) -> None:
    """Write Inputs as one npz."""
    arrays = {f"batch_{k}": v for k, v in inputs.batch.__dict__.items()}
    arrays.update(history=inputs.history, symbols=inputs.symbols, cutoffs=inputs.cutoffs, contacts=inputs.contacts)
    if inputs.hmm is not None:
        arrays["hmm"] = inputs.hmm
    with path.open("wb") as handle:
        np.savez(handle, **arrays)


def load_inputs(path: Path) -> Inputs:
    """Read what :func:`save_inputs` wrote."""
    with np.load(path) as data:
        batch = FeatureBatch(**{k.removeprefix("batch_"): data[k] for k in data.files if k.startswith("batch_")})
        return Inputs(batch, data["history"], data["symbols"], data["cutoffs"], data["contacts"],
                      data["hmm"] if "hmm" in data.files else None)
