"""Provider callback endpoints under ``/hooks/``: verify the provider's signature
over the raw request, then hand the events to :mod:`messaging.services.callbacks`
(which stores each one once by its event id before applying it).

Bad input gets a 4xx JSON error (``retention.errors.json_error``), never a 5xx:
the SDK verifiers raise odd exceptions on malformed headers, keys or bodies,
and every one of them is caught and answered 403.

The SDKs are imported here, not only under ``messaging/providers/``, because
verifying their webhooks is what these views do; the sending adapters stay the
only callers of the provider APIs.
"""

from __future__ import annotations

import binascii
import functools
import json
import logging
from collections.abc import Callable
from functools import lru_cache
from xml.sax.saxutils import escape

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.views.decorators.csrf import csrf_exempt
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator

from messaging.services.callbacks import (
    sendgrid_events_receive,
    twilio_inbound_receive,
    twilio_status_receive,
)
from retention.errors import json_error

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # SendGrid posts batches of at most 768 KB
SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE = "X-Twilio-Signature"
TWIML = "text/xml; charset=utf-8"
# Everything a verifier may raise on a malformed header, key or body.
VERIFY_ERRORS = (
    TypeError,
    ValueError,  # includes UnicodeError and binascii.Error
    binascii.Error,
    InvalidSignature,
    UnsupportedAlgorithm,
    AttributeError,
)

View = Callable[[HttpRequest], HttpResponse]


class Rejected(Exception):
    """A request answered with a 4xx JSON error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.response = json_error(status, code, message)


def _callback(view: Callable[[HttpRequest], HttpResponse]) -> View:
    """POST only (405 in the JSON error shape), no CSRF (the provider's signature
    is the credential), and a :class:`Rejected` becomes its response."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            response = json_error(405, "method_not_allowed", "Use POST.")
            response["Allow"] = "POST"
            return response
        try:
            return view(request)
        except Rejected as rejected:
            return rejected.response

    return csrf_exempt(wrapper)


def _read_body(request: HttpRequest) -> bytes:
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isascii() and declared.isdigit() and int(declared[:20]) > MAX_BODY_BYTES:
        raise _too_large()
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise _too_large()
    return body


def _too_large() -> Rejected:
    return Rejected(413, "too_large", f"The body is larger than {MAX_BODY_BYTES} bytes (1 MiB).")


# --- SendGrid -------------------------------------------------------------------------


@_callback
def sendgrid_events(request: HttpRequest) -> HttpResponse:
    """``POST /hooks/sendgrid/events/``: a signed JSON list of events."""
    body = _read_body(request)
    _verify_sendgrid(request, body)
    events = _sendgrid_events(body)
    result = sendgrid_events_receive(events=events)
    return JsonResponse(result, status=200)


@lru_cache(maxsize=4)
def _sendgrid_verifier(public_key: str) -> EventWebhook:
    return EventWebhook(public_key.strip())


def _verify_sendgrid(request: HttpRequest, body: bytes) -> None:
    public_key = settings.SENDGRID_WEBHOOK_PUBLIC_KEY
    if not public_key:
        raise Rejected(
            403,
            "not_configured",
            "The SendGrid webhook public key is not configured (SENDGRID_WEBHOOK_PUBLIC_KEY); "
            "no event can be verified.",
        )
    signature = request.headers.get(SENDGRID_SIGNATURE, "")
    timestamp = request.headers.get(SENDGRID_TIMESTAMP, "")
    if not signature or not timestamp:
        raise Rejected(
            403,
            "missing_signature",
            f"The {SENDGRID_SIGNATURE} and {SENDGRID_TIMESTAMP} headers are required.",
        )
    try:
        verifier = _sendgrid_verifier(public_key)
    except VERIFY_ERRORS as exc:
        logger.error("messaging.sendgrid_key_invalid error=%s", type(exc).__name__)
        raise Rejected(
            403,
            "not_configured",
            "The configured SendGrid webhook public key cannot be loaded; "
            "no event can be verified.",
        ) from exc
    try:
        # The SDK verifies text; SendGrid only ever sends UTF-8 JSON.
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(400, "not_json", "The body is not UTF-8 encoded JSON.") from exc
    try:
        valid = verifier.verify_signature(text, signature, timestamp)
    except VERIFY_ERRORS:
        valid = False
    if not valid:
        raise Rejected(403, "bad_signature", f"The {SENDGRID_SIGNATURE} does not match the body.")


def _sendgrid_events(body: bytes) -> list[dict]:
    try:
        events = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise Rejected(400, "not_json", "The body is not valid UTF-8 JSON.") from exc
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise Rejected(400, "not_json", "The body must be a JSON list of event objects.")
    return events


# --- Twilio ---------------------------------------------------------------------------


@_callback
def twilio_status(request: HttpRequest) -> HttpResponse:
    """``POST /hooks/twilio/status/?m=<message id>&t=<tenant id>``."""
    params = _verified_twilio_params(request)
    try:
        stored = twilio_status_receive(params=params, query=request.GET.dict())
    except ValueError as exc:
        raise Rejected(400, "invalid", str(exc)) from exc
    return JsonResponse({"status": "stored" if stored else "duplicate"}, status=200)


@_callback
def twilio_inbound(request: HttpRequest) -> HttpResponse:
    """``POST /hooks/twilio/inbound/``: an SMS to one of the stores' numbers,
    answered with TwiML (a ``<Message>`` for HELP or a hook's reply).

    A number that belongs to no store is still answered 200 with empty TwiML
    (the event is stored with outcome "unknown number"): Twilio treats any other
    status as our failure, retries and raises alerts on the account, and nothing
    a retry could change; the stored row shows staff the misconfigured number.
    """
    params = _verified_twilio_params(request)
    try:
        reply = twilio_inbound_receive(params=params)
    except ValueError as exc:
        raise Rejected(400, "invalid", str(exc)) from exc
    return twiml(reply)


def twiml(reply: str | None) -> HttpResponse:
    """A TwiML answer: one escaped ``<Message>``, or nothing to send."""
    inner = f"<Message>{escape(reply)}</Message>" if reply else ""
    text = f'<?xml version="1.0" encoding="UTF-8"?><Response>{inner}</Response>'
    return HttpResponse(text, content_type=TWIML)


def _verified_twilio_params(request: HttpRequest) -> dict[str, str]:
    token = settings.TWILIO_AUTH_TOKEN
    if not token:
        raise Rejected(
            403,
            "not_configured",
            "TWILIO_AUTH_TOKEN is not configured; no Twilio request can be verified.",
        )
    body = _read_body(request)
    try:
        form = QueryDict(body, encoding="utf-8")
    except TooManyFieldsSent as exc:
        raise Rejected(400, "invalid", "Too many form fields.") from exc
    # Twilio signs the URL it called. Behind a proxy or load balancer,
    # build_absolute_uri() sees the internal scheme, host and port, so the
    # public URL Twilio used is rebuilt from PUBLIC_BASE_URL.
    url = f"{settings.PUBLIC_BASE_URL}{request.get_full_path()}"
    signature = request.headers.get(TWILIO_SIGNATURE)
    try:
        # A missing header makes the SDK raise TypeError (len(None)).
        valid = RequestValidator(token).validate(url, form, signature)
    except VERIFY_ERRORS:
        valid = False
    if not valid:
        code = "missing_signature" if not signature else "bad_signature"
        raise Rejected(403, code, f"The {TWILIO_SIGNATURE} does not match this request.")
    # Twilio sends each field once; a repeated one keeps its last value.
    return {key: form[key][:2000] for key in form}


__all__ = ["sendgrid_events", "twilio_inbound", "twilio_status", "twiml"]
