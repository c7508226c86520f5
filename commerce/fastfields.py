"""Shortcuts for the usual values of DRF's plain fields, used by ``Payload``.

Each converter takes a present, non-null value and returns what the field's
``run_validation`` would return for it, or ``SLOW`` when the value is anything
but the plain, valid case (a non-ASCII or padded string, a number out of
range, a bool, a nested structure ...). ``SLOW`` sends the value through DRF
itself, so every error, and every value that needs DRF's conversions, is
DRF's own. ``tests/commerce/test_schemas_fast.py`` holds this to equality with
DRF for every payload schema and any input.

Only fields of exactly these classes, with exactly DRF's own validators, get
a converter; any other field (a subclass, a custom validator) goes to DRF.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

from django.core.validators import (
    MaxLengthValidator,
    MaxValueValidator,
    MinLengthValidator,
    MinValueValidator,
    ProhibitNullCharactersValidator,
)
from rest_framework import fields

SLOW = object()
# An unsigned plain decimal: what DRF reads as a Decimal with no conversion
# beyond quantizing (no exponent, sign, spaces, underscores or NaN).
_PLAIN_DECIMAL = re.compile(r"[0-9]{1,30}(?:\.[0-9]{1,30})?")


def converter(field: fields.Field) -> Callable[[object], object] | None:
    """The shortcut for this field, or None when it has none."""
    kind = type(field)
    validators = [type(v) for v in field.validators]
    if kind is fields.CharField:
        return _char(field, validators)
    if kind is fields.IntegerField:
        return _integer(field, validators)
    if kind is fields.DecimalField:
        return _decimal(field, validators)
    if kind is fields.ChoiceField and not validators:
        return _choice(field)
    return None


def _char(field: fields.CharField, validators: list[type]) -> Callable | None:
    allowed = {
        MaxLengthValidator,
        MinLengthValidator,
        ProhibitNullCharactersValidator,
        fields.ProhibitSurrogateCharactersValidator,
    }
    if not field.trim_whitespace or not set(validators) <= allowed:
        return None
    longest = field.max_length if field.max_length is not None else float("inf")
    shortest = max(field.min_length or 0, 1)

    def convert(value):
        # ASCII has no surrogates; no padding means DRF's strip changes nothing.
        if (
            type(value) is str
            and value.isascii()
            and shortest <= len(value) <= longest
            and "\x00" not in value
            and len(value.strip()) == len(value)
        ):
            return value
        return SLOW

    return convert


def _bounds(field, validators: list[type]) -> tuple | None:
    if not set(validators) <= {MinValueValidator, MaxValueValidator}:
        return None
    if field.min_value is None or field.max_value is None:
        return None  # unbounded: leave the odd huge number to DRF
    return field.min_value, field.max_value


def _integer(field: fields.IntegerField, validators: list[type]) -> Callable | None:
    bounds = _bounds(field, validators)
    if bounds is None:
        return None
    low, high = bounds

    def convert(value):
        if type(value) is int and low <= value <= high:
            return value
        return SLOW

    return convert


def _decimal(field: fields.DecimalField, validators: list[type]) -> Callable | None:
    bounds = _bounds(field, validators)
    if bounds is None or field.localize:
        return None
    low, high = bounds

    def convert(value):
        if type(value) is str:
            text = value
        elif type(value) is int:
            text = str(value)
        else:
            return SLOW  # floats, bools and the rest: DRF's own conversion
        if not _PLAIN_DECIMAL.fullmatch(text):
            return SLOW
        try:
            number = field.quantize(field.validate_precision(Decimal(text)))
        except fields.ValidationError:
            return SLOW
        if low <= number <= high:
            return number
        return SLOW

    return convert


def _choice(field: fields.ChoiceField) -> Callable:
    choices = field.choice_strings_to_values

    def convert(value):
        if type(value) is str and value and value in choices:
            return choices[value]
        return SLOW

    return convert
