"""Suggest funnel stages for unmapped event names with a linear-chain CRF (sklearn-crfsuite).

Each contact's events form a sequence. Training sequences are the runs of mapped events between
unmapped ones, labelled with their stage; each token's features are the words and
character trigrams of its name, the same of its neighbours, the pause before and after it, its
position and whether it carries a value. Names are deliberately *not* an identity feature alone:
what generalises to a name never seen is how it is spelt and where it sits in a journey (between
a cart and a purchase, after a long pause...). Predicting runs on the full sequences; a name's
suggestion is the stage with the highest mean marginal probability over its occurrences, and
that mean is its confidence. Nothing is changed: the caller stores suggestions for a person.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

_WORD = re.compile(r"[A-Za-z]+|\d+")
DAY = 86400


@dataclass(frozen=True)
class Suggestion:
    """The suggested stage of one event name."""

    event_name: str
    stage: str
    confidence: float
    occurrences: int
    alternatives: dict[str, float]


def _name_features(name: str, prefix: str) -> dict[str, float]:
    words = [w.lower() for w in _WORD.findall(re.sub(r"([a-z])([A-Z])", r"\1 \2", name))]
    out = {f"{prefix}word={w}": 1.0 for w in words}
    squashed = "".join(words)
    padded = f"^{squashed}$"
    for i in range(len(padded) - 2):
        out[f"{prefix}tri={padded[i:i + 3]}"] = 0.5
    return out


def _gap_bucket(seconds: float) -> str:
    if seconds < 60:
        return "seconds"
    if seconds < 3600:
        return "minutes"
    if seconds < DAY:
        return "hours"
    if seconds < 7 * DAY:
        return "days"
    return "weeks"


def _token_features(names, times, values, i, hide: bool = False) -> dict[str, float]:
    features = {"bias": 1.0, **({"hidden": 1.0} if hide else _name_features(names[i], ""))}
    if i == 0:
        features["first"] = 1.0
    else:
        features.update(_name_features(names[i - 1], "-1:"))
        features[f"gap_before={_gap_bucket(times[i] - times[i - 1])}"] = 1.0
    if i == len(names) - 1:
        features["last"] = 1.0
    else:
        features.update(_name_features(names[i + 1], "+1:"))
        features[f"gap_after={_gap_bucket(times[i + 1] - times[i])}"] = 1.0
    if values[i] == values[i]:  # not nan
        features["has_value"] = 1.0
    return features


def _sequences(contact: np.ndarray, ts: np.ndarray, name: np.ndarray, value: np.ndarray, max_length: int):
    """(names, times, values) per contact, its last ``max_length`` events, in time order."""
    order = np.lexsort((ts, contact))
    contact, ts, name, value = contact[order], ts[order], name[order], value[order]
    bounds = np.flatnonzero(np.diff(contact)) + 1
    for lo, hi in zip(np.concatenate(([0], bounds)), np.concatenate((bounds, [len(contact)])), strict=True):
        lo = max(lo, hi - max_length)
        yield [str(n) for n in name[lo:hi]], ts[lo:hi].astype(float), value[lo:hi].astype(float)


def suggest_stages(contact, ts, name, value, known: dict[str, str], unknown: set[str], *, max_length: int = 50,
                   max_sequences: int = 3000, seed: int = 0, iterations: int = 100, dropout: float = 0.3,
                   spelling: bool = False) -> list[Suggestion]:
    """Suggestions for every name in ``unknown`` that occurs, from a CRF trained on the ``known`` names.

    ``known`` maps event names to stages; ``contact``, ``ts`` (unix seconds), ``name``, ``value``
    are the events' columns (value nan when none). ``spelling``: also read the unknown name's own
    words (off by default: on the test data shared words across stages, "Email Opened" / "Email
    Clicked", misled more than they helped).
    """
    import sklearn_crfsuite

    contact, ts = np.asarray(contact), np.asarray(ts)
    name = np.asarray(name, dtype=object)
    value = np.asarray(value, dtype=float) if value is not None else np.full(len(name), np.nan)
    rng = np.random.default_rng(seed)
    sequences = list(_sequences(contact, ts, name, value, max_length))
    with_unknown = [s for s in sequences if any(n in unknown for n in s[0])]
    chosen = rng.permutation(len(sequences))[:max_sequences]
    X, y = [], []
    for k in chosen:
        names, times, values = sequences[k]
        # runs of mapped events only: cutting at an unmapped one keeps a neighbour a true neighbour
        # (removing it would make "view, ?, checkout" look like "view, checkout" to the model)
        run: list[int] = []
        for i in [*range(len(names)), None]:
            if i is not None and names[i] in known:
                run.append(i)
                continue
            if run:
                names_k, times_k, values_k = [names[j] for j in run], times[run], values[run]
                X.append([_token_features(names_k, times_k, values_k, j) for j in range(len(run))])
                y.append([known[n] for n in names_k])
                # name dropout: the same run with some names hidden, so the model learns to read a
                # token from its neighbours and pauses when its own name tells nothing (a new name)
                hide = rng.random(len(run)) < dropout
                if hide.any():
                    X.append([_token_features(names_k, times_k, values_k, j, bool(hide[j])) for j in range(len(run))])
                    y.append(y[-1])
            run = []
    labels = sorted({s for seq in y for s in seq})
    if len(labels) < 2 or not with_unknown:
        return []
    crf = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=0.05, c2=0.05, max_iterations=iterations,
                               all_possible_transitions=True)
    crf.fit(X, y)
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, int] = defaultdict(int)
    picked = [with_unknown[k] for k in rng.permutation(len(with_unknown))[:max_sequences]]
    features = [[_token_features(n, t, v, i, hide=n[i] in unknown and not spelling) for i in range(len(n))]
                for n, t, v in picked]
    for (names, _, _), marginals in zip(picked, crf.predict_marginals(features), strict=True):
        for n, marginal in zip(names, marginals, strict=True):
            if n in unknown:
                counts[n] += 1
                for stage, p in marginal.items():
                    totals[n][stage] += p
    out = []
    for n, count in counts.items():
        means = {stage: totals[n][stage] / count for stage in crf.classes_}
        stage = max(means, key=means.get)
        out.append(Suggestion(n, stage, round(float(means[stage]), 4), int(count),
                              {s: round(float(p), 4) for s, p in sorted(means.items(), key=lambda kv: -kv[1])}))
    return sorted(out, key=lambda s: (-s.confidence, s.event_name))
