"""The sequence networks (LSTM, GRU, SimpleRNN) as tournament candidates.

Sizes are chosen by validation within the time budget: each size in ``config.network_sizes()`` is
trained (smallest first) while the deadline allows, with early stopping on the monitor set's AUC,
and the size with the best monitor AUC is kept. The monitor set is the tournament's inner split
(``tournament.inner_split``: held-out training samples, a horizon before the scored cut-off), so
neither the stopping epoch nor the size is chosen on the rows the network is scored on. Explanations: SHAP GradientExplainer on the float
``core`` (DeepExplainer fails on TF2 LSTMs), step attributions summed per event name. Expected
gradients are a sampled estimate, so their sum misses output - E[output] by a little; the
contributions are rescaled to add up exactly (efficiency) and the size of that correction is
returned in ``info`` of the attribution call (tests bound it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from scipy.special import logit

from .candidates import Attribution, Candidate, CandidateFailed, ExplainContext, Inputs
from .errors import TrainingCancelled
from .models import ModelSpec, build_model
from .network_factors import network_attribution

MODEL_FILE = "model.keras"


def set_determinism(seed: int) -> None:
    """Same seed and data give the same model: seed Python/NumPy/TF and force deterministic ops."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Balanced class weights: n / (2 * n_class)."""
    n, positives = len(labels), int(labels.sum())
    return {0: n / (2.0 * max(n - positives, 1)), 1: n / (2.0 * max(positives, 1))}


class _TrainingControl(keras.callbacks.Callback):
    """Early stopping on validation AUC (best weights restored), a deadline, cancellation, progress."""

    def __init__(self, arch, patience, deadline, should_cancel, progress) -> None:
        super().__init__()
        self.arch, self.patience, self.deadline = arch, patience, deadline
        self.should_cancel, self.progress = should_cancel, progress
        self.best_auc, self.best_weights, self.wait, self.epochs = -1.0, None, 0, 0
        self.stopped_reason = "completed"
        self._last_cancel_check = 0.0

    def on_train_batch_end(self, batch, logs=None) -> None:
        now = time.monotonic()
        if self.should_cancel is not None and now - self._last_cancel_check >= 1.0:
            self._last_cancel_check = now
            if self.should_cancel():
                raise TrainingCancelled("training was cancelled")
        if self.deadline is not None and now >= self.deadline:
            self.stopped_reason = "time_limit"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None) -> None:
        logs = logs or {}
        self.epochs = epoch + 1
        auc = float(logs.get("val_auc", float("nan")))
        if np.isfinite(auc) and auc > self.best_auc:
            self.best_auc, self.best_weights, self.wait = auc, self.model.get_weights(), 0
        else:
            self.wait += 1
            if self.wait >= self.patience and self.stopped_reason == "completed":
                self.stopped_reason = "early_stopping"
                self.model.stop_training = True
        if self.progress is not None:
            report = {k: float(v) for k, v in logs.items()}
            report.update(arch=self.arch, arch_epoch=epoch + 1, best_val_auc=self.best_auc)
            self.progress(report)

    def on_train_end(self, logs=None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class Network(Candidate):
    """One recurrent architecture (``arch`` in lstm | gru | rnn)."""

    stops_early = True

    def __init__(self, config, arch: str, preprocessor=None, cache: dict | None = None) -> None:
        super().__init__(config)
        self.name = self.arch = arch
        self.preprocessor = preprocessor
        self.model = None
        self._predict = None
        # (arch, units) -> (model, initial weights, predict function), shared by the folds of one
        # tournament: building and tracing a Keras model costs more than a small fold's training,
        # so each fold resets one model to its initial weights instead (the folds run oldest first
        # and fold 0, the served one, last, so the object kept is fold 0's)
        self._cache = cache

    def fit(self, train: Inputs, labels, *, monitor: Inputs | None = None, monitor_labels=None, deadline=None,
            should_cancel=None, progress=None, **context):
        positives = int(labels.sum())
        if min(positives, len(labels) - positives) < self.config.min_candidate_class_count:
            raise CandidateFailed(f"{self.arch}: too few training samples of a class ({positives} positives)")
        if monitor is None:
            raise CandidateFailed(f"{self.arch}: no monitor set for early stopping")
        best = None
        tried = []
        for units in self.config.network_sizes():
            started = time.monotonic()
            # the next size is larger: only start it if the last one's time fits twice in what is left
            if best is not None and deadline is not None and deadline - started < 2 * tried[-1]["seconds"]:
                tried.append({"units": units, "skipped": "time budget"})
                break
            set_determinism(self.config.seed)
            model = self._model(units)
            control = _TrainingControl(self.arch, self.config.patience, deadline, should_cancel, progress)
            model.fit(train.batch.inputs(), labels.astype(np.float32),
                      validation_data=(monitor.batch.inputs(), monitor_labels.astype(np.float32)),
                      # epochs as for the whole training split: holding out the monitor adds none
                      epochs=self.config.epochs_for(len(labels) + len(monitor_labels)), batch_size=self.config.batch_size,
                      class_weight=class_weights(labels), shuffle=True, verbose=0, callbacks=[control])
            tried.append({"units": units, "monitor_auc": round(control.best_auc, 4), "epochs": control.epochs,
                          "stopped_reason": control.stopped_reason, "seconds": round(time.monotonic() - started, 1)})
            if best is None or control.best_auc > best[1]:
                best = (model, control.best_auc, units, control)
        self.model, _, units, control = best
        cached = self._cache.get((self.arch, units)) if self._cache is not None else None
        if cached is not None:
            self._predict = cached[2]
        else:
            self._compile_predict()
        # what early stopping watched: the newest cut-off among its samples says it came before the scored one
        self.info = {"units": units, "epochs": control.epochs, "stopped_reason": control.stopped_reason,
                     "sizes_tried": tried, "monitor": {"samples": int(len(monitor)),
                                                       "newest_cutoff": int(monitor.cutoffs.max())}}
        return self

    def _model(self, units: int):
        key = (self.arch, units)
        if self._cache is not None and key in self._cache:
            model, weights, self._predict = self._cache[key]
            model.set_weights(weights)
            for variable in model.optimizer.variables:  # Adam's moments and step count start afresh
                if not variable.path.endswith("learning_rate"):  # (the learning rate is a variable too)
                    variable.assign(tf.zeros_like(variable))
            return model
        spec = ModelSpec.from_preprocessor(self.arch, self.preprocessor, units=units,
                                           embedding_dim=self.config.embedding_dim,
                                           dense_units=self.config.dense_units, dropout=self.config.dropout,
                                           learning_rate=self.config.learning_rate)
        model = build_model(spec)
        if self._cache is not None:
            self.model = model
            self._compile_predict()
            self._cache[key] = (model, model.get_weights(), self._predict)
        return model

    def _compile_predict(self) -> None:
        signature = {name: tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype, name=name)
                     for name, tensor in self.model.input.items()}
        self._predict = tf.function(lambda inputs: self.model(inputs, training=False), input_signature=[signature])

    def probabilities(self, inputs: Inputs, batch_size: int = 4096) -> np.ndarray:
        """The network's own sigmoid output."""
        if len(inputs) == 0:
            return np.zeros(0)
        feed = inputs.batch.inputs()
        parts = [self._predict({k: tf.constant(v[s : s + batch_size]) for k, v in feed.items()}).numpy()
                 for s in range(0, len(inputs), batch_size)]
        return np.concatenate(parts).reshape(-1).astype(np.float64)

    def score(self, inputs):
        return logit(np.clip(self.probabilities(inputs), 1e-7, 1 - 1e-7))

    def _explainer(self, background: Inputs):
        """(SHAP's GradientExplainer over ``background``, the encoder as numpy), built once per loaded
        model: a new explainer per call traces TensorFlow's gradient graph again (seconds each). It
        reads the model's variables when called, so a later change of weights is seen."""
        import shap

        cached = getattr(self, "_shap", None)
        if cached is not None and cached[0] is background and cached[1] is self.model:
            return cached[2]
        encoder = self.model.get_layer("encoder")
        names = list(encoder.input)

        def encode(feed: dict) -> np.ndarray:
            return encoder({k: tf.constant(feed[k]) for k in names}, training=False).numpy()

        feed = background.batch.inputs()
        explainer = shap.GradientExplainer(self.model.get_layer("core"), [encode(feed), feed["aggregates"]])
        self._shap = (background, self.model, (explainer, encode))
        return explainer, encode

    def explain(self, inputs: Inputs, context: ExplainContext) -> Attribution:
        explainer, encode = self._explainer(context.background)
        feed = inputs.batch.inputs()
        values = explainer.shap_values([encode(feed), feed["aggregates"]], nsamples=context.nsamples,
                                       rseed=context.seed)
        step_values, aggregate_values = _per_input(values, 2)
        n = len(inputs)
        step_values = step_values.reshape(n, inputs.batch.event_rows.shape[1], -1).sum(axis=-1)
        p0 = float(np.mean(self.probabilities(context.background)))
        attribution, self.last_efficiency_gap = network_attribution(
            inputs, context, step_values, aggregate_values.reshape(n, -1), self.probabilities(inputs), p0)
        return attribution

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / MODEL_FILE)
        (directory / "network.json").write_text(json.dumps({"arch": self.arch, "info": self.info}))

    @classmethod
    def load(cls, directory: Path, config, preprocessor=None) -> Network:
        meta = json.loads((directory / "network.json").read_text())
        self = cls(config, meta["arch"], preprocessor)
        self.info = meta["info"]
        self.model = keras.models.load_model(directory / MODEL_FILE, compile=False)
        self._compile_predict()
        return self


def _per_input(values, n_inputs: int) -> list[np.ndarray]:
    """Normalise shap's return value to one array per input (single output squeezed)."""
    if isinstance(values, list) and len(values) == 1 and isinstance(values[0], list):
        values = values[0]
    out = []
    for array in values[:n_inputs]:
        array = np.asarray(array)
        out.append(array[..., 0] if array.shape[-1] == 1 and array.ndim >= 3 else array)
    return out
