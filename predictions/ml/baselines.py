"""Baselines on the recency/frequency/monetary aggregates: prevalence, logistic regression, GBT."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression


@dataclass
class Prevalence:
    """Predicts the training positive rate for everyone."""

    rate: float = 0.5

    def fit(self, aggregates: np.ndarray, labels: np.ndarray) -> Prevalence:
        self.rate = float(np.mean(labels))
        return self

    def predict(self, aggregates: np.ndarray) -> np.ndarray:
        return np.full(len(aggregates), self.rate)


class SklearnBaseline:
    """Wraps a sklearn classifier so every baseline has fit(aggregates, labels) / predict(aggregates)."""

    def __init__(self, estimator) -> None:
        self.estimator = estimator

    def fit(self, aggregates: np.ndarray, labels: np.ndarray) -> SklearnBaseline:
        self.estimator.fit(aggregates, labels)
        return self

    def predict(self, aggregates: np.ndarray) -> np.ndarray:
        return self.estimator.predict_proba(aggregates)[:, 1]


def make_baselines(seed: int = 0) -> dict[str, Prevalence | SklearnBaseline]:
    """The three baselines, unfitted, in report order. Aggregates arrive already scaled to [0, 1]."""
    return {
        "prevalence": Prevalence(),
        "logistic_regression": SklearnBaseline(LogisticRegression(C=1.0, max_iter=1000)),
        "gradient_boosting": SklearnBaseline(
            HistGradientBoostingClassifier(
                max_iter=200, learning_rate=0.1, early_stopping=True, random_state=seed
            )
        ),
    }


def fit_baselines(
    aggregates: np.ndarray, labels: np.ndarray, seed: int = 0
) -> dict[str, Prevalence | SklearnBaseline]:
    """Fit every baseline on training aggregates."""
    return {name: model.fit(aggregates, labels) for name, model in make_baselines(seed).items()}
