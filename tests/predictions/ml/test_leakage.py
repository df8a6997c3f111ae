"""No candidate, no early stopping and no meta-learner sees the labels of the fold it is scored on.

Oracles from the definitions: a sample labelled at cut-off c has its outcome known at c + horizon,
so a fit for a fold scored at cut-off v may only receive samples with c + horizon <= v; and on a
target that is pure noise, no honest protocol can report a ROC-AUC above 0.5 beyond chance (the
standard error of an AUC at 0.5 is sqrt((n1 + n0 + 1) / (12 n1 n0)), Hanley & McNeil 1982).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from predictions.ml.candidates import Candidate
from predictions.ml.config import TrainConfig
from predictions.ml.features import Preprocessor
from predictions.ml.inputs import build_inputs
from predictions.ml.labels import Samples, build_split, label_cutoff
from predictions.ml.stack import Stack
from predictions.ml.tournament import Fold, run
from predictions.ml.trainer import train_model

from .conftest import random_frame
from .test_tournament import tiny_auto

DAY = 86400


def backtest(frame, config: TrainConfig):
    """Inputs of every cut-off and the folds as the protocol defines them (fold k: v0 - k horizons)."""
    split = build_split(frame, config)
    h, v0 = config.horizon_seconds, split.validation_cutoff
    cuts = [v0 - j * h for j in range(config.backtest_folds + config.n_cutoffs)]
    by_cut = {c: label_cutoff(frame, c, config) for c in sorted(cuts)}
    offsets = np.cumsum([0] + [len(s) for s in by_cut.values()])
    position = {c: np.arange(offsets[i], offsets[i + 1]) for i, c in enumerate(by_cut)}
    everything = Samples.concat(list(by_cut.values()))
    preprocessor = Preprocessor(config.max_events, config.lookback_seconds).fit(frame, split.train)
    inputs = build_inputs(preprocessor, frame, everything, config.target)
    folds = []
    for k in range(config.backtest_folds):
        v = v0 - k * h
        train = np.concatenate([position[v - j * h] for j in range(1, config.n_cutoffs + 1)])
        folds.append(Fold(v, train, position[v]))
    return inputs, everything.labels.astype(int), folds


def noise(inputs, m: int) -> np.ndarray:
    """A fixed pseudo-random number per (contact, cut-off, m): the same sample gets the same value."""
    x = (inputs.contacts.astype(np.uint64) * np.uint64(1_000_003) + inputs.cutoffs.astype(np.uint64)) \
        * np.uint64(2 * m + 1) + np.uint64(m)
    for shift in (33, 29, 32):  # splitmix64-style mixing
        x = (x ^ (x >> np.uint64(shift))) * np.uint64(0xBF58476D1CE4E5B9)
    return (x >> np.uint64(11)).astype(np.float64) / 2.0**53


class Spy(Candidate):
    """Records what every fit receives and what it is then scored on; its score encodes the cut-off."""

    name = "spy"

    def __init__(self, config, log, stops_early):
        super().__init__(config)
        self.log, self.stops_early = log, stops_early

    def fit(self, train, labels, *, monitor=None, monitor_labels=None, **context):
        seen = [train] + ([monitor] if monitor is not None else [])
        self.log.append({"fit": {(int(c), int(t)) for part in seen for c, t in zip(part.contacts, part.cutoffs, strict=True)},
                         "newest": max(int(part.cutoffs.max()) for part in seen), "monitor": monitor is not None})
        return self

    def score(self, inputs):
        if self.log and "scored" not in self.log[-1]:
            self.log[-1]["scored"] = {(int(c), int(t)) for c, t in zip(inputs.contacts, inputs.cutoffs, strict=True)}
            self.log[-1]["oldest_scored"] = int(inputs.cutoffs.min())
        # days since a fixed origin, plus noise below one day: the stack's rows reveal their cut-off
        return (inputs.cutoffs - 1_600_000_000) / DAY + 0.5 * noise(inputs, 0)


class SpyStack(Stack):
    def __init__(self, config, parts, log):
        super().__init__(config, parts)
        self.log = log

    def fit_meta(self, part_scores, labels):
        self.log.append({"newest": int(np.floor(part_scores[:, 0]).max())})
        return super().fit_meta(part_scores, labels)

    def combine(self, part_scores):
        if self.log and "oldest_scored" not in self.log[-1]:
            self.log[-1]["oldest_scored"] = int(np.floor(part_scores[:, 0]).min())
        return super().combine(part_scores)


def test_no_fit_and_no_monitor_sees_the_scored_fold():
    config = tiny_auto()
    inputs, labels, folds = backtest(random_frame(n_contacts=400, days=56, seed=3), config)
    h = config.horizon_seconds
    logs = {"spy": [], "spy_monitored": [], "stack": []}

    def make(name, parts=None):
        if name == "stack":
            return SpyStack(config, parts, logs["stack"])
        return Spy(config, logs[name], stops_early=name == "spy_monitored")

    entries = run(["spy", "spy_monitored", "stack"], make, inputs, labels, folds, config,
                  report=folds[0].measured[:10], deadline=None)
    assert entries["spy"].status == entries["spy_monitored"].status == "succeeded"
    for name in ("spy", "spy_monitored"):
        assert len(logs[name]) == len(folds)
        for call in logs[name]:
            assert call["monitor"] == (name == "spy_monitored")
            assert not call["fit"] & call["scored"], name  # no scored sample in the fit or the monitor
            assert call["newest"] + h <= call["oldest_scored"], name  # every outcome known by the cut-off
    # the stack's meta-learner: fitted only on rows whose outcomes are known by the fold it scores
    assert entries["stack"].status == "succeeded", entries["stack"].reason
    assert logs["stack"]
    for call in logs["stack"]:
        assert call["newest"] * DAY + h <= call["oldest_scored"] * DAY


class Peek(Candidate):
    """Picks the best of many noise scorers by its monitor's AUC: what early stopping and size choice do."""

    name = "peek"
    stops_early = True

    def fit(self, train, labels, *, monitor=None, monitor_labels=None, **context):
        aucs = [roc_auc_score(monitor_labels, noise(monitor, m)) for m in range(1, 201)]
        self.m = 1 + int(np.argmax(aucs))
        return self

    def score(self, inputs):
        return noise(inputs, self.m)


def test_pure_noise_target_scores_no_better_than_chance():
    config = tiny_auto(n_cutoffs=1)
    inputs, _, folds = backtest(random_frame(n_contacts=2500, days=42, seed=5), config)
    labels = (noise(inputs, 10_000) < 0.5).astype(int)  # independent of everything a candidate reads
    entries = run(["peek"], lambda name, parts=None: Peek(config), inputs, labels, folds, config,
                  report=folds[0].measured[:10], deadline=None)
    assert entries["peek"].status == "succeeded", entries["peek"].reason
    aucs = np.array([f["roc_auc"] for f in entries["peek"].folds])
    sizes = [(labels[f.measured].sum(), len(f.measured) - labels[f.measured].sum()) for f in folds]
    se = np.array([np.sqrt((n1 + n0 + 1) / (12 * n1 * n0)) for n1, n0 in sizes])
    band = 3 * np.sqrt((se**2).sum()) / len(se)  # 3 standard errors of the mean of the folds' AUCs
    # honest: the mean over the folds within the band around chance
    assert abs(aucs.mean() - 0.5) < band, aucs
    # the same candidate watching the scored fold (the leak this protocol prevents) fails that check
    leaky = []
    for fold in folds:
        model = Peek(config).fit(inputs.take(fold.train), labels[fold.train], monitor=inputs.take(fold.measured),
                                 monitor_labels=labels[fold.measured])
        leaky.append(roc_auc_score(labels[fold.measured], model.score(inputs.take(fold.measured))))
    assert np.mean(leaky) - 0.5 > band, leaky


def test_networks_stop_early_on_samples_before_the_validation_cutoff(tmp_path):
    config = tiny_auto(arch="gru", epochs=2)
    result = train_model(random_frame(n_contacts=300, seed=2), config, artifact_dir=tmp_path / "m")
    info = result.fitted["entries"]["gru"].info
    assert info["monitor"]["samples"] > 0
    assert info["monitor"]["newest_cutoff"] + config.horizon_seconds <= result.validation_cutoff
