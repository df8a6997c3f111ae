"""Probability calibration that reads well: Platt, beta or binned isotonic, chosen by validation.

Every candidate's score is calibrated the same way: the method with the lowest cross-fitted log loss
on the calibration samples wins (ties to Platt, the simplest). All three maps are strictly
increasing in the score, so the ranking (ROC-AUC) is the candidate's own and distinct scores stay
distinct probabilities:

- Platt: a logistic regression on the score (a logit-like number, higher = more likely).
- Beta (Kull et al. 2017): logistic regression on ln p and -ln(1 - p) of p = sigmoid(score), with
  both coefficients kept non-negative (else it is not monotone and Platt is used).
- Isotonic with a minimum bin size: samples are pooled into equal-count bins of at least
  ``min_bin`` by score (one pseudo-sample at the base rate each), pool-adjacent-violators runs on
  the bins, bins it merged become one knot, and probabilities are interpolated linearly between
  the strictly increasing knots (Platt's shape beyond the outer ones), blended 2 % with Platt.

Finally every probability is shrunk towards the base rate by one pseudo-sample,
``(n p + rate) / (n + 1)``: a validation set of n samples cannot justify anything closer to 0 or 1
than about 1/n, and the shrink keeps the order. Stored as plain JSON (no pickle).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression

METHODS = ("platt", "beta", "isotonic")
_EPS = 1e-12
_TIE_BREAK = 0.02  # weight of the Platt term blended into isotonic: flat steps become gentle slopes


def _beta_features(scores: np.ndarray) -> np.ndarray:
    p = np.clip(expit(scores), 1e-9, 1 - 1e-9)
    return np.column_stack([np.log(p), -np.log1p(-p)])


@dataclass
class Calibrator:
    """Maps candidate scores (higher = more likely) to probabilities."""

    method: str = "none"  # none | platt | beta | isotonic
    coef: list[float] = field(default_factory=lambda: [1.0])
    intercept: float = 0.0
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    platt: list[float] = field(default_factory=lambda: [1.0, 0.0])  # slope, intercept (isotonic's tie break)
    n: int = 0
    rate: float = 0.5

    def _raw(self, scores: np.ndarray) -> np.ndarray:
        if self.method == "platt":
            return expit(self.coef[0] * scores + self.intercept)
        if self.method == "beta":
            return expit(_beta_features(scores) @ np.asarray(self.coef) + self.intercept)
        if self.method == "isotonic":
            smooth = expit(self.platt[0] * scores + self.platt[1])
            stepped = np.interp(scores, self.x, self.y)
            # beyond the outer bin centres the steps are flat: follow Platt's shape there instead,
            # joined continuously, so the tails keep their order (and stay inside (0, 1))
            lo, hi = self.x[0], self.x[-1]
            at = expit(self.platt[0] * np.array([lo, hi]) + self.platt[1])
            below, above = scores < lo, scores > hi
            stepped[below] = self.y[0] * smooth[below] / max(at[0], 1e-12)
            stepped[above] = 1 - (1 - self.y[-1]) * (1 - smooth[above]) / max(1 - at[1], 1e-12)
            return (1 - _TIE_BREAK) * stepped + _TIE_BREAK * smooth
        return expit(scores)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, float).reshape(-1)
        p = self._raw(scores)
        if self.n:
            p = (self.n * p + self.rate) / (self.n + 1)
        return np.clip(p, _EPS, 1 - _EPS)

    def to_dict(self) -> dict:
        """JSON-ready state."""
        return {"method": self.method, "coef": [float(c) for c in self.coef], "intercept": float(self.intercept),
                "x": self.x, "y": self.y, "platt": self.platt, "n": self.n, "rate": self.rate}

    @classmethod
    def from_dict(cls, data: dict) -> Calibrator:
        """Rebuild from :meth:`to_dict`."""
        return cls(**data)


def logistic_fit(features: np.ndarray, labels: np.ndarray, l2: float = 1e-4, iterations: int = 50) -> np.ndarray:
    """Weights (intercept last) of an L2-penalised logistic regression by Newton's method.

    Calibration fits one or two features thousands of times per training; a closed Newton loop in
    numpy is exact to 1e-10 and avoids the solver overhead of a general-purpose library.
    """
    X = np.column_stack([features, np.ones(len(features))])
    w = np.zeros(X.shape[1])
    penalty = np.full(X.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = expit(X @ w)
        gradient = X.T @ (p - labels) / len(labels) + penalty * w
        hessian = (X * (p * (1 - p))[:, None]).T @ X / len(labels) + np.diag(penalty + 1e-12)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return w


def _platt(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    slope, intercept = logistic_fit(scores[:, None], labels)
    slope, intercept = float(slope), float(intercept)
    if slope <= 0:  # the candidate ranks backwards on this set: keep its order, learn nothing
        return 1e-3, float(np.log(max(labels.mean(), 1e-6) / max(1 - labels.mean(), 1e-6)))
    return slope, intercept


def fit_calibrator(scores: np.ndarray, labels: np.ndarray, method: str, min_bin: int = 50) -> Calibrator:
    """Fit a calibrator of ``method`` (platt | beta | isotonic | none) on ``(scores, labels)``."""
    scores, labels = np.asarray(scores, float).reshape(-1), np.asarray(labels).astype(int)
    n, rate = len(labels), float(labels.mean()) if len(labels) else 0.5
    if method == "none" or len(np.unique(labels)) < 2:
        return Calibrator("none", n=n, rate=rate)
    slope, intercept = _platt(scores, labels)
    if method == "platt":
        return Calibrator("platt", coef=[slope], intercept=intercept, n=n, rate=rate)
    if method == "beta":
        *coef, beta_intercept = (float(v) for v in logistic_fit(_beta_features(scores), labels))
        if min(coef) < 0:
            return Calibrator("platt", coef=[slope], intercept=intercept, n=n, rate=rate)
        return Calibrator("beta", coef=coef, intercept=beta_intercept, n=n, rate=rate)
    if method == "isotonic":
        order = np.argsort(scores, kind="stable")
        bins = max(2, n // max(min_bin, 1))
        groups = np.array_split(order, bins)
        centres = np.array([scores[g].mean() for g in groups])
        # one pseudo-sample at the base rate per bin: a bin of 50 without a buyer is not a 0 %
        rates = np.array([(labels[g].sum() + rate) / (len(g) + 1) for g in groups])
        weights = np.array([len(g) for g in groups], float)
        fitted = IsotonicRegression(out_of_bounds="clip").fit(centres, rates, sample_weight=weights).predict(centres)
        # bins that pool-adjacent-violators merged (equal values) become one knot at their weighted
        # centre, so the knots strictly increase and interpolation between them has no flat stretch
        knots_x, knots_y = [], []
        for value in np.unique(fitted):
            block = fitted == value
            knots_x.append(float(np.average(centres[block], weights=weights[block])))
            knots_y.append(float(value))
        if len(knots_x) < 2:
            return Calibrator("platt", coef=[slope], intercept=intercept, n=n, rate=rate)
        return Calibrator("isotonic", x=knots_x, y=knots_y, platt=[slope, intercept], n=n, rate=rate)
    raise ValueError(f"unknown calibration method {method!r}")


def _log_loss(labels: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log1p(-p)))


def cross_fitted(scores: np.ndarray, labels: np.ndarray, method: str, folds: int = 5, seed: int = 0,
                 min_bin: int = 50) -> np.ndarray:
    """Calibrated scores where each fold is calibrated by the others (honest probability figures)."""
    scores, labels = np.asarray(scores, float).reshape(-1), np.asarray(labels).astype(int)
    out = np.empty(len(scores))
    fold_of = np.random.default_rng(seed).permutation(len(scores)) % folds
    for k in range(folds):
        held = fold_of == k
        out[held] = fit_calibrator(scores[~held], labels[~held], method, min_bin)(scores[held])
    return out


def choose_method(requested: str, scores: np.ndarray, labels: np.ndarray, *, seed: int = 0,
                  min_bin: int = 50) -> str:
    """Resolve ``auto``: the method with the lowest cross-fitted log loss (ties to the simpler)."""
    if requested != "auto":
        return requested
    labels = np.asarray(labels).astype(int)
    if len(np.unique(labels)) < 2:
        return "none"
    methods = [m for m in METHODS if m != "isotonic" or len(labels) >= 4 * min_bin]
    losses = {m: _log_loss(labels, cross_fitted(scores, labels, m, seed=seed, min_bin=min_bin)) for m in methods}
    best = min(losses.values())
    return next(m for m in methods if losses[m] <= best + 1e-4)
