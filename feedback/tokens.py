"""Short signed tokens for survey links: ``/s/<token>/`` in an email and in an SMS.

A token is ``<tenant id>-<invitation id>-<mac>``: both ids in base62 and a
12-character base62 HMAC-SHA256 (about 71 bits) over them, keyed with
``SECRET_KEY`` under a salt of its own, so it cannot be replayed as another
page's token. For a store with id 7 and its millionth invitation that is
``7-4C92-`` plus the MAC: 19 characters, short enough for a text message.

The token never expires by itself: the invitation row says when it does (so an
expired link gets its own "this survey has closed" page, not "not valid"), and
it is the same every time it is made for one invitation. Keys in
``SECRET_KEY_FALLBACKS`` still verify while the secret rotates. Pure: no
database.

    token = survey_token(tenant_id=7, invitation_id=1_000_000)
    survey_token_read(token)  # (7, 1_000_000), or None if tampered with
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.utils.crypto import salted_hmac

SALT = "retention.hosted.survey"
SEP = "-"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MAC_LENGTH = 12
# The ids are positive bigints: at most 11 base62 digits each.
MAX_ID_DIGITS = 11
MAX_ID = 2**63 - 1
MAX_TOKEN_LENGTH = 2 * MAX_ID_DIGITS + 2 * len(SEP) + MAC_LENGTH
_DIGITS = {c: i for i, c in enumerate(ALPHABET)}


def b62_encode(number: int) -> str:
    if number < 0:
        raise ValueError("only non-negative numbers")
    digits = []
    while True:
        number, rest = divmod(number, 62)
        digits.append(ALPHABET[rest])
        if not number:
            return "".join(reversed(digits))


def b62_decode(text: str) -> int | None:
    """The number, or None for anything but canonical base62 (no leading zero),
    so that one id has exactly one spelling."""
    if not text or len(text) > MAX_ID_DIGITS or (len(text) > 1 and text[0] == "0"):
        return None
    number = 0
    for char in text:
        digit = _DIGITS.get(char)
        if digit is None:
            return None
        number = number * 62 + digit
    return number


def _mac(secret: str, body: str) -> str:
    digest = salted_hmac(SALT, body, secret=secret, algorithm="sha256").digest()
    number = int.from_bytes(digest[:16], "big") % 62**MAC_LENGTH
    return b62_encode(number).rjust(MAC_LENGTH, ALPHABET[0])


def survey_token(*, tenant_id: int, invitation_id: int) -> str:
    for value in (tenant_id, invitation_id):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
            raise ValueError("ids must be positive bigints")
    body = f"{b62_encode(tenant_id)}{SEP}{b62_encode(invitation_id)}"
    return f"{body}{SEP}{_mac(settings.SECRET_KEY, body)}"


def survey_token_read(token: object) -> tuple[int, int] | None:
    """``(tenant id, invitation id)`` of a token made by :func:`survey_token`,
    or None when it is tampered with, truncated or malformed."""
    if not isinstance(token, str) or not token.isascii() or len(token) > MAX_TOKEN_LENGTH:
        return None
    parts = token.split(SEP)
    if len(parts) != 3 or len(parts[2]) != MAC_LENGTH:
        return None
    tenant_id, invitation_id = b62_decode(parts[0]), b62_decode(parts[1])
    if not tenant_id or not invitation_id or tenant_id > MAX_ID or invitation_id > MAX_ID:
        return None
    body = f"{parts[0]}{SEP}{parts[1]}"
    given = parts[2].encode()
    matched = False
    for secret in (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())):
        # Every key is tried, so the time taken says nothing about which matched.
        matched |= hmac.compare_digest(_mac(secret, body).encode(), given)
    return (tenant_id, invitation_id) if matched else None
