"""Typed configuration for training: validated on construction, JSON round-trippable."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from .errors import ConfigError

TARGETS = ("purchase", "churn")
# Candidates of the tournament, simplest first (a tie on validation goes to the earlier one).
CANDIDATES = ("recency", "logreg", "bgnbd", "gbt", "hmm", "gbt_hmm", "rnn", "gru", "lstm", "stack")
# The single baselines a user would pick instead: the served model may never lose to the best of
# them by more than one standard error.
BASELINES = ("recency", "logreg", "bgnbd", "gbt")
ARCHS = (*CANDIDATES, "auto")
CALIBRATIONS = ("auto", "platt", "beta", "isotonic", "none")

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_duration(text: str) -> int:
    """Parse a duration such as ``90s``, ``30m``, ``1h``, ``14d`` or ``2w`` into seconds."""
    match = _DURATION_RE.match(str(text))
    if not match:
        raise ConfigError(f"invalid duration {text!r}: use a number and one of s, m, h, d, w (e.g. 7d)")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides how a model is trained; stored with the artifact."""

    target: str = "purchase"
    horizon_seconds: int = 7 * 86400
    lookback_seconds: int = 28 * 86400
    max_events: int = 64
    # Training cut-offs before the validation cut-off, each one horizon earlier.
    n_cutoffs: int = 4
    min_positives: int = 100
    min_negatives: int = 100
    # The validation cut-off needs both classes to measure anything.
    min_validation_per_class: int = 10
    arch: str = "auto"
    ensemble: bool = False
    # Rolling-origin backtest: validation cut-offs, each one horizon before the next (>= 3 for auto).
    backtest_folds: int = 3
    # Network sizes tried (units), chosen by validation; None: half of ``units`` and ``units``. The
    # larger is only tried while the time budget allows.
    unit_choices: tuple[int, ...] | None = None
    hmm_states: int = 4
    hmm_iterations: int = 100
    hmm_max_sequences: int = 2_000
    # A candidate needs this many positives and negatives in its training samples to be fitted.
    min_candidate_class_count: int = 10
    # The reference design used 256 units; 32 keeps a 100k-contact run within 5 minutes on 2 CPU cores.
    units: int = 32
    embedding_dim: int = 8
    dense_units: int = 32
    dropout: float = 0.1
    learning_rate: float = 3e-3
    # None: as many epochs as fit in ``sequence_budget`` sequence passes, between 3 and 20, so small
    # data gets more epochs and 100k contacts get 3 (early stopping on validation AUC still applies).
    epochs: int | None = None
    sequence_budget: int = 300_000
    batch_size: int = 512
    patience: int = 2
    seed: int = 0
    time_limit_seconds: float | None = 3600.0
    max_vocab: int = 500
    campaign_buckets: int = 64
    channel_buckets: int = 16
    # Early stopping watches at most this many validation samples per epoch (time on big data).
    validation_monitor_max: int = 20_000
    # below this many positives (or negatives) per half, validation is not halved (see selection_split)
    min_report_class_count: int = 20
    calibration: str = "auto"
    # Isotonic calibration pools samples into bins of at least this many (no steps from a handful).
    isotonic_min_bin: int = 50
    # None: choose the threshold that maximises F1 on (cross-fitted) validation predictions.
    threshold: float | None = None
    background_size: int = 64

    def __post_init__(self) -> None:
        if self.unit_choices is not None:
            object.__setattr__(self, "unit_choices", tuple(int(u) for u in self.unit_choices))
        if self.target not in TARGETS:
            raise ConfigError(f"unknown target {self.target!r}; expected one of {', '.join(TARGETS)}")
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown arch {self.arch!r}; expected one of {', '.join(ARCHS)}")
        if self.calibration not in CALIBRATIONS:
            raise ConfigError(
                f"unknown calibration {self.calibration!r}; expected one of {', '.join(CALIBRATIONS)}"
            )
        if self.horizon_seconds <= 0:
            raise ConfigError(f"horizon must be positive, got {self.horizon_seconds} seconds")
        if self.lookback_seconds < self.horizon_seconds:
            raise ConfigError(
                f"lookback ({self.lookback_seconds}s) must not be shorter than the horizon ({self.horizon_seconds}s)"
            )
        positive_ints = (
            "max_events",
            "n_cutoffs",
            "units",
            "embedding_dim",
            "dense_units",
            "batch_size",
            "backtest_folds",
            "hmm_states",
            "hmm_iterations",
            "isotonic_min_bin",
        )
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        for name in positive_ints:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.min_positives < 1 or self.min_negatives < 1 or self.min_validation_per_class < 1:
            raise ConfigError("minimum positives/negatives must be at least 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.time_limit_seconds is not None and self.time_limit_seconds <= 0:
            raise ConfigError(f"time limit must be positive, got {self.time_limit_seconds}")
        if self.unit_choices is not None and (not self.unit_choices or any(int(u) < 1 for u in self.unit_choices)):
            raise ConfigError(f"unit_choices must be positive sizes, got {self.unit_choices}")
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"threshold must be in (0, 1), got {self.threshold}")

    def epochs_for(self, n_train: int) -> int:
        """The number of epochs to run on ``n_train`` training sequences."""
        if self.epochs is not None:
            return self.epochs
        return int(min(20, max(3, -(-self.sequence_budget // max(n_train, 1)))))

    def to_dict(self) -> dict:
        """JSON-ready dict of all fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Rebuild from :meth:`to_dict` output, ignoring unknown keys from newer versions."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        if values.get("unit_choices") is not None:
            values["unit_choices"] = tuple(int(u) for u in values["unit_choices"])
        return cls(**values)

    def network_sizes(self) -> tuple[int, ...]:
        """The unit counts the networks try, smallest first."""
        if self.unit_choices is not None:
            return tuple(sorted({int(u) for u in self.unit_choices}))
        return tuple(sorted({max(2, self.units // 2), self.units}))

    def candidates(self) -> tuple[str, ...]:
        """The candidates to train: every one for ``auto``; else the requested one plus the baselines,
        so a user who insists on an architecture still sees (and is protected by) the baselines."""
        if self.arch == "auto":
            return CANDIDATES
        return tuple(c for c in CANDIDATES if c in BASELINES or c == self.arch)

    def replace(self, **changes) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
