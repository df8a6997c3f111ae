"""A hidden Markov model over each contact's event sequence (hmmlearn); states read as funnel stages.

Tokens: every event is its stage (none, awareness, interest, consideration, purchase, loyalty:
0..5); a silence of more than a day before an event, or before the cut-off, adds token 6 (more than
a week: 7). So the model sees order, stage and pauses, and the last token tells how long the
contact has been quiet. The posterior of the state at the last token (forward-backward at the end
of the sequence equals the filtered state) is the contact's *current stage*: a feature family for
``gbt_hmm`` and the input of the ``hmm`` predictor. States are named after what they emit most:
buying (purchase/loyalty), dormant (long silences), considering (consideration), browsing (the rest).
"""

from __future__ import annotations

import numpy as np

from .candidates import CandidateFailed
from .features import FeatureBatch

N_SYMBOLS = 8
FIT_TOKENS = 65
DAY, WEEK = 86400, 7 * 86400


def symbols(batch: FeatureBatch, frame, cutoffs: np.ndarray) -> np.ndarray:
    """(S, 2N+1) int16 tokens per sample, -1 on padding, in time order (see the module docstring)."""
    rows = batch.event_rows
    real = rows >= 0
    ts = np.where(real, frame.ts[np.maximum(rows, 0)] if len(frame) else 0, 0)
    stage = np.where(real, np.clip(batch.stage.astype(np.int16) - 1, 0, 5), -1)  # OOV (1) -> 0 "none"
    previous = np.concatenate([np.zeros((len(rows), 1), ts.dtype), ts[:, :-1]], axis=1)
    had_previous = np.concatenate([np.zeros((len(rows), 1), bool), real[:, :-1]], axis=1)
    gap = np.where(real & had_previous, ts - previous, 0)
    last_ts = np.where(real.any(axis=1), ts.max(axis=1), cutoffs)
    end_gap = cutoffs - last_ts
    out = np.full((len(rows), 2 * rows.shape[1] + 1), -1, np.int16)
    out[:, 0:-1:2] = np.where(gap > WEEK, 7, np.where(gap > DAY, 6, -1))
    out[:, 1:-1:2] = stage
    out[:, -1] = np.where(end_gap > WEEK, 7, np.where(end_gap > DAY, 6, -1))
    return out


def _flatten(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask = tokens >= 0
    lengths = mask.sum(axis=1)
    # a contact without tokens (cannot happen for eligible contacts) still needs one: "none"
    empty = lengths == 0
    if empty.any():
        tokens = tokens.copy()
        tokens[empty, -1] = 0
        mask, lengths = tokens >= 0, np.maximum(lengths, 1)
    return tokens[mask].reshape(-1, 1).astype(np.int64), lengths


class StateModel:
    """CategoricalHMM fitted on training sequences; ``posterior`` gives the current-state probabilities."""

    def __init__(self, n_states: int = 4, iterations: int = 60, max_sequences: int = 5000, seed: int = 0) -> None:
        self.n_states, self.iterations, self.max_sequences, self.seed = n_states, iterations, max_sequences, seed
        self.model = None
        self.names: list[str] = []
        self.info: dict = {}

    def fit(self, tokens: np.ndarray) -> StateModel:
        """Baum-Welch on up to ``max_sequences`` sequences; CandidateFailed if it does not converge."""
        from hmmlearn.hmm import CategoricalHMM

        rng = np.random.default_rng(self.seed)
        chosen = np.sort(rng.permutation(len(tokens))[: self.max_sequences])
        # Baum-Welch on the last FIT_TOKENS tokens of each sequence: the recent journey is what the
        # current state is about, and the fit's cost grows with every token (270 s for 5,000 x 129
        # tokens on the loaded 2-core machine)
        X, lengths = _flatten(tokens[chosen][:, -FIT_TOKENS:])
        # converged: the log-likelihood moves by less than 1e-4 nats per token between iterations
        model = CategoricalHMM(n_components=self.n_states, n_iter=self.iterations, tol=max(1e-2, 1e-4 * len(X)),
                               random_state=self.seed, n_features=N_SYMBOLS, init_params="ste", params="ste")
        try:
            model.fit(X, lengths)
        except (ValueError, FloatingPointError) as error:
            raise CandidateFailed(f"hmm: fitting failed: {error}") from error
        monitor = model.monitor_
        history = list(monitor.history)
        change = history[-1] - history[-2] if len(history) > 1 else float("inf")
        # hmmlearn's own `converged` is also true when it merely ran out of iterations
        if not change < monitor.tol:
            raise CandidateFailed(f"hmm: did not converge in {self.iterations} iterations (log-likelihood still "
                                  f"changing by {change:.3g} > {monitor.tol})")
        self.model = model
        self.names = _name_states(model.emissionprob_)
        self.info = {"iterations": int(monitor.iter), "sequences": int(len(chosen)), "states": self.names,
                     "emissions": np.round(model.emissionprob_, 4).tolist()}
        return self

    def posterior(self, tokens: np.ndarray) -> np.ndarray:
        """(S, K) probability of each state at the last token of each sequence.

        The forward pass (filtering) over all sequences at once in numpy: at the last token the
        filtered state is the smoothed one, and a Python loop per sequence (hmmlearn's
        ``predict_proba`` with lengths) took minutes on 400,000 sequences.
        """
        start, transition = self.model.startprob_, self.model.transmat_
        emission = self.model.emissionprob_.T  # (symbols, K)
        alpha = np.tile(start, (len(tokens), 1))
        started = np.zeros(len(tokens), bool)
        for t in range(tokens.shape[1]):
            token = tokens[:, t]
            real = token >= 0
            if not real.any():
                continue
            predicted = np.where(started[:, None], alpha @ transition, start[None, :])
            new = predicted * emission[np.maximum(token, 0)]
            new /= np.maximum(new.sum(axis=1, keepdims=True), 1e-300)
            alpha = np.where(real[:, None], new, alpha)
            started |= real
        return alpha


def _name_states(emissions: np.ndarray) -> list[str]:
    """Greedy: the state emitting most purchase/loyalty is 'buying', most silence 'dormant', ..."""
    remaining = list(range(len(emissions)))
    names = [""] * len(emissions)
    for label, columns in (("buying", [4, 5]), ("dormant", [6, 7]), ("considering", [3]), ("browsing", [1, 2, 0])):
        if not remaining:
            break
        best = max(remaining, key=lambda k: emissions[k, columns].sum())
        names[best] = label
        remaining.remove(best)
    for k in remaining:
        top = int(np.argmax(emissions[k]))
        names[k] = f"state {k + 1} ({['other', 'awareness', 'interest', 'consideration', 'purchase', 'loyalty', 'pause', 'long pause'][top]})"
    return names
