"""The funnel engine: pure, Django-free funnel evaluation over columnar event arrays.

Public API: `FunnelDefinition` (and its parts) describes a query, `EventColumns` carries the
events, `funnel_compute` returns a `FunnelResult`; `funnel_evaluate` gives the raw per-contact
outcomes. See README.md in this folder for the semantics.
"""

from .columns import MISSING, EventColumns
from .compute import ContactOutcomes, funnel_compute, funnel_evaluate
from .definition import (
    Breakdown,
    EventMatcher,
    Exclusion,
    FunnelDefinition,
    FunnelStep,
    PropertyFilter,
)
from .errors import FunnelDefinitionError, FunnelInputError, FunnelTimeoutError
from .parsing import funnel_definition_from_strings, parse_duration, parse_exclusion, parse_matcher
from .results import BreakdownResult, FunnelResult, Histogram, StepResult, TrendPoint

__all__ = [
    "MISSING",
    "Breakdown",
    "BreakdownResult",
    "ContactOutcomes",
    "EventColumns",
    "EventMatcher",
    "Exclusion",
    "FunnelDefinition",
    "FunnelDefinitionError",
    "FunnelInputError",
    "FunnelResult",
    "FunnelTimeoutError",
    "FunnelStep",
    "Histogram",
    "PropertyFilter",
    "StepResult",
    "TrendPoint",
    "funnel_compute",
    "funnel_definition_from_strings",
    "funnel_evaluate",
    "parse_duration",
    "parse_exclusion",
    "parse_matcher",
]
