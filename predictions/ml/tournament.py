"""The tournament: a rolling-origin backtest of every candidate and the selection rule.

Folds: the latest complete cut-off v0 and the ``backtest_folds - 1`` cut-offs a step apart (the
horizon, or less for a short history: ``trainer.backtest_step``) before it. Fold k trains on the
``n_cutoffs`` cut-offs one horizon apart before v_k and is measured on v_k. Fold 0's
model is the one served. Fold 0's validation contacts are halved (stratified): the *selection* half
takes part in choosing (calibration, the fold-0 figure of the backtest, the threshold), the
*report* half in nothing, and the figures reported for the served model come from it.

No candidate sees the labels of the fold it is scored on. Every fit only receives samples whose
outcome window ends by the fold's cut-off (training cut-offs are at least a horizon earlier).
Candidates that stop early or choose a size on held-out data (the networks: ``stops_early``) get
an *inner split*: a sample of the contacts of the fold's latest training cut-off is held out of
their fit and watched instead (``inner_split``); the measured rows are never a monitor. The stacked
meta-learner of fold k is fitted only on older folds whose outcomes are known by v_k
(``_known_before``); a fold without one has no stack figure, and the stack is compared with the
others on the folds it has.

Every candidate is calibrated the same way on every fold (``calibration.choose_method`` +
cross-fitting on the fold's measured samples) before its PR-AUC and Brier are taken. The served
model is the best mean ROC-AUC over the folds (a difference below ``TIE`` is a tie, broken toward
the simpler candidate: the order of ``config.CANDIDATES``), and never one that the best single
baseline beats by more than one standard error (std over folds / sqrt(folds)); when it would be,
the baseline is served and the scoreboard says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from sklearn import metrics as skm

from .calibration import choose_method, cross_fitted
from .candidates import CLASSICAL, Candidate, CandidateFailed, Inputs
from .config import BASELINES, CANDIDATES
from .errors import TrainingCancelled
from .stack import Stack

TIE = 1e-3


@dataclass
class Fold:
    """One origin of the backtest: training rows and measured rows (indices into the Inputs of all samples)."""

    cutoff: int
    train: np.ndarray
    measured: np.ndarray  # fold 0: the selection half; else every validation sample


@dataclass
class Entry:
    """One candidate's line of the scoreboard."""

    name: str
    status: str = "pending"  # succeeded | failed | skipped
    reason: str = ""
    folds: list[dict] = field(default_factory=list)
    fit_seconds: float = 0.0
    info: dict = field(default_factory=dict)
    scores: list[np.ndarray] = field(default_factory=list, repr=False)  # per fold, on the measured rows
    # fold 0's served model on the selection half and on the report half
    select_scores: np.ndarray | None = field(default=None, repr=False)
    report_scores: np.ndarray | None = field(default=None, repr=False)
    model: Candidate | None = field(default=None, repr=False)  # fold 0's fit

    def summary(self) -> dict:
        """JSON-ready line: mean and standard error of each figure over the folds."""
        out = {"name": self.name, "status": self.status, "reason": self.reason, "fit_seconds": round(self.fit_seconds, 2),
               "baseline": self.name in BASELINES, "folds": self.folds, "info": self.info}
        if self.status == "succeeded":
            for key in ("roc_auc", "pr_auc", "brier"):
                values = np.array([f[key] for f in self.folds], float)
                out[key] = round(float(values.mean()), 4)
                out[f"{key}_se"] = round(float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0, 4)
        return out


def fold_figures(labels: np.ndarray, scores: np.ndarray, config) -> dict:
    """ROC-AUC of the score, PR-AUC and Brier of its cross-fitted calibration (the same for everyone)."""
    method = choose_method(config.calibration, scores, labels, seed=config.seed, min_bin=config.isotonic_min_bin)
    calibrated = cross_fitted(scores, labels, method, seed=config.seed, min_bin=config.isotonic_min_bin)
    return {"roc_auc": round(float(skm.roc_auc_score(labels, scores)), 4),
            "pr_auc": round(float(skm.average_precision_score(labels, calibrated)), 4),
            "brier": round(float(skm.brier_score_loss(labels, calibrated)), 4),
            "calibration": method, "samples": int(len(labels)), "positives": int(labels.sum())}


def inner_split(fold: Fold, inputs: Inputs, labels: np.ndarray, config, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, monitor rows) of a fold for a candidate that stops early: both from its training rows.

    The monitor is a seeded sample of the samples at the fold's latest training cut-off (the
    nearest in time to what is scored, and still a horizon before it): at most a fifth of the
    training rows and ``config.validation_monitor_max``. They are left out of the fit.
    """
    latest = fold.train[inputs.cutoffs[fold.train] == inputs.cutoffs[fold.train].max()]
    size = min(len(latest), config.validation_monitor_max, max(1, len(fold.train) // 5))
    watch = np.sort(np.random.default_rng((config.seed, k)).permutation(latest)[:size])
    return np.setdiff1d(fold.train, watch, assume_unique=True), watch


def run(candidates: list[str], make, inputs: Inputs, labels: np.ndarray, folds: list[Fold], config, *,
        report: np.ndarray, deadline: float | None, should_cancel=None, progress=None, log=None) -> dict[str, Entry]:
    """Fit every candidate on every fold (stack last); failures and the time budget are recorded, not raised."""
    entries: dict[str, Entry] = {}
    for name in candidates:
        entry = entries[name] = Entry(name)
        if name == "stack":
            continue
        started = time.monotonic()
        try:
            make(name)  # an unknown name fails here, before any fold
            # oldest origin first, fold 0 (the model served) last: networks reuse one model object
            for k, fold in reversed(list(enumerate(folds))):
                # the baselines are cheap and the floor of the selection rule: they always run
                if deadline is not None and name not in BASELINES and time.monotonic() >= deadline:
                    raise TimeoutError(f"time budget exhausted after {len(folds) - 1 - k} of {len(folds)} folds")
                if should_cancel is not None and should_cancel():
                    raise TrainingCancelled("training was cancelled")
                model = make(name)
                fit_rows, watch = inner_split(fold, inputs, labels, config, k) if model.stops_early \
                    else (fold.train, None)
                model.fit(inputs.take(fit_rows), labels[fit_rows],
                          monitor=None if watch is None else inputs.take(watch),
                          monitor_labels=None if watch is None else labels[watch], deadline=deadline,
                          should_cancel=should_cancel, progress=progress)
                scores = model.score(inputs.take(fold.measured))
                if not np.all(np.isfinite(scores)):
                    raise CandidateFailed(f"{name}: non-finite scores on fold {k}")
                entry.scores.insert(0, scores)
                entry.folds.insert(0, {"cutoff": int(fold.cutoff), **fold_figures(labels[fold.measured], scores, config)})
                if k == 0:
                    entry.model, entry.info = model, dict(model.info)
                    entry.select_scores, entry.report_scores = scores, model.score(inputs.take(report))
            entry.status = "succeeded"
        except TrainingCancelled:
            raise
        except TimeoutError as error:
            entry.status, entry.reason = "skipped", f"{name}: {error}"
        except CandidateFailed as error:
            entry.status, entry.reason = "failed", str(error)
        except Exception as error:  # noqa: BLE001 - one candidate's bug must not end the tournament
            entry.status, entry.reason = "failed", f"{name}: {type(error).__name__}: {error}"
        entry.fit_seconds = time.monotonic() - started
        if log is not None:
            log(entry)
    if "stack" in entries:
        _fit_stack(entries, labels, folds, config, make, report)
        if log is not None:
            log(entries["stack"])
    return entries


def _known_before(folds: list[Fold], k: int, horizon: int) -> list[int]:
    """Indices of the folds older than fold k whose outcome windows end by fold k's cut-off."""
    return [j for j in range(k + 1, len(folds)) if folds[j].cutoff + horizon <= folds[k].cutoff]


def _fit_stack(entries: dict[str, Entry], labels, folds: list[Fold], config, make, report) -> None:
    entry = entries["stack"]
    started = time.monotonic()
    parts = [n for n, e in entries.items() if n != "stack" and e.status == "succeeded"]
    if len(parts) < 2:
        entry.status, entry.reason = "failed", f"stack: needs two fitted candidates, got {len(parts)}"
        return
    scored = [k for k in range(len(folds)) if _known_before(folds, k, config.horizon_seconds)]
    if 0 not in scored:
        entry.status, entry.reason = "failed", ("stack: no older backtest cut-off whose outcomes are known by the "
                                                "latest one, to fit its meta-learner on")
        return
    rows = [np.column_stack([entries[n].scores[k] for n in parts]) for k in range(len(folds))]
    ys = [labels[f.measured] for f in folds]
    try:
        for k in scored:
            older = _known_before(folds, k, config.horizon_seconds)
            meta = make("stack", {n: entries[n].model for n in parts})
            meta.fit_meta(np.vstack([rows[j] for j in older]), np.concatenate([ys[j] for j in older]))
            scores = meta.combine(rows[k])
            entry.scores.append(scores)
            entry.folds.append({"cutoff": int(folds[k].cutoff), **fold_figures(ys[k], scores, config)})
            if k == 0:
                # the served meta-learner is fold 0's: the selection half stays out of its sample
                final = meta
        entry.select_scores = final.combine(rows[0])
        entry.report_scores = final.combine(np.column_stack([entries[n].report_scores for n in parts]))
        entry.model, entry.info, entry.status = final, dict(final.info), "succeeded"
        entry.info["folds_without_older_outcomes"] = len(folds) - len(scored)
    except Exception as error:  # noqa: BLE001 - recorded on the scoreboard
        entry.status, entry.reason = "failed", f"stack: {type(error).__name__}: {error}"
    entry.fit_seconds = time.monotonic() - started


def _mean_on(summary: dict, cutoffs: set[int]) -> float:
    """Mean fold ROC-AUC of a scoreboard line over the given cut-offs."""
    return float(np.mean([f["roc_auc"] for f in summary["folds"] if f["cutoff"] in cutoffs]))


def select(entries: dict[str, Entry], requested: str) -> tuple[str, str]:
    """(served candidate, why): best mean ROC-AUC (ties to the simpler), guarded by the best baseline.

    Two candidates are compared on the cut-offs both were scored on (the stack may lack the oldest).
    """
    done = {n: e.summary() for n, e in entries.items() if e.status == "succeeded"}
    if not done:
        return "", "no candidate succeeded"
    order = [n for n in CANDIDATES if n in done] + sorted(n for n in done if n not in CANDIDATES)
    cutoffs = {n: {f["cutoff"] for f in done[n]["folds"]} for n in order}

    def beats(a: str, b: str) -> bool:  # a better than b by more than a tie, on their common cut-offs
        common = cutoffs[a] & cutoffs[b]
        return _mean_on(done[a], common) > _mean_on(done[b], common) + TIE

    if requested != "auto" and requested in done:
        chosen, why = requested, f"{requested} as requested"
    else:
        # the simplest candidate that no other beats by more than a tie
        chosen = next((n for n in order if not any(beats(m, n) for m in order)), None)
        if chosen is None:  # not transitive over different cut-offs: fall back to the plain best mean
            best = max(done[n]["roc_auc"] for n in order)
            chosen = next(n for n in order if done[n]["roc_auc"] >= best - TIE)
        why = f"best mean validation ROC-AUC over {len(done[chosen]['folds'])} cut-offs"
        if requested != "auto":
            why = f"{requested} did not succeed ({entries[requested].reason}); fell back to the {why}"
    baselines = [n for n in order if n in BASELINES]
    if baselines and chosen not in BASELINES:
        common = cutoffs[chosen]
        top = max(baselines, key=lambda n: (_mean_on(done[n], common & cutoffs[n]), -order.index(n)))
        gap = _mean_on(done[top], common & cutoffs[top]) - _mean_on(done[chosen], common & cutoffs[top])
        if gap > done[chosen]["roc_auc_se"]:
            why = (f"fell back to the baseline {top}: it beats {chosen} by {gap:.3f} ROC-AUC, more than one "
                   f"standard error ({done[chosen]['roc_auc_se']:.3f})")
            chosen = top
    return chosen, why


def make_factory(config, preprocessor):
    """A function name -> a fresh unfitted candidate (the stack takes its fitted parts)."""
    from .networks import Network

    cache: dict = {}

    def make(name: str, parts=None) -> Candidate:
        if name in ("lstm", "gru", "rnn"):
            return Network(config, name, preprocessor, cache)
        if name == "stack":
            return Stack(config, parts)
        if name in CLASSICAL:
            return CLASSICAL[name](config)
        raise CandidateFailed(f"unknown candidate {name!r}")

    return make
