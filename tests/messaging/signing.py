"""Signing the way the providers sign, for tests of our callback endpoints.

SendGrid's signed event webhook: ECDSA P-256 with SHA-256 over
``timestamp + body``, the DER signature base64-encoded in
``X-Twilio-Email-Event-Webhook-Signature``; the verification key is shown to
the account as base64 DER SubjectPublicKeyInfo. Twilio: HMAC over the URL and
the sorted form fields with the auth token (the SDK's own ``compute_signature``).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client
from twilio.request_validator import RequestValidator

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
SENDGRID_URL = "/hooks/sendgrid/events/"


@dataclass(frozen=True)
class SendGridKeys:
    private_key: ec.EllipticCurvePrivateKey
    public_key_b64: str  # as the SendGrid console shows it

    def sign(self, body: bytes, timestamp: str = "1767225600") -> dict[str, str]:
        """The two signature headers for ``body`` (as ``Client.post`` extra kwargs)."""
        signature = self.private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE": base64.b64encode(signature).decode(),
            "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP": timestamp,
        }


def sendgrid_keys() -> SendGridKeys:
    private_key = ec.generate_private_key(ec.SECP256R1())
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SendGridKeys(private_key=private_key, public_key_b64=base64.b64encode(der).decode())


def sendgrid_post(client: Client, keys: SendGridKeys, events: list[dict] | bytes, **headers):
    """POST events (or raw bytes) signed with ``keys``; ``headers`` override."""
    body = events if isinstance(events, bytes) else json.dumps(events).encode()
    signed = {**keys.sign(body), **headers}
    return client.post(SENDGRID_URL, data=body, content_type="application/json", **signed)


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    return RequestValidator(token).compute_signature(url, params)


def twilio_post(client: Client, token: str, base_url: str, path: str, params: dict[str, str]):
    """POST form ``params`` to ``path`` (with its query) signed as Twilio does
    for the public URL ``base_url + path``."""
    signature = twilio_signature(token, f"{base_url}{path}", params)
    return client.post(
        path,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )
