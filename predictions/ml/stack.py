"""Stacked fusion: a logistic meta-learner over the other candidates' out-of-sample scores.

Its training rows are the candidates' validation scores of every backtest fold (each produced by a
model fitted on earlier cut-offs only, so they are out-of-sample); each part's score is
standardised, and the meta-learner's weights say how much each part counts. Its own fold figures
are cross-fitted: the meta-learner of fold k is fitted on the other folds' rows. Explanations: each
part's factors scaled by its weight / its score's standard deviation, merged by text, so
base + sum == the stack's score exactly when every part's explanation is exact.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from .candidates import Attribution, Candidate, Inputs, RawFactor


class Stack(Candidate):
    """Meta-learner over fitted parts (candidates); the parts are saved beside it by the artifact."""

    name = "stack"

    def __init__(self, config, parts: dict[str, Candidate] | None = None) -> None:
        super().__init__(config)
        self.parts = parts or {}
        self.part_names = list(self.parts)

    def fit_meta(self, part_scores: np.ndarray, labels: np.ndarray) -> Stack:
        """Fit on (rows, parts) out-of-sample scores."""
        self.mean = part_scores.mean(axis=0)
        self.std = np.maximum(part_scores.std(axis=0), 1e-9)
        self.model = LogisticRegression(C=1.0, max_iter=2000).fit((part_scores - self.mean) / self.std, labels)
        self.info = {"weights": dict(zip(self.part_names, np.round(self.model.coef_[0], 4).tolist(), strict=True))}
        return self

    def combine(self, part_scores: np.ndarray) -> np.ndarray:
        """The stack's score from the parts' scores."""
        return self.model.decision_function((part_scores - self.mean) / self.std)

    @property
    def uses_hmm(self) -> bool:  # type: ignore[override]
        return any(p.uses_hmm for p in self.parts.values())

    def score(self, inputs: Inputs) -> np.ndarray:
        return self.combine(np.column_stack([self.parts[n].score(inputs) for n in self.part_names]))

    def explain(self, inputs, context) -> Attribution:
        weights = self.model.coef_[0] / self.std
        base = np.full(len(inputs), float(self.model.intercept_[0] - weights @ self.mean))
        merged: list[dict[str, RawFactor]] = [{} for _ in range(len(inputs))]
        for w, name in zip(weights, self.part_names, strict=True):
            part = self.parts[name].explain(inputs, context)
            base += w * part.base
            for i, factors in enumerate(part.factors):
                for f in factors:
                    if f.text in merged[i]:
                        merged[i][f.text].contribution += w * f.contribution
                    else:
                        merged[i][f.text] = RawFactor(f.text, w * f.contribution, f.kind, f.key, f.age)
        return Attribution(base, self.score(inputs), [list(m.values()) for m in merged])

    def state(self) -> dict:
        """Picklable meta-learner state (the parts are saved on their own)."""
        return {"part_names": self.part_names, "mean": self.mean, "std": self.std, "model": self.model,
                "info": self.info}

    def save(self, directory) -> None:
        import pickle

        directory.mkdir(parents=True, exist_ok=True)
        with (directory / "stack.pkl").open("wb") as handle:
            pickle.dump(self.state(), handle, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, directory, config, parts: dict[str, Candidate] | None = None) -> Stack:
        import pickle

        with (directory / "stack.pkl").open("rb") as handle:
            state = pickle.load(handle)
        self = cls(config, {n: parts[n] for n in state["part_names"]})
        self.mean, self.std, self.model, self.info = state["mean"], state["std"], state["model"], state["info"]
        return self
