"""Serializer fields that accept exactly the JSON type the schema documents.

DRF's fields coerce ("0" and 0 are booleans, 5 is a string, "5" an integer) for HTML forms; our
bodies are JSON only, and a schema that says `boolean` should mean it.
"""

from __future__ import annotations

from rest_framework import serializers


def _type_error(value, expected: str) -> serializers.ValidationError:
    return serializers.ValidationError(f"must be {expected}, got {type(value).__name__}")


class StrictCharField(serializers.CharField):
    """A JSON string (not a number)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise _type_error(data, "a string")
        return super().to_internal_value(data)


class StrictRegexField(serializers.RegexField):
    """A JSON string matching the pattern."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise _type_error(data, "a string")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false (not 0, 1 or "yes")."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            raise _type_error(data, "true or false")
        return data


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer (not a string, a boolean or a fraction)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            raise _type_error(data, "an integer")
        return super().to_internal_value(data)
