"""Page size and offset of every API list: bounded, and a 400 naming the parameter when out of range.

DRF's LimitOffsetPagination silently uses the default for `limit=abc` and has no maximum
(`limit=500000` once returned 129 MB); this one answers 400 instead, and says so in the schema.
"""

from __future__ import annotations

from rest_framework import pagination
from rest_framework.exceptions import ValidationError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 2**63 - 1  # PostgreSQL's bigint: OFFSET beyond it is an error there


def bounded_int(raw: str | None, *, name: str, default: int, low: int, high: int) -> int:
    """A whole-number query parameter in [low, high]; `default` when absent; ValidationError naming it."""
    if raw is None:
        return default
    text = raw.strip()
    if not (text.isdigit() or (text[:1] == "-" and text[1:].isdigit())) or len(text) > 20:
        raise ValidationError({name: f"must be a whole number from {low} to {high}, got {raw!r}"})
    value = int(text)
    if not low <= value <= high:
        raise ValidationError({name: f"must be from {low} to {high}, got {value}"})
    return value


def _one_value(request, name: str) -> None:
    """A parameter given twice (`?offset=1&offset=2`) is ambiguous: a 400 naming it."""
    if len(request.query_params.getlist(name)) > 1:
        raise ValidationError({name: "must be given once"})


class BoundedLimitOffsetPagination(pagination.LimitOffsetPagination):
    """`?limit=` 1-1000 (default 100) and `?offset=` 0-2**63-1; anything else is a 400."""

    default_limit = DEFAULT_LIMIT
    max_limit = MAX_LIMIT

    def get_limit(self, request) -> int:
        _one_value(request, self.limit_query_param)
        return bounded_int(request.query_params.get(self.limit_query_param), name=self.limit_query_param,
                           default=self.default_limit, low=1, high=self.max_limit)

    def get_offset(self, request) -> int:
        _one_value(request, self.offset_query_param)
        return bounded_int(request.query_params.get(self.offset_query_param), name=self.offset_query_param,
                           default=0, low=0, high=MAX_OFFSET)

    def get_schema_operation_parameters(self, view):
        params = super().get_schema_operation_parameters(view)
        bounds = {self.limit_query_param: (1, self.max_limit, self.default_limit),
                  self.offset_query_param: (0, MAX_OFFSET, 0)}
        for param in params:
            low, high, default = bounds[param["name"]]
            param["schema"] = {"type": "integer", "minimum": low, "maximum": high, "default": default}
            param["description"] += f" ({low} to {high}, default {default}; 400 outside)"
        return params
