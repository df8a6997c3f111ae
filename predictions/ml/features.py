"""Feature building shared by training and serving: fitted on training samples only, saved with the model.

Per sample (contact, cut-off) it yields the last N events strictly before the cut-off, left-padded so
the newest event is the last step, plus recency/frequency/monetary aggregates as a side input.
"""

from __future__ import annotations

import json
import weakref
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .data import STAGES, EventFrame
from .errors import ArtifactError
from .labels import Samples

PAD, OOV = 0, 1  # reserved ids of every categorical input; real ids start at 2
NUMERIC_FEATURES = (
    "present",  # 1 on real steps so a padded step is the only all-zero step (used for masking)
    "log_gap_previous",
    "is_first_event",
    "log_age_at_cutoff",
    "log_value",
    "has_value",
    "hour_sin",
    "hour_cos",
    "weekday_sin",
    "weekday_cos",
)
# Numeric columns scaled to [0, 1] with training min/max; the others already lie in [0, 1].
_SCALED_NUMERIC = (1, 3, 4)
AGGREGATE_FEATURES = (
    "seconds_since_last_event",
    "events_in_lookback",
    "events_total",
    "purchases_in_lookback",
    "purchases_total",
    "value_in_lookback",
    "seconds_since_last_purchase",
    "has_purchased",
    "tenure_seconds",
    *(f"{stage}_events_in_lookback" for stage in STAGES if stage != "purchase"),
)
_UNLOGGED_AGGREGATES = ("has_purchased",)
_FORMAT_VERSION = 1
_CHUNK = 20_000
_VALUE_SCALE = 10_000  # values summed as fixed-point integers with 4 decimals
_AGE_COLUMN = NUMERIC_FEATURES.index("log_age_at_cutoff")  # the one step feature that depends on the cut-off
# hour / weekday encodings by table: the same expressions as on every row, evaluated once per value
_HOURS, _WEEKDAYS = np.arange(24), np.arange(7)
_CYCLES = (
    (np.sin(2 * np.pi * _HOURS / 24) + 1) / 2,
    (np.cos(2 * np.pi * _HOURS / 24) + 1) / 2,
    (np.sin(2 * np.pi * _WEEKDAYS / 7) + 1) / 2,
    (np.cos(2 * np.pi * _WEEKDAYS / 7) + 1) / 2,
)


@dataclass
class FeatureBatch:
    """Model inputs for a batch of samples, plus what explanations need to put them into words."""

    event_name: np.ndarray  # int32 (S, N)
    stage: np.ndarray  # int32 (S, N)
    campaign: np.ndarray  # int32 (S, N)
    channel: np.ndarray  # int32 (S, N)
    numeric: np.ndarray  # float32 (S, N, len(NUMERIC_FEATURES))
    aggregates: np.ndarray  # float32 (S, len(AGGREGATE_FEATURES)), scaled to [0, 1]
    raw_aggregates: np.ndarray  # float64 (S, len(AGGREGATE_FEATURES)), in natural units
    event_rows: np.ndarray  # int64 (S, N): row of the frame per step, -1 on padding

    def __len__(self) -> int:
        return len(self.event_name)

    def inputs(self) -> dict[str, np.ndarray]:
        """The dict the Keras models take."""
        return {
            "event_name": self.event_name,
            "stage": self.stage,
            "campaign": self.campaign,
            "channel": self.channel,
            "numeric": self.numeric,
            "aggregates": self.aggregates,
        }

    def take(self, index: np.ndarray | slice) -> FeatureBatch:
        """A subset of the samples."""
        return FeatureBatch(**{k: v[index] for k, v in self.__dict__.items()})


def stable_bucket(values: np.ndarray, buckets: int) -> np.ndarray:
    """Hash strings into ids 2..buckets+1 with crc32 (stable across processes); '' maps to OOV (1)."""
    if len(values) == 0:
        return np.zeros(0, np.int32)
    codes, uniques = pd.factorize(values)
    return _bucket_ids(uniques, buckets)[codes]


def _bucket_ids(uniques, buckets: int) -> np.ndarray:
    return np.array([OOV if str(u) == "" else 2 + zlib.crc32(str(u).encode()) % buckets for u in uniques], np.int32)


class Preprocessor:
    """Turns (frame, samples) into FeatureBatch; vocabulary and scaling come from training data only."""

    def __init__(
        self,
        max_events: int = 64,
        lookback_seconds: int = 28 * 86400,
        max_vocab: int = 500,
        campaign_buckets: int = 64,
        channel_buckets: int = 16,
    ) -> None:
        self.max_events = int(max_events)
        self.lookback_seconds = int(lookback_seconds)
        self.max_vocab = int(max_vocab)
        self.campaign_buckets = int(campaign_buckets)
        self.channel_buckets = int(channel_buckets)
        self.vocabulary: list[str] = []
        self._name_index: dict[str, int] = {}
        self.numeric_min = np.zeros(len(NUMERIC_FEATURES), np.float32)
        self.numeric_max = np.ones(len(NUMERIC_FEATURES), np.float32)
        self.aggregate_min = np.zeros(len(AGGREGATE_FEATURES), np.float32)
        self.aggregate_max = np.ones(len(AGGREGATE_FEATURES), np.float32)
        self.fitted = False
        self._encoded: tuple[weakref.ref, _EncodedFrame] | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_encoded"] = None  # a cache holding a weak reference: not part of the fitted state
        return state

    # sizes the model builder needs
    @property
    def name_vocab_size(self) -> int:
        return len(self.vocabulary) + 2

    @property
    def stage_vocab_size(self) -> int:
        return len(STAGES) + 2

    @property
    def campaign_vocab_size(self) -> int:
        return self.campaign_buckets + 2

    @property
    def channel_vocab_size(self) -> int:
        return self.channel_buckets + 2

    def fit(self, frame: EventFrame, samples: Samples) -> Preprocessor:
        """Learn the vocabulary and scaling from training samples (events before their cut-offs only)."""
        if len(samples) == 0:
            raise ValueError("cannot fit the preprocessor on zero samples")
        visible = frame.ts < int(samples.cutoffs.max())
        codes, uniques = pd.factorize(frame.name[visible])
        counts = np.bincount(codes, minlength=len(uniques))
        names = np.asarray(uniques, dtype=str)
        order = np.lexsort((names, -counts))  # most frequent first, ties by name: deterministic
        self.vocabulary = [str(n) for n in names[order][: self.max_vocab]]
        self._name_index = {n: i + 2 for i, n in enumerate(self.vocabulary)}
        self._encoded = None  # encoded with the previous vocabulary
        self.fitted = True  # lets the raw pass below run to collect the statistics
        encoded = self._encode_frame(frame)
        numeric_min = np.full(len(NUMERIC_FEATURES), np.inf, np.float32)
        numeric_max = np.full(len(NUMERIC_FEATURES), -np.inf, np.float32)
        aggregate_parts = []
        for start in range(0, len(samples), _CHUNK):
            chunk = _slice_samples(samples, start, start + _CHUNK)
            numeric, _, raw_aggregates, rows = self._raw_arrays(frame, encoded, chunk)
            real = rows >= 0
            if real.any():
                numeric_min = np.minimum(numeric_min, numeric[real].min(axis=0))
                numeric_max = np.maximum(numeric_max, numeric[real].max(axis=0))
            aggregate_parts.append(_log_aggregates(raw_aggregates))
        aggregates = np.concatenate(aggregate_parts)
        self.numeric_min = np.where(np.isfinite(numeric_min), numeric_min, 0).astype(np.float32)
        self.numeric_max = np.where(np.isfinite(numeric_max), numeric_max, 1).astype(np.float32)
        self.aggregate_min = aggregates.min(axis=0).astype(np.float32)
        self.aggregate_max = aggregates.max(axis=0).astype(np.float32)
        return self

    def transform(self, frame: EventFrame, samples: Samples) -> FeatureBatch:
        """Features for each sample, using only events strictly before its cut-off."""
        if not self.fitted:
            raise RuntimeError("Preprocessor.transform called before fit/load")
        encoded = self._encoded_for(frame)
        if len(samples) <= _CHUNK:
            return self._transform_chunk(frame, encoded, samples)
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(samples), _CHUNK):
            part = self._transform_chunk(frame, encoded, _slice_samples(samples, start, start + _CHUNK))
            for key, array in part.__dict__.items():
                if key not in out:  # filled chunk by chunk: no list of parts to concatenate
                    out[key] = np.empty((len(samples), *array.shape[1:]), array.dtype)
                out[key][start : start + len(array)] = array
        return FeatureBatch(**out)

    def _encoded_for(self, frame: EventFrame) -> _EncodedFrame:
        """The frame's encoding, kept while the frame lives: a scorer transforming one frame's samples
        in batches encodes its events once, not once per batch."""
        cached = self._encoded
        if cached is not None and cached[0]() is frame:
            return cached[1]
        encoded = self._encode_frame(frame)
        owner = weakref.ref(self)  # the callback must not keep the preprocessor alive

        def forget(ref) -> None:  # the frame is gone: so is its encoding
            preprocessor = owner()
            if preprocessor is not None and preprocessor._encoded is not None and preprocessor._encoded[0] is ref:
                preprocessor._encoded = None

        self._encoded = (weakref.ref(frame, forget), encoded)
        return encoded

    def _transform_chunk(self, frame: EventFrame, encoded: _EncodedFrame, samples: Samples) -> FeatureBatch:
        numeric, categorical, raw_aggregates, rows = self._raw_arrays(frame, encoded, samples)
        span = np.maximum(self.numeric_max - self.numeric_min, 1e-6)
        for j in _SCALED_NUMERIC:
            numeric[..., j] = np.clip((numeric[..., j] - self.numeric_min[j]) / span[j], 0.0, 1.0)
        numeric[rows < 0] = 0.0
        aggregate_span = np.maximum(self.aggregate_max - self.aggregate_min, 1e-6)
        aggregates = np.clip(
            (_log_aggregates(raw_aggregates) - self.aggregate_min) / aggregate_span, 0.0, 1.0
        )
        return FeatureBatch(
            event_name=categorical[0],
            stage=categorical[1],
            campaign=categorical[2],
            channel=categorical[3],
            numeric=numeric,
            aggregates=aggregates.astype(np.float32),
            raw_aggregates=raw_aggregates,
            event_rows=rows,
        )

    def _encode_frame(self, frame: EventFrame) -> _EncodedFrame:
        """Per-row ids and running sums, computed once per frame and then gathered per sample."""
        n = len(frame)
        previous_gap = np.full(n, -1, np.int64)
        if n > 1:
            same = frame.contact[1:] == frame.contact[:-1]
            previous_gap[1:] = np.where(same, frame.ts[1:] - frame.ts[:-1], -1)
        stage_ids = _lookup(frame, "stage", {s: i + 2 for i, s in enumerate(STAGES)})
        purchase_row = np.where(frame.is_purchase, np.arange(n), -1)
        return _EncodedFrame(
            row_numeric=_row_numeric(frame, previous_gap),
            name=_lookup(frame, "name", self._name_index),
            stage=stage_ids,
            campaign=_per_value(frame, "campaign", lambda values: _bucket_ids(values, self.campaign_buckets)),
            channel=_per_value(frame, "channel", lambda values: _bucket_ids(values, self.channel_buckets)),
            previous_gap=previous_gap,
            running_purchases=_running(frame.is_purchase),
            # Fixed-point integers keep window sums exact, so events of other rows (later ones
            # included) cannot shift a contact's sum through float rounding.
            running_value=_running(np.round(np.nan_to_num(frame.value) * _VALUE_SCALE).astype(np.int64)),
            running_stages=[_running(stage_ids == i + 2) for i, s in enumerate(STAGES) if s != "purchase"],
            last_purchase_row=np.maximum.accumulate(purchase_row) if n else purchase_row,
        )

    def _raw_arrays(self, frame: EventFrame, encoded: _EncodedFrame, samples: Samples):
        """Unscaled per-step numerics, categorical ids, raw aggregates and the frame row per step."""
        n_samples, width = len(samples), self.max_events
        ids, starts, ends, group_index = frame.groups()
        if len(ids):
            slot = np.minimum(np.searchsorted(ids, samples.contacts), len(ids) - 1)
            known = ids[slot] == samples.contacts
            group_start = np.where(known, starts[slot], 0)
            group_end = np.where(known, ends[slot], 0)
        else:
            slot = group_start = group_end = np.zeros(n_samples, np.int64)
        cut = _position(frame, group_index, slot, samples.cutoffs, group_start, group_end)
        lookback_start = _position(
            frame, group_index, slot, samples.cutoffs - self.lookback_seconds, group_start, group_end
        )

        # Steps: rows cut-N .. cut-1, padded on the left where the contact has fewer events.
        rows = cut[:, None] - width + np.arange(width)[None, :]
        rows = np.where(rows >= group_start[:, None], rows, -1)
        if len(frame) == 0:
            rows[:] = -1
        real = rows >= 0
        safe = np.where(real, rows, 0)

        def take(column: np.ndarray) -> np.ndarray:
            return column[safe] if len(frame) else np.zeros(safe.shape, column.dtype)

        numeric = (encoded.row_numeric[safe] if len(frame)  # (S, N, features): the row's own step features
                   else np.zeros((*safe.shape, len(NUMERIC_FEATURES)), np.float32))
        numeric[..., _AGE_COLUMN] = np.log1p(np.maximum(samples.cutoffs[:, None] - take(frame.ts), 0))
        numeric[~real] = 0.0
        categorical = [
            np.where(real, take(column), PAD).astype(np.int32)
            for column in (encoded.name, encoded.stage, encoded.campaign, encoded.channel)
        ]
        raw_aggregates = _aggregates(
            frame, encoded, samples.cutoffs, group_start, lookback_start, cut, self.lookback_seconds
        )
        return numeric, categorical, raw_aggregates, rows.astype(np.int64)

    def name_of(self, name_id: int) -> str | None:
        """The event name behind an id (None for padding/out-of-vocabulary)."""
        return self.vocabulary[name_id - 2] if name_id >= 2 else None

    # persistence
    def save(self, directory: str | Path) -> None:
        """Write the fitted state as JSON + npy files into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            "format_version": _FORMAT_VERSION,
            "max_events": self.max_events,
            "lookback_seconds": self.lookback_seconds,
            "max_vocab": self.max_vocab,
            "campaign_buckets": self.campaign_buckets,
            "channel_buckets": self.channel_buckets,
            "vocabulary": self.vocabulary,
            "numeric_features": list(NUMERIC_FEATURES),
            "aggregate_features": list(AGGREGATE_FEATURES),
        }
        (directory / "preprocessor.json").write_text(json.dumps(state, indent=1))
        for name in ("numeric_min", "numeric_max", "aggregate_min", "aggregate_max"):
            np.save(directory / f"{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, directory: str | Path) -> Preprocessor:
        """Read a state written by :meth:`save`; raise ArtifactError if it is missing or inconsistent."""
        directory = Path(directory)
        try:
            state = json.loads((directory / "preprocessor.json").read_text())
            arrays = {
                n: np.load(directory / f"{n}.npy")
                for n in ("numeric_min", "numeric_max", "aggregate_min", "aggregate_max")
            }
        except (OSError, ValueError) as error:
            raise ArtifactError(f"cannot read preprocessing state in {directory}: {error}") from error
        if state.get("format_version") != _FORMAT_VERSION:
            raise ArtifactError(f"unsupported preprocessing format {state.get('format_version')!r}")
        if state.get("numeric_features") != list(NUMERIC_FEATURES) or state.get("aggregate_features") != list(
            AGGREGATE_FEATURES
        ):
            raise ArtifactError("preprocessing state was written for a different feature set")
        self = cls(
            state["max_events"],
            state["lookback_seconds"],
            state["max_vocab"],
            state["campaign_buckets"],
            state["channel_buckets"],
        )
        self.vocabulary = list(state["vocabulary"])
        self._name_index = {n: i + 2 for i, n in enumerate(self.vocabulary)}
        for name, array in arrays.items():
            expected = len(NUMERIC_FEATURES) if name.startswith("numeric") else len(AGGREGATE_FEATURES)
            if array.shape != (expected,):
                raise ArtifactError(f"{name}.npy has shape {array.shape}, expected ({expected},)")
            setattr(self, name, array.astype(np.float32))
        self.fitted = True
        return self


@dataclass
class _EncodedFrame:
    """Row-aligned encodings of one frame (see Preprocessor._encode_frame)."""

    row_numeric: np.ndarray  # float32 (rows, len(NUMERIC_FEATURES)), unscaled; the age column is 0
    name: np.ndarray
    stage: np.ndarray
    campaign: np.ndarray
    channel: np.ndarray
    previous_gap: np.ndarray
    running_purchases: np.ndarray
    running_value: np.ndarray
    running_stages: list[np.ndarray]
    last_purchase_row: np.ndarray


def _row_numeric(frame: EventFrame, previous_gap: np.ndarray) -> np.ndarray:
    """The unscaled step features of each event row that depend on the row alone (every one but the
    age at the cut-off), computed once per frame and gathered per sample."""
    out = np.zeros((len(frame), len(NUMERIC_FEATURES)), np.float32)
    if len(frame) == 0:
        return out
    hour = (frame.ts // 3600) % 24
    weekday = (frame.ts // 86400 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    out[:, 0] = 1.0
    out[:, 1] = np.log1p(np.maximum(previous_gap, 0))
    out[:, 2] = previous_gap < 0
    out[:, 4] = np.log1p(np.maximum(np.nan_to_num(frame.value), 0))
    out[:, 5] = ~np.isnan(frame.value)
    for column, (table, index) in enumerate(zip(_CYCLES, (hour, hour, weekday, weekday), strict=True), start=6):
        out[:, column] = table[index]
    return out


def _running(column: np.ndarray) -> np.ndarray:
    """Integer cumulative sum with a leading zero, so sum(rows lo..hi-1) = running[hi] - running[lo]."""
    return np.concatenate(([0], np.cumsum(column, dtype=np.int64)))


def _lookup(frame: EventFrame, column: str, table: dict[str, int]) -> np.ndarray:
    """Map a string column to ids through ``table`` (OOV when absent), looking each distinct value up once."""
    return _per_value(frame, column, lambda values: np.array([table.get(str(u), OOV) for u in values], np.int32))


def _per_value(frame: EventFrame, column: str, ids_of) -> np.ndarray:
    """Per row, ``ids_of(distinct values)`` gathered by the column's factorization (`EventFrame.factorized`)."""
    if len(frame) == 0:
        return np.zeros(0, np.int32)
    codes, values = frame.factorized(column)
    return ids_of(values)[codes]


def _slice_samples(samples: Samples, start: int, stop: int) -> Samples:
    return Samples(samples.contacts[start:stop], samples.cutoffs[start:stop], samples.labels[start:stop])


def _position(frame, group_index, slot, times, group_start, group_end) -> np.ndarray:
    """Per sample, the first row of its contact with ts >= time (group_end if none)."""
    if len(frame) == 0:
        return np.zeros(len(times), np.int64)
    t0 = int(frame.ts.min())
    span = int(frame.ts.max()) - t0 + 2
    keys = group_index * span + (frame.ts - t0)
    offsets = np.clip(np.asarray(times, np.int64) - t0, 0, span - 1)
    position = np.searchsorted(keys, slot * span + offsets, side="left")
    return np.clip(position, group_start, group_end).astype(np.int64)


def _aggregates(frame, encoded, cutoffs, group_start, lookback_start, cut, lookback_seconds) -> np.ndarray:
    """Recency/frequency/monetary aggregates in natural units (seconds, counts, money)."""
    out = np.zeros((len(cutoffs), len(AGGREGATE_FEATURES)), np.float64)
    if len(frame) == 0:
        return out
    has_events = cut > group_start
    last_row = np.maximum(cut - 1, 0)
    tenure = np.where(has_events, cutoffs - frame.ts[np.minimum(group_start, len(frame) - 1)], 0)
    recency = np.where(has_events, cutoffs - frame.ts[last_row], lookback_seconds)
    last_purchase = encoded.last_purchase_row[last_row]
    has_purchased = has_events & (last_purchase >= group_start)
    since_purchase = np.where(
        has_purchased, cutoffs - frame.ts[np.maximum(last_purchase, 0)], np.maximum(tenure, lookback_seconds)
    )
    columns = [
        recency,
        cut - lookback_start,
        cut - group_start,
        encoded.running_purchases[cut] - encoded.running_purchases[lookback_start],
        encoded.running_purchases[cut] - encoded.running_purchases[group_start],
        (encoded.running_value[cut] - encoded.running_value[lookback_start]) / _VALUE_SCALE,
        since_purchase,
        has_purchased,
        tenure,
        *(running[cut] - running[lookback_start] for running in encoded.running_stages),
    ]
    out[:] = np.stack(columns, axis=1)
    return out


def _log_aggregates(raw: np.ndarray) -> np.ndarray:
    logged = np.sign(raw) * np.log1p(np.abs(raw))
    for name in _UNLOGGED_AGGREGATES:
        j = AGGREGATE_FEATURES.index(name)
        logged[:, j] = raw[:, j]
    return logged
