import keras
import numpy as np
import pytest

from predictions.ml.features import AGGREGATE_FEATURES, NUMERIC_FEATURES
from predictions.ml.models import ModelSpec, build_model

SPEC = dict(
    max_events=6,
    name_vocab_size=5,
    stage_vocab_size=7,
    campaign_vocab_size=6,
    channel_vocab_size=4,
    units=8,
    dense_units=4,
)


def inputs(n=3, padded=2):
    rng = np.random.default_rng(0)
    ids = rng.integers(2, 4, (n, 6)).astype("int32")
    numeric = rng.random((n, 6, len(NUMERIC_FEATURES))).astype("float32")
    numeric[..., 0] = 1
    ids[:, :padded] = 0
    numeric[:, :padded] = 0
    return {
        "event_name": ids,
        "stage": ids,
        "campaign": ids,
        "channel": ids,
        "numeric": numeric,
        "aggregates": rng.random((n, len(AGGREGATE_FEATURES))).astype("float32"),
    }


@pytest.mark.parametrize("arch, layer", [("lstm", "LSTM"), ("gru", "GRU"), ("rnn", "SimpleRNN")])
def test_builders_make_stacked_recurrent_classifiers(arch, layer):
    model = build_model(ModelSpec(arch=arch, **SPEC))
    core = model.get_layer("core")
    recurrent = [x for x in core.layers if type(x).__name__ == layer]
    assert len(recurrent) == 2 and recurrent[0].return_sequences and not recurrent[1].return_sequences
    assert any(isinstance(x, keras.layers.Masking) for x in core.layers)
    out = model.predict(inputs(), verbose=0)
    assert out.shape == (3, 1) and ((out > 0) & (out < 1)).all()


def test_padded_steps_are_masked():
    model = build_model(ModelSpec(arch="lstm", **SPEC))
    x = inputs(padded=2)
    # Padding is all-zero after the encoder, whatever the embedding of id 0 holds.
    steps = model.get_layer("encoder")(
        {k: x[k] for k in ("event_name", "stage", "campaign", "channel", "numeric")}
    )
    assert np.all(np.asarray(steps)[:, :2] == 0) and np.all(np.abs(np.asarray(steps)[:, 2:]).sum(-1) > 0)
    # Masking: the same weights on the unpadded 4 steps give the same probability.
    unpadded = build_model(ModelSpec(arch="lstm", **{**SPEC, "max_events": 4}))
    unpadded.set_weights(model.get_weights())
    trimmed = {k: (v[:, 2:] if k != "aggregates" else v) for k, v in x.items()}
    np.testing.assert_allclose(
        model.predict(x, verbose=0), unpadded.predict(trimmed, verbose=0), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model(ModelSpec(arch="transformer", **SPEC))
