"""BG/NBD (Fader, Hardie & Lee 2005), fitted by maximum likelihood with scipy.

No maintained library installs cleanly here: ``lifetimes`` is unmaintained since 2020, ``btyd`` is a
2022 beta, ``pymc-marketing`` pulls in PyMC/PyTensor (minutes to install, MCMC to fit). The model is
small, so it is implemented from the paper and tested against its published CDNOW estimates.

A contact's history at a cut-off is ``(x, t_x, T)`` in days: x transactions after its first event
(its "birth"), the last at t_x after birth, T = cut-off - birth. For CDNOW the first event is the
first purchase, so this is exactly the paper's (repeat transactions, recency, age).

The score is P(at least one transaction in the next h days | x, t_x, T): a customer alive at T with
rate lambda makes none in h with probability exp(-lambda h) (dropping out only happens after a
transaction), and given alive lambda ~ Gamma(r + x, alpha + T), so
``P = P(alive) * (1 - ((alpha + T) / (alpha + T + h)) ** (r + x))``. P(alive) alone is never used
as a churn score: it is 1 for every one-time buyer and ranks them backwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln

from .data import EventFrame
from .features import _position
from .labels import Samples

DAY = 86400.0


def history_stats(frame: EventFrame, samples: Samples, target: str) -> np.ndarray:
    """(S, 3) array of x, t_x, T in days per sample; transactions are purchases (purchase target)
    or any event (churn: "no event in the horizon" is "no transaction")."""
    out = np.zeros((len(samples), 3))
    if len(frame) == 0 or len(samples) == 0:
        return out
    ids, starts, ends, _ = frame.groups()
    slot = np.minimum(np.searchsorted(ids, samples.contacts), len(ids) - 1)
    known = ids[slot] == samples.contacts
    start, end = np.where(known, starts[slot], 0), np.where(known, ends[slot], 0)
    # rows of each contact strictly before its cut-off: [start, cut)
    cut = _position(frame, frame.groups()[3], slot, samples.cutoffs, start, end)
    has = cut > start
    birth = np.where(has, frame.ts[np.minimum(start, len(frame) - 1)], samples.cutoffs)
    is_tx = frame.is_purchase if target == "purchase" else np.ones(len(frame), bool)
    running = np.concatenate(([0], np.cumsum(is_tx)))
    # transactions after birth: the birth event itself is not one (it starts the clock)
    first_is_tx = has & is_tx[np.minimum(start, len(frame) - 1)]
    x = np.where(has, running[cut] - running[start] - first_is_tx, 0)
    tx_row = np.where(is_tx, np.arange(len(frame)), -1)
    last_tx = np.maximum.accumulate(tx_row)[np.maximum(cut - 1, 0)]
    t_x = np.where(has & (x > 0) & (last_tx > start), frame.ts[np.maximum(last_tx, 0)] - birth, 0)
    out[:, 0] = np.maximum(x, 0)
    out[:, 1] = np.maximum(t_x, 0) / DAY
    out[:, 2] = np.maximum(samples.cutoffs - birth, 0) / DAY
    return out


def _log_likelihood(params: np.ndarray, x, t_x, T) -> np.ndarray:
    r, alpha, a, b = np.exp(np.clip(params, -12, 12))  # the simplex may wander: keep gammaln finite
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    term1 = betaln(a, b + x) - betaln(a, b) + common - (r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        term2 = np.where(x > 0, betaln(a + 1, b + np.maximum(x, 1) - 1) - betaln(a, b) + common
                         - (r + x) * np.log(alpha + t_x), -np.inf)
    return np.logaddexp(term1, term2)


@dataclass
class BGNBD:
    """Fitted BG/NBD parameters (time in the unit of the data, days here)."""

    r: float = 1.0
    alpha: float = 1.0
    a: float = 1.0
    b: float = 1.0

    def fit(self, stats: np.ndarray, weights: np.ndarray | None = None) -> BGNBD:
        """Maximum likelihood on rows of (x, t_x, T); raises RuntimeError when it does not converge."""
        x, t_x, T = stats[:, 0], stats[:, 1], stats[:, 2]
        keep = T > 0
        x, t_x, T = x[keep], t_x[keep], T[keep]
        w = np.ones(len(x)) if weights is None else np.asarray(weights, float)[keep]
        if len(x) < 10:
            raise RuntimeError(f"BG/NBD needs at least 10 contacts with history, got {len(x)}")

        def loss(params):
            value = -float(np.sum(w * _log_likelihood(params, x, t_x, T))) / w.sum()
            return value if np.isfinite(value) else 1e300

        start = np.log([0.5, max(float(np.mean(T)) / 10, 1.0), 1.0, 2.0])
        result = minimize(loss, start, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-10})
        if not np.isfinite(result.fun):
            raise RuntimeError(f"BG/NBD fit failed: {result.message}")
        self.r, self.alpha, self.a, self.b = (float(v) for v in np.exp(np.clip(result.x, -12, 12)))
        return self

    def p_alive(self, stats: np.ndarray) -> np.ndarray:
        """P(still active at T | x, t_x, T)."""
        x, t_x, T = stats[:, 0], stats[:, 1], stats[:, 2]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            log_ratio = (np.log(self.a) - np.log(self.b + np.maximum(x, 1) - 1)
                         + (self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + t_x)))
            odds = np.where(x > 0, np.exp(np.minimum(log_ratio, 700)), 0.0)
        return 1.0 / (1.0 + odds)

    def p_any(self, stats: np.ndarray, horizon_days: float) -> np.ndarray:
        """P(at least one transaction in the next ``horizon_days``)."""
        x, T = stats[:, 0], stats[:, 2]
        none_if_alive = np.exp((self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + T + horizon_days)))
        return self.p_alive(stats) * (1.0 - none_if_alive)

    def to_dict(self) -> dict:
        """JSON-ready parameters."""
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}
