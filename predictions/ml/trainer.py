"""Training as one call: labels -> features -> baselines -> network(s) -> calibration -> artifact."""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from . import artifacts
from .baselines import fit_baselines
from .calibration import choose_method, cross_fitted, fit_calibrator
from .config import TrainConfig
from .data import EventFrame
from .errors import TrainingCancelled
from .features import AGGREGATE_FEATURES, NUMERIC_FEATURES, FeatureBatch, Preprocessor
from .labels import build_split
from .metrics import best_f1_threshold, curves, evaluate, roc_points
from .models import ModelSpec, build_model

ProgressCallback = Callable[[int, dict], None]
CANDIDATES = ("lstm", "gru", "rnn")


@dataclass
class TrainResult:
    """What the Django layer stores on the model version (``to_dict`` is JSON-ready)."""

    target: str
    arch: str
    ensemble: bool
    metrics: dict
    baselines: dict[str, dict]
    candidates: dict[str, dict]
    curves: dict
    threshold: float
    calibration: str
    counts: dict[str, int]
    train_cutoffs: list[int]
    validation_cutoff: int
    epochs_trained: int
    stopped_reason: str  # completed | early_stopping | time_limit
    seconds: float
    artifact_dir: str
    config: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase
    # the contacts every reported figure is measured on (to compare another model on the same ones)
    report_contacts: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        payload = asdict(replace(self, report_contacts=None))  # asdict deep-copies every field
        del payload["report_contacts"]
        return json.loads(json.dumps(payload, default=float))


class _TrainingControl(keras.callbacks.Callback):
    """Early stopping on validation AUC (best weights restored), a deadline, cancellation, progress."""

    def __init__(self, arch, patience, deadline, should_cancel, progress, epoch_offset) -> None:
        super().__init__()
        self.arch, self.patience, self.deadline = arch, patience, deadline
        self.should_cancel, self.progress, self.epoch_offset = should_cancel, progress, epoch_offset
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
            self.progress(self.epoch_offset + epoch + 1, report)

    def on_train_end(self, logs=None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def set_determinism(seed: int) -> None:
    """Same seed and data give the same model: seed Python/NumPy/TF and force deterministic ops."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Balanced class weights: n / (2 * n_class)."""
    n, positives = len(labels), int(labels.sum())
    return {0: n / (2.0 * max(n - positives, 1)), 1: n / (2.0 * max(positives, 1))}


def predict_raw(model: keras.Model, batch: FeatureBatch, batch_size: int = 4096) -> np.ndarray:
    """Uncalibrated network output for a FeatureBatch."""
    return model.predict(batch.inputs(), batch_size=batch_size, verbose=0).reshape(-1).astype(np.float64)


def _fit_network(
    arch,
    config,
    preprocessor,
    train,
    train_labels,
    monitor,
    monitor_labels,
    deadline,
    should_cancel,
    progress,
    epoch_offset,
):
    set_determinism(config.seed)
    spec = ModelSpec.from_preprocessor(
        arch,
        preprocessor,
        units=config.units,
        embedding_dim=config.embedding_dim,
        dense_units=config.dense_units,
        dropout=config.dropout,
        learning_rate=config.learning_rate,
    )
    model = build_model(spec)
    control = _TrainingControl(arch, config.patience, deadline, should_cancel, progress, epoch_offset)
    model.fit(
        train.inputs(),
        train_labels.astype(np.float32),
        validation_data=(monitor.inputs(), monitor_labels.astype(np.float32)),
        epochs=config.epochs_for(len(train_labels)),
        batch_size=config.batch_size,
        class_weight=class_weights(train_labels),
        shuffle=True,
        verbose=0,
        callbacks=[control],
    )
    return model, control


def selection_split(labels: np.ndarray, rng: np.random.Generator, min_class_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Validation positions split in two halves, stratified by label: ``(selection, report)``.

    When either half would hold fewer than ``min_class_count`` positives or negatives (a tiny
    validation set), both are the whole set: choosing and reporting on the same contacts beats
    reporting on a handful (the counts say which happened).
    """
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    if min(len(positives), len(negatives)) < 2 * min_class_count:
        everything = np.arange(len(labels))
        return everything, everything
    select, report = [], []
    for members in (positives, negatives):
        shuffled = rng.permutation(members)
        half = len(shuffled) // 2
        select.append(shuffled[:half])
        report.append(shuffled[half:])
    return np.sort(np.concatenate(select)), np.sort(np.concatenate(report))


def train_model(
    frame: EventFrame,
    config: TrainConfig,
    *,
    artifact_dir: str | Path,
    progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train, evaluate against the baselines on the validation cut-off, and publish the artifact.

    The validation contacts are halved: one half picks (early stopping, architecture, thresholds),
    the other is what every reported figure is measured on.

    Raises NotEnoughData (too few positives/negatives), TrainingCancelled (``should_cancel`` said so).
    ``progress(epoch, metrics)`` is called after every epoch (epochs count across candidates).
    """
    started = time.monotonic()
    timings: dict[str, float] = {}
    phase_started = started

    def phase(name: str) -> None:
        nonlocal phase_started
        now = time.monotonic()
        timings[name] = round(now - phase_started, 3)
        phase_started = now

    deadline = started + config.time_limit_seconds if config.time_limit_seconds else None

    def check_cancel() -> None:
        if should_cancel is not None and should_cancel():
            raise TrainingCancelled("training was cancelled")

    set_determinism(config.seed)
    split = build_split(frame, config)
    check_cancel()
    preprocessor = Preprocessor(
        config.max_events,
        config.lookback_seconds,
        config.max_vocab,
        config.campaign_buckets,
        config.channel_buckets,
    ).fit(frame, split.train)
    train = preprocessor.transform(frame, split.train)
    validation = preprocessor.transform(frame, split.validation)
    y_train, y_val = split.train.labels, split.validation.labels
    check_cancel()
    phase("features")

    baselines = fit_baselines(train.aggregates, y_train, seed=config.seed)
    baseline_scores = {name: model.predict(validation.aggregates) for name, model in baselines.items()}
    check_cancel()
    phase("baselines")

    rng = np.random.default_rng(config.seed)
    # Validation contacts are split in two: choices (early stopping, the architecture, thresholds)
    # are made on one half and every reported figure comes from the other, so no figure is
    # measured on the data it was picked by.
    select_index, report_index = selection_split(y_val, rng, config.min_report_class_count)
    y_select, y_report = y_val[select_index], y_val[report_index]
    monitor_index = select_index[np.sort(rng.permutation(len(select_index))[: config.validation_monitor_max])]
    monitor = validation.take(monitor_index)
    candidates: dict[str, dict] = {}
    best = None
    epochs_done = 0
    for arch in CANDIDATES if config.arch == "auto" else (config.arch,):
        if best is not None and deadline is not None and time.monotonic() >= deadline:
            break
        model, control = _fit_network(
            arch,
            config,
            preprocessor,
            train,
            y_train,
            monitor,
            y_val[monitor_index],
            deadline,
            should_cancel,
            progress,
            epochs_done,
        )
        epochs_done += control.epochs
        raw = predict_raw(model, validation)
        auc = float(roc_auc_score(y_select, raw[select_index]))
        candidates[arch] = {
            "roc_auc": auc,  # on the selection half: what the choice was made by
            "epochs": control.epochs,
            "stopped_reason": control.stopped_reason,
        }
        if best is None or auc > best[2]:
            best = (arch, model, auc, raw, control)
    arch, model, _, raw, control = best
    check_cancel()
    phase("network")

    gbt = baselines["gradient_boosting"]
    if config.ensemble:
        # Model fusion: the mean of the network's and the GBT's scores, calibrated together below.
        raw = (raw + baseline_scores["gradient_boosting"]) / 2
        candidates["ensemble"] = {"roc_auc": float(roc_auc_score(y_select, raw[select_index]))}
    method = choose_method(config.calibration, len(y_val), config.isotonic_min_samples)
    honest = cross_fitted(raw, y_val, method, seed=config.seed)
    calibrator = fit_calibrator(raw, y_val, method)

    def chosen_threshold(scores: np.ndarray) -> float:
        if config.threshold is not None:
            return config.threshold
        return best_f1_threshold(y_select, scores[select_index])

    threshold = chosen_threshold(honest)
    metrics = evaluate(y_report, honest[report_index], threshold)
    # Ranking figures come from the served model (the calibrator fitted on all of validation, strictly
    # increasing in the raw score, so its ranking is the network's); pooling the five cross-fitted
    # calibrators would rank scores across folds by five different maps and understate ROC-AUC.
    # Probability figures (log loss, Brier, calibration error, precision/recall) stay cross-fitted.
    served = calibrator(raw)
    ranking = evaluate(y_report, served[report_index], threshold)
    for key in ("roc_auc", "pr_auc", "lift_top_decile"):
        metrics[key] = ranking[key]
    baseline_metrics = {
        name: evaluate(y_report, scores[report_index], chosen_threshold(scores))
        for name, scores in baseline_scores.items()
    }
    background_index = np.sort(rng.permutation(len(train))[: config.background_size])
    background = train.take(background_index).inputs()

    def write_files(directory: Path) -> None:
        model.save(directory / artifacts.MODEL_FILE)
        preprocessor.save(directory / artifacts.PREPROCESSOR_DIR)
        (directory / artifacts.CALIBRATION_FILE).write_text(json.dumps(calibrator.to_dict()))
        np.savez(directory / artifacts.BACKGROUND_FILE, **background)
        if config.ensemble:
            with (directory / artifacts.GBT_FILE).open("wb") as handle:
                pickle.dump(gbt.estimator, handle, protocol=pickle.HIGHEST_PROTOCOL)

    result = TrainResult(
        target=config.target,
        arch=arch,
        ensemble=config.ensemble,
        metrics=metrics,
        baselines=baseline_metrics,
        candidates=candidates,
        curves={**curves(y_report, honest[report_index]), "roc": roc_points(y_report, served[report_index])},
        threshold=float(threshold),
        calibration=method,
        counts={**split.counts(), "selection_contacts": int(len(select_index)),
                "report_contacts": int(len(report_index)),
                "validation_halved": int(len(select_index) < len(y_val))},
        train_cutoffs=split.train_cutoffs,
        validation_cutoff=split.validation_cutoff,
        epochs_trained=epochs_done,
        stopped_reason=control.stopped_reason,
        seconds=0.0,
        artifact_dir=str(Path(artifact_dir).resolve()),
        config=config.to_dict(),
    )
    manifest = {
        "target": config.target,
        "arch": arch,
        "ensemble": config.ensemble,
        "threshold": float(threshold),
        "calibration": method,
        "config": config.to_dict(),
        "metrics": metrics,
        "baselines": baseline_metrics,
        "counts": result.counts,
        "validation_cutoff": split.validation_cutoff,
        "numeric_features": list(NUMERIC_FEATURES),
        "aggregate_features": list(AGGREGATE_FEATURES),
        "created_unix": int(time.time()),
    }
    phase("evaluation")
    artifacts.publish(artifact_dir, write_files, manifest)
    phase("artifact")
    result.timings = timings
    result.report_contacts = split.validation.contacts[report_index]
    result.seconds = round(time.monotonic() - started, 3)
    return result
