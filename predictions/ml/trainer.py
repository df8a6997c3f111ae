"""Training as one call: labels -> features -> HMM -> tournament -> calibration -> artifact -> importance.

See ``tournament.py`` for the protocol. The preprocessor (vocabulary, scaling) and the HMM (an
unsupervised model of event sequences) are fitted once, on the events before the second-latest
cut-off (fold 0's training data): they see no labels, so the earlier folds borrow them without
learning anything about their own outcomes.
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from . import artifacts
from .calibration import choose_method, cross_fitted, fit_calibrator
from .candidates import CandidateFailed
from .config import BASELINES, TrainConfig
from .data import EventFrame
from .errors import NotEnoughData, TrainingCancelled
from .features import AGGREGATE_FEATURES, NUMERIC_FEATURES, Preprocessor
from .hmm import StateModel
from .inputs import build_inputs, save_inputs
from .labels import Samples, build_split, label_cutoff
from .metrics import best_f1_threshold, curves, evaluate, roc_points
from .tournament import Fold, make_factory, run, select

ProgressCallback = Callable[[int, dict], None]


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
    # every candidate's backtest figures, the served one and why (fallbacks named)
    scoreboard: dict = field(default_factory=dict)
    # global importance of the served model: mean |contribution| by event type and by recency
    importance: dict = field(default_factory=dict)
    # the contacts every reported figure is measured on (to compare another model on the same ones)
    report_contacts: np.ndarray | None = field(default=None, repr=False)
    # in-process only (not stored): the fitted candidates, the inputs and rows, for tests and benchmarks
    fitted: dict | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        payload = asdict(replace(self, report_contacts=None, fitted=None))
        del payload["report_contacts"], payload["fitted"]
        return json.loads(json.dumps(payload, default=float))


def selection_split(labels: np.ndarray, rng: np.random.Generator, min_class_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Validation positions split in two halves, stratified by label: ``(selection, report)``.

    When either half would hold fewer than ``min_class_count`` positives or negatives (a tiny
    validation set), both are the whole set: choosing and reporting on the same contacts beats
    reporting on a handful (the counts and the model page say which happened).
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


def backtest_step(config: TrainConfig, validation_cutoff: int, first_ts: int) -> int:
    """Seconds between backtest origins: the horizon, halved until every fold has a training cut-off.

    Origins closer than the horizon have overlapping outcome windows, which is fine for a backtest
    and is what lets a short history (CDNOW's 39-week calibration period with a 13-week horizon)
    still give three origins.
    """
    h = step = config.horizon_seconds
    while step >= 3600:
        if all(validation_cutoff - k * step - h > first_ts for k in range(config.backtest_folds)):
            return step
        step //= 2
    return h


def _samples_by_cutoff(frame: EventFrame, config: TrainConfig, validation_cutoff: int, first_ts: int, step: int):
    """Label every cut-off any fold needs, once: {cutoff: Samples}."""
    h = config.horizon_seconds
    wanted = set()
    for k in range(config.backtest_folds):
        v = validation_cutoff - k * step
        wanted.update(c for c in (v - j * h for j in range(config.n_cutoffs + 1)) if c > first_ts)
    return {c: label_cutoff(frame, c, config) for c in sorted(wanted)}


def train_model(
    frame: EventFrame,
    config: TrainConfig,
    *,
    artifact_dir: str | Path,
    progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> TrainResult:
    """Run the tournament, publish the served candidate's artifact and return every figure.

    Native thread pools (OpenMP of the gradient-boosted trees, BLAS) run single-threaded here:
    on a shared 2-core machine their spinning workers made a GBT fit 25 times slower (12.6 s
    against 0.46 s for 6,000 samples at load 10); TensorFlow keeps its own pools.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _train_model(frame, config, artifact_dir=artifact_dir, progress=progress, should_cancel=should_cancel)


def _train_model(frame, config, *, artifact_dir, progress, should_cancel) -> TrainResult:
    """The body of :func:`train_model`.

    Raises NotEnoughData (too few positives/negatives at the latest cut-off, or no candidate
    succeeded: the message gives every reason), TrainingCancelled (``should_cancel`` said so).
    ``progress(epoch, metrics)`` is called after every network epoch (counted across candidates).
    """
    from .networks import set_determinism

    started = time.monotonic()
    timings: dict[str, float] = {}
    phase_started = started

    def phase(name: str) -> None:
        nonlocal phase_started
        now = time.monotonic()
        timings[name] = round(now - phase_started, 3)
        phase_started = now

    deadline = started + config.time_limit_seconds if config.time_limit_seconds else None
    set_determinism(config.seed)
    split = build_split(frame, config)  # fold 0; raises NotEnoughData with the counts
    step = backtest_step(config, split.validation_cutoff, int(frame.ts.min()))
    by_cutoff = _samples_by_cutoff(frame, config, split.validation_cutoff, int(frame.ts.min()), step)
    cutoffs = list(by_cutoff)
    offsets = np.cumsum([0] + [len(by_cutoff[c]) for c in cutoffs])
    position = {c: np.arange(offsets[i], offsets[i + 1]) for i, c in enumerate(cutoffs)}
    everything = Samples.concat([by_cutoff[c] for c in cutoffs])
    labels = everything.labels.astype(int)

    preprocessor = Preprocessor(config.max_events, config.lookback_seconds, config.max_vocab,
                                config.campaign_buckets, config.channel_buckets).fit(frame, split.train)
    inputs = build_inputs(preprocessor, frame, everything, config.target)
    phase("features")

    rng = np.random.default_rng(config.seed)
    h, v0 = config.horizon_seconds, split.validation_cutoff
    validation_rows = position[v0]
    select_pos, report_pos = selection_split(labels[validation_rows], rng, config.min_report_class_count)
    select_rows, report_rows = validation_rows[select_pos], validation_rows[report_pos]
    folds: list[Fold] = [Fold(v0, np.concatenate([position[c] for c in split.train_cutoffs]), select_rows)]
    dropped = []
    for k in range(1, config.backtest_folds):
        v = v0 - k * step
        train_cuts = [v - j * h for j in range(config.n_cutoffs, 0, -1) if v - j * h in position]
        if v not in position or not train_cuts:
            dropped.append(f"cut-off {k} has no earlier training cut-off")
            continue
        train_rows = np.concatenate([position[c] for c in train_cuts])
        y_val, y_train = labels[position[v]], labels[train_rows]
        if min(y_val.sum(), len(y_val) - y_val.sum(), y_train.sum(), len(y_train) - y_train.sum()) \
                < config.min_validation_per_class:
            dropped.append(f"cut-off {k} has too few positives or negatives")
            continue
        folds.append(Fold(v, train_rows, position[v]))

    wanted = list(config.candidates())
    state_model, hmm_reason = None, ""
    if any(n in ("hmm", "gbt_hmm", "stack") for n in wanted):
        try:
            state_model = StateModel(config.hmm_states, config.hmm_iterations, config.hmm_max_sequences,
                                     config.seed).fit(inputs.symbols[folds[0].train])
            inputs.hmm = state_model.posterior(inputs.symbols)
        except CandidateFailed as error:
            hmm_reason = str(error)
    phase("hmm")

    epoch = 0

    def network_progress(report: dict) -> None:
        nonlocal epoch
        epoch += 1
        if progress is not None:
            progress(epoch, report)

    make = make_factory(config, preprocessor)
    seconds_per: dict[str, float] = {}
    entries = run(wanted, make, inputs, labels, folds, config, report=report_rows, deadline=deadline,
                  should_cancel=should_cancel, progress=network_progress,
                  log=lambda e: seconds_per.__setitem__(e.name, round(e.fit_seconds, 2)))
    if hmm_reason:
        for name in ("hmm", "gbt_hmm"):
            if name in entries and entries[name].status == "failed":
                entries[name].reason = hmm_reason
    timings["candidates"] = seconds_per
    phase("tournament")

    served, why = select(entries, config.arch)
    if not served:
        reasons = "; ".join(f"{e.reason or e.status}" for e in entries.values())
        raise NotEnoughData(f"no candidate could be trained: {reasons}", split.counts())
    model = entries[served].model
    served_select, served_report = entries[served].select_scores, entries[served].report_scores
    y_select, y_report = labels[select_rows], labels[report_rows]
    method = choose_method(config.calibration, served_select, y_select, seed=config.seed,
                           min_bin=config.isotonic_min_bin)
    calibrator = fit_calibrator(served_select, y_select, method, config.isotonic_min_bin)
    honest_select = cross_fitted(served_select, y_select, method, seed=config.seed, min_bin=config.isotonic_min_bin)
    threshold = config.threshold if config.threshold is not None else best_f1_threshold(y_select, honest_select)
    probabilities = calibrator(served_report)
    metrics = evaluate(y_report, probabilities, threshold)

    report = {}
    for name, entry in entries.items():
        if entry.status != "succeeded":
            continue
        scores = entry.select_scores
        m = choose_method(config.calibration, scores, y_select, seed=config.seed, min_bin=config.isotonic_min_bin)
        cal = fit_calibrator(scores, y_select, m, config.isotonic_min_bin)
        p_select = cross_fitted(scores, y_select, m, seed=config.seed, min_bin=config.isotonic_min_bin)
        report[name] = evaluate(y_report, cal(entry.report_scores),
                                best_f1_threshold(y_select, p_select))
    rate = float(labels[folds[0].train].mean())
    baselines = {"prevalence": evaluate(y_report, np.full(len(y_report), rate), threshold),
                 **{n: report[n] for n in BASELINES if n in report}}
    lines = []
    for name, entry in entries.items():
        line = entry.summary()
        line["report"] = {k: report[name].get(k) for k in ("roc_auc", "pr_auc", "brier")} if name in report else {}
        line["served"] = name == served
        lines.append(line)
    halved = len(select_rows) < len(validation_rows)
    scoreboard = {
        "served": served, "why": why, "fallback": why.startswith("fell back") or (config.arch != "auto" and served != config.arch),
        "requested": config.arch, "folds": [int(f.cutoff) for f in folds], "folds_dropped": dropped,
        "fold_step_seconds": int(step),
        "report_contacts": int(len(report_rows)), "report_is_selection": not halved,
        "candidates": lines,
    }
    phase("evaluation")

    background_rows = np.sort(rng.permutation(folds[0].train)[: config.background_size])
    background = inputs.take(background_rows)
    served_parts = list(getattr(model, "parts", {}).values()) + [model]

    def write_files(directory: Path) -> None:
        preprocessor.save(directory / artifacts.PREPROCESSOR_DIR)
        (directory / artifacts.CALIBRATION_FILE).write_text(json.dumps(calibrator.to_dict()))
        save_inputs(directory / artifacts.BACKGROUND_FILE, background)
        if state_model is not None and any(p.uses_hmm for p in served_parts):
            with (directory / artifacts.HMM_FILE).open("wb") as handle:
                pickle.dump(state_model, handle, protocol=pickle.HIGHEST_PROTOCOL)
        for part in served_parts:
            part.save(directory / artifacts.CANDIDATES_DIR / part.name)

    info = entries[served].info
    counts = {**split.counts(), "selection_contacts": int(len(select_rows)), "report_contacts": int(len(report_rows)),
              "validation_halved": int(halved)}
    manifest = {
        "target": config.target, "arch": served, "family": served, "ensemble": served == "stack",
        "parts": [p.name for p in served_parts if p is not model], "threshold": float(threshold),
        "calibration": method, "config": config.to_dict(), "metrics": metrics, "baselines": baselines,
        "counts": counts, "validation_cutoff": v0, "numeric_features": list(NUMERIC_FEATURES),
        "aggregate_features": list(AGGREGATE_FEATURES), "state_names": state_model.names if state_model else [],
        "created_unix": int(time.time()),
    }
    artifacts.publish(artifact_dir, write_files, manifest)
    phase("artifact")

    importance = {}
    try:
        from .explain import global_importance
        from .scorer import Scorer

        importance = global_importance(Scorer(artifact_dir), frame, everything.contacts[report_rows][:100],
                                       cutoff=v0)
    except CandidateFailed as error:
        importance = {"error": str(error)}
    phase("importance")

    network_info = info if served in ("lstm", "gru", "rnn") else {}
    return TrainResult(
        target=config.target, arch=served, ensemble=served == "stack", metrics=metrics, baselines=baselines,
        candidates=report,
        curves={**curves(y_report, probabilities), "roc": roc_points(y_report, probabilities)},
        threshold=float(threshold), calibration=method, counts=counts, train_cutoffs=split.train_cutoffs,
        validation_cutoff=v0, epochs_trained=epoch, stopped_reason=network_info.get("stopped_reason", "completed"),
        seconds=round(time.monotonic() - started, 3), artifact_dir=str(Path(artifact_dir).resolve()),
        config=config.to_dict(), timings=timings, scoreboard=scoreboard, importance=importance,
        report_contacts=everything.contacts[report_rows],
        fitted={"entries": entries, "inputs": inputs, "report_rows": report_rows, "background": background,
                "state_names": state_model.names if state_model else [], "labels": labels},
    )


__all__ = ["TrainResult", "TrainingCancelled", "selection_split", "train_model"]
