"""Keras model builders: the reference stacked LSTM and its GRU / SimpleRNN variants.

Every model is ``encoder`` (ids -> embeddings, joined with the per-step numerics; a float tensor
that is all-zero exactly on padded steps) followed by ``core`` (masking -> two recurrent layers ->
aggregates concatenated -> dense -> sigmoid). Splitting there lets SHAP's GradientExplainer take
gradients with respect to float inputs, which integer ids cannot have.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from .features import AGGREGATE_FEATURES, NUMERIC_FEATURES, Preprocessor

RECURRENT_LAYERS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn": keras.layers.SimpleRNN}
SEQUENCE_INPUTS = ("event_name", "stage", "campaign", "channel", "numeric")


@dataclass(frozen=True)
class ModelSpec:
    """Sizes of one network; vocabulary sizes come from the fitted Preprocessor."""

    arch: str
    max_events: int
    name_vocab_size: int
    stage_vocab_size: int
    campaign_vocab_size: int
    channel_vocab_size: int
    units: int = 64
    embedding_dim: int = 8
    dense_units: int = 32
    dropout: float = 0.1
    learning_rate: float = 3e-3

    @classmethod
    def from_preprocessor(cls, arch: str, preprocessor: Preprocessor, **sizes) -> ModelSpec:
        """A spec whose input sizes match ``preprocessor``."""
        return cls(
            arch=arch,
            max_events=preprocessor.max_events,
            name_vocab_size=preprocessor.name_vocab_size,
            stage_vocab_size=preprocessor.stage_vocab_size,
            campaign_vocab_size=preprocessor.campaign_vocab_size,
            channel_vocab_size=preprocessor.channel_vocab_size,
            **sizes,
        )


def build_encoder(spec: ModelSpec) -> keras.Model:
    """Ids and numerics of each step -> one float vector per step (zeros on padding)."""
    steps = spec.max_events
    inputs = {
        name: keras.Input(shape=(steps,), dtype="int32", name=name)
        for name in ("event_name", "stage", "campaign", "channel")
    }
    inputs["numeric"] = keras.Input(shape=(steps, len(NUMERIC_FEATURES)), dtype="float32", name="numeric")
    small = max(2, spec.embedding_dim // 2)
    embedded = [
        keras.layers.Embedding(spec.name_vocab_size, spec.embedding_dim, name="event_name_embedding")(
            inputs["event_name"]
        ),
        keras.layers.Embedding(spec.stage_vocab_size, small, name="stage_embedding")(inputs["stage"]),
        keras.layers.Embedding(spec.campaign_vocab_size, small, name="campaign_embedding")(
            inputs["campaign"]
        ),
        keras.layers.Embedding(spec.channel_vocab_size, small, name="channel_embedding")(inputs["channel"]),
    ]
    # numeric[..., 0] is 1 on real steps and 0 on padding: zero the embeddings of padded steps so
    # the core's Masking layer sees exactly the padded steps as all-zero.
    present = keras.layers.Reshape((steps, 1), name="present")(inputs["numeric"][..., 0])
    joined = keras.layers.Concatenate(name="embeddings")(embedded)
    joined = keras.layers.Multiply(name="mask_padding")([joined, present])
    outputs = keras.layers.Concatenate(name="steps")([joined, inputs["numeric"]])
    return keras.Model(inputs, outputs, name="encoder")


def build_core(spec: ModelSpec, step_width: int) -> keras.Model:
    """[step vectors, aggregates] -> probability, with two stacked recurrent layers."""
    layer = RECURRENT_LAYERS[spec.arch]
    steps_in = keras.Input(shape=(spec.max_events, step_width), dtype="float32", name="steps")
    aggregates_in = keras.Input(shape=(len(AGGREGATE_FEATURES),), dtype="float32", name="aggregates")
    x = keras.layers.Masking(mask_value=0.0, name="masking")(steps_in)
    x = layer(spec.units, return_sequences=True, name=f"{spec.arch}_1")(x)
    x = layer(spec.units, name=f"{spec.arch}_2")(x)
    x = keras.layers.Concatenate(name="with_aggregates")([x, aggregates_in])
    x = keras.layers.Dense(spec.dense_units, activation="relu", name="dense")(x)
    if spec.dropout:
        x = keras.layers.Dropout(spec.dropout, name="dropout")(x)
    output = keras.layers.Dense(1, activation="sigmoid", name="probability")(x)
    return keras.Model([steps_in, aggregates_in], output, name="core")


def build_model(spec: ModelSpec) -> keras.Model:
    """The full compiled model taking the FeatureBatch.inputs() dict."""
    if spec.arch not in RECURRENT_LAYERS:
        raise ValueError(f"unknown architecture {spec.arch!r}; expected one of {', '.join(RECURRENT_LAYERS)}")
    encoder = build_encoder(spec)
    core = build_core(spec, step_width=encoder.output.shape[-1])
    inputs = {
        name: keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=name)
        for name, tensor in encoder.input.items()
    }
    inputs["aggregates"] = keras.Input(shape=(len(AGGREGATE_FEATURES),), dtype="float32", name="aggregates")
    steps = encoder({name: inputs[name] for name in SEQUENCE_INPUTS})
    output = core([steps, inputs["aggregates"]])
    model = keras.Model(inputs, output, name=f"{spec.arch}_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=spec.learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model
