"""Errors raised by the funnel engine."""

from __future__ import annotations


class FunnelDefinitionError(ValueError):
    """A funnel definition is invalid; `field` names the offending field (for a 400 / CLI message)."""

    def __init__(self, *, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class FunnelInputError(ValueError):
    """The columnar input handed to the engine breaks the `EventColumns` contract (a caller bug)."""


class FunnelTimeoutError(RuntimeError):
    """A funnel query ran past its deadline (`funnel_compute(..., deadline=...)`) and was stopped."""
