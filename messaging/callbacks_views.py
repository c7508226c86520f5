"""Provider callback endpoints under ``/hooks/``: verify the provider's signature
over the raw request, then hand the events to :mod:`messaging.services.callbacks`
(which stores each one once by its event id before applying it).

Bad input gets a 4xx JSON error (``retention.errors.json_error``), never a 5xx.
The signatures are checked by the provider adapters (the only modules that
import the SDKs): ``providers.sendgrid.verify_event_signature`` and
``providers.twilio.verify_request`` turn the SDK verifiers' odd exceptions on
malformed headers into False (answered 403), and an unloadable SendGrid key
into :class:`~messaging.providers.sendgrid.EventWebhookKeyError` (403
"not_configured").
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable
from xml.sax.saxutils import escape

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.views.decorators.csrf import csrf_exempt

from messaging.providers.sendgrid import EventWebhookKeyError, verify_event_signature
from messaging.providers.twilio import verify_request
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
# SendGrid's events are flat objects (a few short lists such as "category"):
# anything nested deeper is not an event, and storing it would only cost.
MAX_EVENT_DEPTH = 16

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
        # The SDK verifies text; SendGrid only ever sends UTF-8 JSON.
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(400, "not_json", "The body is not UTF-8 encoded JSON.") from exc
    try:
        valid = verify_event_signature(
            public_key=public_key, payload=text, signature=signature, timestamp=timestamp
        )
    except EventWebhookKeyError as exc:
        logger.error("messaging.sendgrid_key_invalid error=%s", exc)
        raise Rejected(
            403,
            "not_configured",
            "The configured SendGrid webhook public key cannot be loaded; "
            "no event can be verified.",
        ) from exc
    if not valid:
        raise Rejected(403, "bad_signature", f"The {SENDGRID_SIGNATURE} does not match the body.")


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: valid JSON, but no database stores it as a float
        raise ValueError("number out of range")
    return value


def _sendgrid_events(body: bytes) -> list[dict]:
    try:
        events = json.loads(body.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError) as exc:
        raise Rejected(400, "not_json", "The body is not valid UTF-8 JSON.") from exc
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise Rejected(400, "not_json", "The body must be a JSON list of event objects.")
    if _depth(events) > MAX_EVENT_DEPTH:
        raise Rejected(
            400, "not_json", f"Events nested deeper than {MAX_EVENT_DEPTH} levels are refused."
        )
    return events


def _depth(value: object) -> int:
    """How deeply lists and objects nest in ``value`` (iteratively: no recursion limit)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in item)
    return deepest


# --- Twilio ---------------------------------------------------------------------------


@_callback
def twilio_status(request: HttpRequest) -> HttpResponse:
    """``POST /hooks/twilio/status/?m=<message id>&t=<tenant id>``."""
    params = _verified_twilio_params(request)
    try:
        query = request.GET.dict()
    except TooManyFieldsSent as exc:
        raise Rejected(400, "invalid", "Too many query parameters.") from exc
    try:
        stored = twilio_status_receive(params=params, query=query)
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
    signature = request.headers.get(TWILIO_SIGNATURE, "")
    if not verify_request(url=url, params=form, signature=signature):
        code = "missing_signature" if not signature else "bad_signature"
        raise Rejected(403, code, f"The {TWILIO_SIGNATURE} does not match this request.")
    # Twilio sends each field once; a repeated one keeps its last value.
    return {key: form[key][:2000] for key in form}


__all__ = ["sendgrid_events", "twilio_inbound", "twilio_status", "twiml"]
