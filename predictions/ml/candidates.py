"""The tournament's candidates behind one interface, and the classical ones.

A candidate is fitted on training samples (``fit``), gives a *score* per sample (``score``: a
logit-like number, higher = more likely; the calibrator turns it into a probability), explains that
score additively (``explain``: base + sum of contributions == score, in score units) and saves /
loads itself into a folder. Classical candidates here: recency alone, logistic regression and
gradient-boosted trees on the recency/frequency/monetary aggregates (``gbt_hmm`` adds the HMM's
current-state posterior as a feature family), BG/NBD, and the HMM's own predictor. The sequence
networks live in ``networks.py``, the stacked fusion in ``stack.py``.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from itertools import combinations
from math import factorial
from pathlib import Path

import numpy as np
from scipy.special import logit
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from .bgnbd import BGNBD
from .config import TrainConfig
from .features import AGGREGATE_FEATURES, FeatureBatch
from .words import aggregate_age, aggregate_key, aggregate_text, humanize_seconds


class CandidateFailed(Exception):
    """A candidate could not be fitted (the reason goes on the scoreboard; the tournament goes on)."""


@dataclass
class Inputs:
    """Everything any candidate reads about a set of samples."""

    batch: FeatureBatch
    history: np.ndarray  # (S, 3) x, t_x, T in days (bgnbd.history_stats)
    symbols: np.ndarray  # (S, L) int16 HMM tokens, -1 on padding (hmm.symbols)
    cutoffs: np.ndarray  # (S,) unix seconds
    contacts: np.ndarray  # (S,) contact ids
    hmm: np.ndarray | None = None  # (S, K) current-state posterior, once the HMM is fitted

    def __len__(self) -> int:
        return len(self.cutoffs)

    def take(self, index) -> Inputs:
        """A subset of the samples."""
        return Inputs(self.batch.take(index), self.history[index], self.symbols[index], self.cutoffs[index],
                      self.contacts[index], None if self.hmm is None else self.hmm[index])


@dataclass
class RawFactor:
    """One additive part of a score: words, signed contribution, kind, and keys for global importance."""

    text: str
    contribution: float
    kind: str  # event | aggregate | state | history
    key: str  # event name or family
    age: float | None = None  # seconds since what it describes (None: window / whole history)


@dataclass
class Attribution:
    """Per sample: base + sum(factor contributions) == value (the score), in score units."""

    base: np.ndarray
    value: np.ndarray
    factors: list[list[RawFactor]] = field(default_factory=list)


@dataclass
class ExplainContext:
    """What an explanation needs besides the inputs: background samples, the frame, the lookback."""

    background: Inputs
    frame: object  # EventFrame (event names and times per step)
    lookback_seconds: int
    state_names: list[str] = field(default_factory=list)
    nsamples: int = 100
    seed: int = 0


class Candidate:
    """Base class: subclasses set ``name`` and implement fit / score / explain / _state."""

    name = ""
    uses_hmm = False
    # True: ``fit`` needs a monitor set (early stopping, size choice); the tournament gives it one
    # held out of the training rows, never the rows it is scored on
    stops_early = False

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.info: dict = {}

    def fit(self, train: Inputs, labels: np.ndarray, **context) -> Candidate:
        raise NotImplementedError

    def score(self, inputs: Inputs) -> np.ndarray:
        raise NotImplementedError

    def explain(self, inputs: Inputs, context: ExplainContext) -> Attribution:
        raise NotImplementedError

    def save(self, directory: Path) -> None:
        """Pickle the fitted state (sklearn estimators and plain numbers) into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / "candidate.pkl").open("wb") as handle:
            pickle.dump(self.__dict__, handle, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, directory: Path, config: TrainConfig) -> Candidate:
        """Rebuild what :meth:`save` wrote."""
        self = cls.__new__(cls)
        with (directory / "candidate.pkl").open("rb") as handle:
            self.__dict__.update(pickle.load(handle))
        self.config = config
        return self


def _check_classes(labels: np.ndarray, config: TrainConfig, name: str) -> None:
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if min(positives, negatives) < config.min_candidate_class_count:
        raise CandidateFailed(f"{name}: too few training samples of a class ({positives} positives, {negatives} "
                              f"negatives; needs {config.min_candidate_class_count} of each)")


def _aggregate_factors(i: int, batch: FeatureBatch, values: np.ndarray, lookback: str) -> list[RawFactor]:
    """Aggregate contributions of sample ``i`` in words, merged when two features read the same."""
    merged: dict[str, RawFactor] = {}
    for j, name in enumerate(AGGREGATE_FEATURES):
        text = aggregate_text(name, batch.raw_aggregates[i], lookback)
        if text is None:
            continue
        if text in merged:
            merged[text].contribution += float(values[j])
        else:
            merged[text] = RawFactor(text, float(values[j]), "aggregate", aggregate_key(name),
                                     aggregate_age(name, batch.raw_aggregates[i]))
    return list(merged.values())


def state_factors(posterior: np.ndarray, values: np.ndarray, names: list[str]) -> list[RawFactor]:
    """HMM state contributions of one sample in words."""
    return [RawFactor(f"{p:.0%} likely in the '{names[k]}' stage now", float(values[k]), "state",
                      f"stage: {names[k]}", 0.0) for k, p in enumerate(posterior)]


class Recency(Candidate):
    """Time since the last event alone (the sign learnt: sooner buys, later churns)."""

    name = "recency"

    def fit(self, train, labels, **context):
        _check_classes(labels, self.config, self.name)
        raw = np.log1p(train.batch.raw_aggregates[:, 0])
        self.sign = -1.0 if np.corrcoef(raw, labels)[0, 1] <= 0 else 1.0
        return self

    def score(self, inputs):
        return self.sign * np.log1p(inputs.batch.raw_aggregates[:, 0])

    def explain(self, inputs, context):
        value, base = self.score(inputs), float(np.mean(self.score(context.background)))
        factors = [[RawFactor(f"No activity for {humanize_seconds(r)}", v - base, "aggregate", "recency", float(r))]
                   for r, v in zip(inputs.batch.raw_aggregates[:, 0], value, strict=True)]
        return Attribution(np.full(len(value), base), value, factors)


class LogReg(Candidate):
    """Logistic regression on the scaled RFM aggregates."""

    name = "logreg"

    def fit(self, train, labels, **context):
        _check_classes(labels, self.config, self.name)
        self.model = LogisticRegression(C=1.0, max_iter=2000).fit(train.batch.aggregates, labels)
        return self

    def score(self, inputs):
        return self.model.decision_function(inputs.batch.aggregates)

    def explain(self, inputs, context):
        mean = context.background.batch.aggregates.mean(axis=0)
        weights = self.model.coef_[0]
        values = (inputs.batch.aggregates - mean) * weights
        base = float(self.model.intercept_[0] + mean @ weights)
        lookback = humanize_seconds(context.lookback_seconds)
        factors = [_aggregate_factors(i, inputs.batch, values[i], lookback) for i in range(len(inputs))]
        return Attribution(np.full(len(inputs), base), self.score(inputs), factors)


class GBT(Candidate):
    """Gradient-boosted trees on the RFM aggregates; ``gbt_hmm`` adds the HMM state posterior."""

    name = "gbt"

    def _matrix(self, inputs: Inputs) -> np.ndarray:
        if not self.uses_hmm:
            return inputs.batch.aggregates
        if inputs.hmm is None:
            raise CandidateFailed(f"{self.name}: the HMM was not fitted, so its state feature is missing")
        return np.hstack([inputs.batch.aggregates, inputs.hmm])

    def fit(self, train, labels, **context):
        _check_classes(labels, self.config, self.name)
        self.model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, early_stopping=True,
                                                    random_state=self.config.seed)
        self.model.fit(self._matrix(train), labels)
        return self

    def score(self, inputs):
        return self.model.decision_function(self._matrix(inputs))

    def explain(self, inputs, context):
        import shap

        explainer = shap.TreeExplainer(self.model, self._matrix(context.background)[:100])
        values = np.asarray(explainer.shap_values(self._matrix(inputs), check_additivity=False)).reshape(len(inputs), -1)
        value = self.score(inputs)
        # shap's conversion of HistGradientBoosting misses a constant (its baseline) by ~1e-3: the
        # base absorbs it, so base + contributions is the score exactly and no contribution changes
        base = value - values.sum(axis=1)
        lookback = humanize_seconds(context.lookback_seconds)
        n_agg = len(AGGREGATE_FEATURES)
        factors = []
        for i in range(len(inputs)):
            parts = _aggregate_factors(i, inputs.batch, values[i, :n_agg], lookback)
            if self.uses_hmm:
                parts += state_factors(inputs.hmm[i], values[i, n_agg:], context.state_names)
            factors.append(parts)
        return Attribution(base, value, factors)


class GBTWithHMM(GBT):
    name = "gbt_hmm"
    uses_hmm = True


class HMMPredictor(Candidate):
    """The HMM as a predictor: logistic regression on the current-state posterior."""

    name = "hmm"
    uses_hmm = True

    def fit(self, train, labels, **context):
        _check_classes(labels, self.config, self.name)
        if train.hmm is None:
            raise CandidateFailed("hmm: the state model was not fitted")
        self.model = LogisticRegression(C=1.0, max_iter=2000).fit(train.hmm, labels)
        return self

    def score(self, inputs):
        return self.model.decision_function(inputs.hmm)

    def explain(self, inputs, context):
        mean = context.background.hmm.mean(axis=0)
        weights = self.model.coef_[0]
        values = (inputs.hmm - mean) * weights
        base = float(self.model.intercept_[0] + mean @ weights)
        factors = [state_factors(inputs.hmm[i], values[i], context.state_names) for i in range(len(inputs))]
        return Attribution(np.full(len(inputs), base), self.score(inputs), factors)


class BGNBDCandidate(Candidate):
    """BG/NBD: P(any transaction within the horizon); churn is its complement."""

    name = "bgnbd"

    def fit(self, train, labels, **context):
        _check_classes(labels, self.config, self.name)
        # one row per contact: its history at its latest training cut-off (the model is per customer)
        order = np.lexsort((-train.cutoffs, train.contacts))
        _, first = np.unique(train.contacts[order], return_index=True)
        rows = order[first]
        # four parameters: 20,000 customers pin them down; more only slows every likelihood pass
        rows = np.sort(np.random.default_rng(self.config.seed).permutation(rows)[:20_000])
        try:
            self.model = BGNBD().fit(train.history[rows])
        except (RuntimeError, FloatingPointError, ValueError) as error:
            raise CandidateFailed(f"bgnbd: {error}") from error
        self.horizon_days = self.config.horizon_seconds / 86400
        self.info = {"parameters": self.model.to_dict(), "contacts": int(len(rows))}
        return self

    def _of_history(self, history: np.ndarray) -> np.ndarray:
        p = np.clip(self.model.p_any(history, self.horizon_days), 1e-9, 1 - 1e-9)
        return logit(p) if self.config.target == "purchase" else -logit(p)

    def score(self, inputs):
        return self._of_history(inputs.history)

    def explain(self, inputs, context):
        # exact interventional Shapley values over the 3 inputs (x, t_x, T) against the background
        background = context.background.history[:64]
        values = np.zeros((len(inputs), 3))
        base = float(np.mean(self._of_history(background)))
        for i, row in enumerate(inputs.history):
            values[i] = _shapley3(self._of_history, row, background)
        factors = []
        for i, (x, t_x, age) in enumerate(inputs.history):
            kind = "purchase" if self.config.target == "purchase" else "visit"
            since_last = (age - t_x) * 86400
            factors.append([
                RawFactor(f"{int(x)} repeat {kind}{'s' if x != 1 else ''} so far", values[i, 0], "history", "frequency"),
                RawFactor(f"Last {kind} {humanize_seconds(since_last)} ago", values[i, 1], "history", "recency",
                          since_last),
                RawFactor(f"Known for {humanize_seconds(age * 86400)}", values[i, 2], "history", "tenure"),
            ])
        # efficiency of exact Shapley values: base + sum == the score, to float rounding
        return Attribution(np.full(len(inputs), base), self.score(inputs), factors)


def _shapley3(function, row: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Exact Shapley values of ``function`` at ``row`` (features missing = taken from the background)."""
    n = len(row)
    cache: dict[tuple, float] = {}

    def v(subset: tuple) -> float:
        if subset not in cache:
            mixed = background.copy()
            mixed[:, list(subset)] = row[list(subset)]
            cache[subset] = float(np.mean(function(mixed)))
        return cache[subset]

    out = np.zeros(n)
    for j in range(n):
        others = [k for k in range(n) if k != j]
        for size in range(n):
            weight = factorial(size) * factorial(n - size - 1) / factorial(n)
            for subset in combinations(others, size):
                out[j] += weight * (v(tuple(sorted((*subset, j)))) - v(subset))
    return out


CLASSICAL = {c.name: c for c in (Recency, LogReg, BGNBDCandidate, GBT, GBTWithHMM, HMMPredictor)}
