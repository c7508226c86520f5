"""Normalising the identifiers that lead to a customer. Pure functions, no database.

Every ingestion path (webhooks, Shopify, the API, CSV import, the demo seeder)
normalises through here, so the same person is found the same way everywhere.
"""

from __future__ import annotations

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

# Numbers without a country code are read in the store's region when known.
DEFAULT_REGION = "US"


class BadIdentifier(ValueError):
    """An email or phone number that cannot be normalised."""


def normalize_email(raw: str | None) -> str:
    """Lower-cased, trimmed email, or "" for empty input. Raises BadIdentifier."""
    if raw is None:
        return ""
    email = str(raw).strip().lower()
    if not email:
        return ""
    if len(email) > 254:
        raise BadIdentifier("email is longer than 254 characters")
    try:
        validate_email(email)
    except ValidationError as exc:
        raise BadIdentifier(f"not a valid email address: {email[:80]!r}") from exc
    return email


def normalize_phone(raw: str | None, region: str | None = None) -> str:
    """E.164 (``+4915112345678``), or "" for empty input. Raises BadIdentifier."""
    if raw is None:
        return ""
    text = str(raw).strip()
    if not text:
        return ""
    if len(text) > 40:
        raise BadIdentifier("phone number is too long")
    try:
        number = phonenumbers.parse(text, region or DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise BadIdentifier(f"not a phone number: {text[:40]!r}") from exc
    if not phonenumbers.is_possible_number(number):
        raise BadIdentifier(f"not a possible phone number: {text[:40]!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
