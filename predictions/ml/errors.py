"""Exceptions raised by the ML package; importable without TensorFlow."""

from __future__ import annotations


class MLError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(MLError, ValueError):
    """A training or scoring configuration is invalid (bad target, horizon, ...)."""


class NotEnoughData(MLError):
    """Too few positives or negatives to train; the message gives the counts."""

    def __init__(self, message: str, counts: dict[str, int]) -> None:
        super().__init__(message)
        self.counts = counts


class TrainingCancelled(MLError):
    """Training stopped because the caller's ``should_cancel`` returned True."""


class ArtifactError(MLError):
    """A model artifact directory is missing, incomplete or corrupt."""
