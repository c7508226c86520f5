"""Standard Webhooks signatures (https://www.standardwebhooks.com/), pure and small.

A sender signs ``"{webhook-id}.{webhook-timestamp}.{body}"`` with HMAC-SHA256,
keyed with the base64-decoded part of its ``whsec_…`` secret, and sends
``webhook-signature: v1,<base64 digest>`` (several, space-separated, while a
secret rotates). Every parser here is guarded: malformed input raises
:class:`SignatureError`, never anything else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

TOLERANCE_SECONDS = 5 * 60
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
MAX_ID_LENGTH = 200
MAX_SIGNATURE_HEADER = 4096


class SignatureError(Exception):
    """The request is not signed by any of the given secrets (or is stale).

    ``code`` is a short machine-readable reason for the JSON error answer."""

    def __init__(self, message: str, code: str = "bad_signature"):
        super().__init__(message)
        self.message = message
        self.code = code


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret (a bare base64 secret works too)."""
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("The signing secret is not valid base64.", "bad_secret") from exc


def sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for a message (``v1,<base64>``)."""
    digest = hmac.new(secret_key(secret), _signed_content(msg_id, timestamp, body), hashlib.sha256)
    return "v1," + base64.b64encode(digest.digest()).decode()


def parse_timestamp(value: str) -> int:
    """Seconds since the epoch from the header; only plain ASCII digits, bounded."""
    value = value.strip()
    if not value or len(value) > 12 or not (value.isascii() and value.isdigit()):
        raise SignatureError(
            "The webhook-timestamp header must be whole seconds since the epoch.",
            "bad_timestamp",
        )
    return int(value)


def check_id(msg_id: str) -> str:
    if not msg_id or len(msg_id) > MAX_ID_LENGTH or not _printable_ascii(msg_id):
        raise SignatureError(
            f"The webhook-id header must be 1-{MAX_ID_LENGTH} printable ASCII characters.",
            "bad_webhook_id",
        )
    return msg_id


def verify(
    *,
    secrets: Iterable[str],
    msg_id: str,
    timestamp: str,
    signature: str,
    body: bytes,
    now: float,
    tolerance: int = TOLERANCE_SECONDS,
) -> None:
    """Return if one ``v1`` signature matches one secret; raise SignatureError otherwise.

    The timestamp must be within ``tolerance`` seconds of ``now`` either way."""
    if not (msg_id and timestamp and signature):
        raise SignatureError(
            "Missing webhook-id, webhook-timestamp or webhook-signature header.",
            "missing_signature",
        )
    check_id(msg_id)
    ts = parse_timestamp(timestamp)
    if ts < now - tolerance:
        raise SignatureError(
            f"The webhook-timestamp is more than {tolerance // 60} minutes old; "
            "check the sender's clock or re-sign the message.",
            "stale_timestamp",
        )
    if ts > now + tolerance:
        raise SignatureError(
            f"The webhook-timestamp is more than {tolerance // 60} minutes in the future; "
            "check the sender's clock.",
            "future_timestamp",
        )
    candidates = _signatures(signature)
    if not candidates:
        raise SignatureError("No v1 signature in the webhook-signature header.")
    content = _signed_content(msg_id, ts, body)
    matched = False
    for secret in secrets:
        try:
            key = secret_key(secret)
        except SignatureError:
            continue  # a broken stored secret must not hide a valid one
        expected = hmac.new(key, content, hashlib.sha256).digest()
        for candidate in candidates:
            # Compare every pair so timing says nothing about which one matched.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError("The webhook-signature does not match any active secret.")


def _signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


def _signatures(header: str) -> list[bytes]:
    if len(header) > MAX_SIGNATURE_HEADER:
        return []
    found = []
    for part in header.split(" "):
        version, sep, value = part.partition(",")
        if version != "v1" or not sep or not value.isascii():
            continue
        try:
            digest = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(digest) == hashlib.sha256().digest_size:
            found.append(digest)
    return found


def _printable_ascii(value: str) -> bool:
    return value.isascii() and value.isprintable()
