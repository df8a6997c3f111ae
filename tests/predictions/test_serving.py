"""The numpy forward pass (predictions/serving.py) gives the Keras model's outputs, for each network."""

from __future__ import annotations

import numpy as np
import pytest

from tests.predictions.conftest import DAY, TINY, synthetic_frame


@pytest.fixture(scope="module")
def frame():
    return synthetic_frame()


@pytest.mark.parametrize("arch", ["lstm", "gru", "rnn"])
def test_numpy_network_equals_keras(arch, frame, tmp_path_factory, monkeypatch):
    from predictions.ml import trainer
    from predictions.ml.config import TrainConfig
    from predictions.ml.scorer import Scorer
    from predictions.ml.trainer import train_model
    from predictions.serving import LightScorer

    # What is compared is the forward pass, not the selection: on this tiny data a baseline may beat
    # the network (and would be served), so the network is served here whatever the scoreboard says.
    monkeypatch.setattr(trainer, "select", lambda entries, requested: (requested, "forced by the test"))
    config = TrainConfig(target="purchase", horizon_seconds=7 * DAY, lookback_seconds=28 * DAY, arch=arch,
                         **{**TINY, "epochs": 1})
    directory = tmp_path_factory.mktemp(arch) / "model"
    train_model(frame, config, artifact_dir=directory)
    keras_scorer, light = Scorer(directory), LightScorer(directory)
    assert light.network.arch == arch
    reference = keras_scorer.score(frame)
    probabilities, raw, _ = light.score_frame(frame, reference.contacts, reference.cutoff)
    assert len(reference) > 100
    np.testing.assert_allclose(raw, reference.raw_scores, rtol=0, atol=1e-5)
    np.testing.assert_allclose(probabilities, reference.probabilities, rtol=0, atol=1e-5)


def test_an_unreadable_network_is_an_artifact_error(tmp_path):
    from predictions.ml.errors import ArtifactError
    from predictions.serving import NumpyNetwork

    broken = tmp_path / "model.keras"
    broken.write_bytes(b"no zip")
    with pytest.raises(ArtifactError, match="cannot read"):
        NumpyNetwork(broken)
