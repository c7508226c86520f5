"""What SendGrid's v3 mail send and Twilio's Messages API answer: request parsing,
the validation worth imitating, success bodies and error bodies.

Shapes follow the providers' documentation closely enough for the SDKs to
parse them (TwilioRestException reads ``code`` and ``message``; SendGrid
errors are ``{"errors": [{"field", "message", "help"}]}``).
"""

from __future__ import annotations

import base64
import json
import random
import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .wire import Reply, json_reply

TWILIO_PATH = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages\.json$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")

# (field, message) SendGrid sends for a scripted status.
SENDGRID_ERRORS: dict[int, tuple[str | None, str]] = {
    400: ("personalizations.0.to.0.email", "Does not contain a valid address."),
    401: (None, "The provided authorization grant is invalid, expired, or revoked"),
    403: (
        "from",
        "The from address does not match a verified Sender Identity. Mail cannot be sent "
        "until this error is resolved.",
    ),
    413: (None, "The JSON payload you have included in your request is too large."),
    429: (None, "too many requests"),
    500: (None, "internal error"),
    503: (None, "service unavailable"),
}
# The Twilio error code a scripted status gets when the rule names none.
TWILIO_DEFAULT_CODE = {400: 21211, 401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}
TWILIO_MESSAGES = {
    20003: "Authentication Error - No credentials provided",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service unavailable",
    21211: "Invalid 'To' Phone Number: {to}",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the "
    "'To' number: {to}",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number: {to}, is not currently reachable using the 'From' phone "
    "number via SMS.",
    21614: "'To' number {to} is not a valid mobile number",
}


# --- SendGrid --------------------------------------------------------------------


def sendgrid_parse(raw: bytes) -> tuple[dict[str, Any] | None, str, str | None]:
    """The JSON body (None if it is not a JSON object), the first recipient and
    our message id from ``custom_args`` (top level or first personalization)."""
    try:
        payload = json.loads(raw)
    except ValueError:
        return None, "", None
    if not isinstance(payload, dict):
        return None, "", None
    to = dig(payload, "personalizations", 0, "to", 0, "email")
    message_id = sendgrid_custom_args(payload).get("message_id")
    return payload, to if isinstance(to, str) else "", message_id


def sendgrid_unauthorized(headers: dict[str, str]) -> Reply | None:
    token = headers.get("authorization", "")
    if token.startswith("Bearer ") and token[7:].strip():
        return None
    return sendgrid_error(401)


def sendgrid_error(status: int, field: str | None = None, message: str | None = None) -> Reply:
    if message is None:
        field, message = SENDGRID_ERRORS.get(status, (None, f"error {status}"))
    return json_reply(status, {"errors": [{"field": field, "message": message, "help": None}]})


def sendgrid_invalid(payload: dict[str, Any]) -> Reply | None:
    """SendGrid's 400 for the mistakes worth catching, None when the mail is fine."""
    personalizations = payload.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        return sendgrid_error(
            400,
            "personalizations",
            "The personalizations field is required and must have at least one personalization.",
        )
    for i, personalization in enumerate(personalizations):
        tos = personalization.get("to") if isinstance(personalization, dict) else None
        if not isinstance(tos, list) or not tos:
            return sendgrid_error(
                400,
                f"personalizations.{i}.to",
                "The to array is required for all personalization objects, and must have at "
                "least one email object with a valid email address.",
            )
        for j, to in enumerate(tos):
            if not is_email(to.get("email") if isinstance(to, dict) else None):
                return sendgrid_error(
                    400, f"personalizations.{i}.to.{j}.email", "Does not contain a valid address."
                )
    if not is_email(dig(payload, "from", "email")):
        return sendgrid_error(
            400,
            "from.email",
            "The from object must be provided for every email send. It is an object that "
            "requires the email parameter, but may also contain a name parameter.",
        )
    if not payload.get("content") and not payload.get("template_id"):
        return sendgrid_error(
            400,
            "content",
            "Unless a valid template_id is provided, the content parameter is required. "
            "There must be at least one defined content block.",
        )
    return None


def sendgrid_custom_args(payload: dict[str, Any]) -> dict[str, Any]:
    args = payload.get("custom_args") or dig(payload, "personalizations", 0, "custom_args")
    return args if isinstance(args, dict) else {}


_ACTIVITY_QUERY = re.compile(
    r"^unique_args\['message_id'\]=\"([^\"]*)\" AND unique_args\['tenant_id'\]=\"([^\"]*)\"$"
)


def sendgrid_activity_query(query: str) -> tuple[str, str] | None:
    """(message id, tenant id) from the Email Activity query our lookup sends."""
    match = _ACTIVITY_QUERY.match(query.strip())
    return (match.group(1), match.group(2)) if match else None


def sendgrid_activity_item(payload: dict[str, Any], provider_id: str, at: float) -> dict[str, Any]:
    """One entry of ``GET /v3/messages`` (Email Activity), as SendGrid lists it."""
    return {
        "from_email": dig(payload, "from", "email"),
        "msg_id": f"{provider_id}.filter0001-1-1-0",
        "subject": payload.get("subject") or "",
        "to_email": dig(payload, "personalizations", 0, "to", 0, "email"),
        "status": "processing",
        "opens_count": 0,
        "clicks_count": 0,
        "last_event_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
    }


def sendgrid_accepted() -> tuple[Reply, str]:
    # Real ids are 22 URL-safe base64 characters.
    message_id = base64.urlsafe_b64encode(random.randbytes(16)).rstrip(b"=").decode()
    return Reply(202, [("X-Message-Id", message_id)]), message_id


# --- Twilio ----------------------------------------------------------------------


def twilio_parse(raw: bytes) -> tuple[dict[str, str], str, str | None]:
    """The form fields (first value of each), the To number and our message id
    from the ``m`` parameter of the StatusCallback URL."""
    pairs = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    form = {name: values[0] for name, values in pairs.items()}
    callback = form.get("StatusCallback", "")
    message_id = parse_qs(urlsplit(callback).query).get("m", [None])[0] if callback else None
    return form, form.get("To", ""), message_id


def twilio_unauthorized(headers: dict[str, str], to: str) -> Reply | None:
    header = headers.get("authorization", "")
    if header.startswith("Basic "):
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            user = password = ""
        if user and password:
            return None
    return twilio_error(401, 20003, to)


def twilio_error(status: int, code: int | None, to: str, message: str | None = None) -> Reply:
    code = code or TWILIO_DEFAULT_CODE.get(status, status * 100)
    text = message or TWILIO_MESSAGES.get(code, f"error {code}").format(to=to)
    return json_reply(
        status,
        {
            "code": code,
            "message": text,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


def twilio_invalid(form: dict[str, str]) -> Reply | None:
    to = form.get("To", "")
    if not to:
        return twilio_error(400, 21604, to)
    if not form.get("From") and not form.get("MessagingServiceSid"):
        return twilio_error(400, 21603, to)
    if not form.get("Body") and not form.get("MediaUrl") and not form.get("ContentSid"):
        return twilio_error(400, 21602, to)
    if not _E164.match(to):
        return twilio_error(400, 21211, to)
    return None


def twilio_accepted(account_sid: str, form: dict[str, str]) -> tuple[Reply, str]:
    sid = f"SM{random.getrandbits(128):032x}"
    now = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    uri = f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}"
    body = form.get("Body", "")
    message = {
        "account_sid": account_sid,
        "api_version": "2010-04-01",
        "body": body,
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": form.get("From"),
        "messaging_service_sid": form.get("MessagingServiceSid"),
        "num_media": "0",
        "num_segments": str(segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": form.get("To"),
        "uri": f"{uri}.json",
    }
    return json_reply(201, message), sid


def twilio_page(account_sid: str, messages: list[dict[str, Any]], size: int) -> dict[str, Any]:
    """A page of ``GET .../Messages.json``, as Twilio answers it."""
    uri = f"/2010-04-01/Accounts/{account_sid}/Messages.json?PageSize={size}&Page=0"
    return {
        "messages": messages,
        "end": max(len(messages) - 1, 0),
        "first_page_uri": uri,
        "next_page_uri": None,
        "page": 0,
        "page_size": size,
        "previous_page_uri": None,
        "start": 0,
        "uri": uri,
    }


def segments(body: str) -> int:
    # GSM-7 (approximated as ASCII) fits 160 characters, 153 per part when
    # split; anything else is UCS-2: 70, and 67 per part.
    single, part = (160, 153) if body.isascii() else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // part)


# --- helpers ---------------------------------------------------------------------


def is_email(value: object) -> bool:
    if not isinstance(value, str):
        return False
    local, at, domain = value.rpartition("@")
    return bool(at and local and "." in domain and " " not in value)


def dig(value: Any, *keys: str | int) -> Any:
    for key in keys:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return None
    return value
