"""SendGrid adapter: one email through the v3 mail send API, with the official SDK.

``send`` returns SendGrid's ``X-Message-Id``; our message and tenant ids travel as
``custom_args`` so event-webhook callbacks find the message. Errors map onto
:mod:`messaging.providers.base`:

- 429 and 5xx -> :class:`TransientError` (with ``Retry-After`` when sent);
  any other 4xx -> :class:`PermanentError`, ``invalid_recipient`` when the error
  names a recipient address.
- failing to connect (refused, DNS, connect timeout, TLS): SendGrid never got
  the request -> :class:`TransientError`. Anything raised once the request may
  have gone out (read timeout, reset, short body) -> :class:`OutcomeUnknown`:
  the mail may have been accepted.

The SDK builds the request (Mail helpers, python_http_client's
``client.mail.send.post``: URL, auth and JSON as SendGrid documents them); only
the last step, the socket, is ours. python_http_client opens a new connection
(and in production a new TLS handshake) for every request through urllib; that
cost about 1 ms of CPU per email here and capped sending at a few hundred per
second. :mod:`.keepalive` sends the same request over one persistent connection
per process and thread, with ``PROVIDER_CONNECT_TIMEOUT`` for connecting and
``PROVIDER_TIMEOUT`` for the answer, and 4xx/5xx go through the SDK's own
``handle_error`` so errors surface exactly as the SDK raises them.
"""

from __future__ import annotations

import http.client
import io
import json
import re
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar
from urllib.error import HTTPError
from urllib.parse import urlsplit

from django.conf import settings
from python_http_client import exceptions as http_errors
from python_http_client.client import Response
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, Email, From, Header, Mail, ReplyTo, To

from .base import (
    LookupUnsupported,
    OutcomeUnknown,
    Outgoing,
    PermanentError,
    ProviderError,
    TransientError,
    retry_after_seconds,
)
from .keepalive import Answer, ConnectFailed, KeepAlive

# The field SendGrid names when a recipient address is malformed, e.g.
# "personalizations.0.to.0.email" with "Does not contain a valid address.".
_RECIPIENT_FIELD = re.compile(r"^personalizations\.\d+\.(to|cc|bcc)\.\d+\.email$")

_E = TypeVar("_E", bound=Email)


def configured() -> bool:
    return bool(settings.SENDGRID_API_KEY)


def send(outgoing: Outgoing) -> str:
    mail_send = _mail_send(
        settings.SENDGRID_API_KEY,
        settings.SENDGRID_API_HOST,
        settings.PROVIDER_CONNECT_TIMEOUT,
        settings.PROVIDER_TIMEOUT,
    )
    try:
        response = mail_send(_mail(outgoing).get())
    except http_errors.HTTPError as exc:
        raise _refusal(exc) from exc
    except ConnectFailed as exc:
        raise TransientError(f"sendgrid unreachable: {exc!r}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise OutcomeUnknown(f"sendgrid response lost: {exc!r}") from exc
    # A 2xx without the header is still an accepted mail: callbacks find it by
    # custom_args, so an empty id beats marking a sent mail unknown.
    return response.headers.get("X-Message-Id") or ""


def lookup(outgoing: Outgoing, *, since: datetime) -> str | None:
    """SendGrid's id of the mail we sent as ``outgoing.message_id`` (our ids
    are unique, so ``since`` is not needed), or None
    when SendGrid holds no such mail, from the Email Activity API (``GET
    /v3/messages``, filtered on the ``custom_args`` every mail carries). That
    API needs SendGrid's Email Activity add-on: without it the answer is a 4xx
    and this raises :class:`LookupUnsupported`."""
    query = (
        f"unique_args['message_id']=\"{int(outgoing.message_id)}\" AND "
        f"unique_args['tenant_id']=\"{int(outgoing.tenant_id)}\""
    )
    client = SendGridAPIClient(
        api_key=settings.SENDGRID_API_KEY, host=settings.SENDGRID_API_HOST.rstrip("/")
    ).client
    try:
        response = client.messages.get(
            query_params={"query": query, "limit": 10}, timeout=settings.PROVIDER_TIMEOUT
        )
    except http_errors.HTTPError as exc:
        refusal = _refusal(exc)
        if isinstance(refusal, TransientError):
            raise refusal from exc
        raise LookupUnsupported(refusal.detail, status=refusal.status) from exc
    except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
        raise TransientError(f"sendgrid unreachable: {exc!r}") from exc
    try:
        messages = json.loads(response.body or b"{}").get("messages") or []
    except (ValueError, AttributeError) as exc:
        raise TransientError(f"sendgrid activity answer unreadable: {exc!r}") from exc
    for message in messages:
        if isinstance(message, dict):
            return str(message.get("msg_id") or "")
    return None


def _mail(outgoing: Outgoing) -> Mail:
    mail = Mail(
        from_email=_address(From, outgoing.from_address, outgoing.from_name),
        to_emails=_address(To, outgoing.to),
        subject=outgoing.subject,
        plain_text_content=outgoing.text or None,
        html_content=outgoing.html or None,
    )
    if outgoing.reply_to:
        mail.reply_to = _address(ReplyTo, outgoing.reply_to)
    mail.custom_arg = [
        CustomArg("message_id", str(outgoing.message_id)),
        CustomArg("tenant_id", str(outgoing.tenant_id)),
    ]
    headers = dict(outgoing.headers)
    if outgoing.marketing and outgoing.unsubscribe_url:
        # RFC 8058 one-click unsubscribe; Gmail and Yahoo require it on bulk mail.
        headers["List-Unsubscribe"] = f"<{outgoing.unsubscribe_url}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if headers:
        mail.header = [Header(key, value) for key, value in headers.items()]
    return mail


def _address(cls: type[_E], email: str, name: str = "") -> _E:
    # Set the fields directly: given no name, the SDK's constructor parses the
    # address as "Name <addr>" and drops one it cannot parse, hiding a bad
    # address from SendGrid's validation (and from invalid_recipient).
    address = cls()
    address.email = email
    if name:
        address.name = name
    return address


@lru_cache(maxsize=8)
def _mail_send(api_key: str, host: str, connect_timeout: float, timeout: float):
    """POST a mail body to the SDK's ``client.mail.send`` endpoint (its URL,
    Authorization and User-Agent headers) over a kept-alive connection, and
    answer with the SDK's ``Response``; 4xx and 5xx raise as the SDK raises them.

    This is python_http_client's ``post`` minus the ``urllib.build_opener()``
    it runs per request (a third of the CPU of a send) and its new socket.
    """
    endpoint = SendGridAPIClient(api_key=api_key, host=host.rstrip("/")).client.mail.send
    url = endpoint._build_url(None)
    target = urlsplit(url)._replace(scheme="", netloc="").geturl() or "/"
    headers = {**endpoint.request_headers, "Content-Type": "application/json"}
    transport = KeepAlive(host, connect_timeout=connect_timeout, timeout=timeout)

    def post(body: dict) -> Response:
        data = json.dumps(body).encode("utf-8")
        answer = transport.request("POST", target, headers, data)
        if answer.status >= 400:
            error = HTTPError(
                url, answer.status, answer.reason, answer.headers, io.BytesIO(answer.body)
            )
            raise http_errors.handle_error(error)
        return Response(_Answer(answer))

    return post


class _Answer:
    """What python_http_client's Response reads from a urllib answer."""

    def __init__(self, answer: Answer) -> None:
        self._answer = answer

    def getcode(self) -> int:
        return self._answer.status

    def read(self) -> bytes:
        return self._answer.body

    def info(self) -> http.client.HTTPMessage:
        return self._answer.headers


def _refusal(exc: http_errors.HTTPError) -> ProviderError:
    status = int(exc.status_code)
    errors = _errors(exc.body)
    detail = f"sendgrid {status}: " + (
        "; ".join(
            f"{e.get('field')}: {e.get('message')}" if e.get("field") else str(e.get("message"))
            for e in errors
        )
        or _text(exc.body)
    )
    if status == 429 or status >= 500:
        headers = exc.headers or {}
        return TransientError(
            detail, status=status, retry_after=retry_after_seconds(headers.get("Retry-After"))
        )
    return PermanentError(
        detail, status=status, invalid_recipient=status == 400 and _names_recipient(errors)
    )


def _names_recipient(errors: list[dict[str, Any]]) -> bool:
    for error in errors:
        if _RECIPIENT_FIELD.match(str(error.get("field") or "")):
            return True
        message = str(error.get("message") or "").lower()
        if "to email" in message and "valid" in message:
            return True
    return False


def _errors(body: bytes | str | None) -> list[dict[str, Any]]:
    try:
        errors = json.loads(body or b"").get("errors")
    except (ValueError, AttributeError):
        return []
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _text(body: bytes | str | None) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return (body or "no body").strip()[:200]


# --- Event Webhook signatures -----------------------------------------------------------


class EventWebhookKeyError(ValueError):
    """The configured Event Webhook verification key cannot be loaded (not base64
    DER, not a public key, or not an elliptic-curve key): nothing can be verified."""


def verify_event_signature(
    *, public_key: str, payload: str, signature: str, timestamp: str
) -> bool:
    """Whether ``signature`` (the ``X-Twilio-Email-Event-Webhook-Signature``
    header) is SendGrid's ECDSA signature of ``timestamp + payload`` under
    ``public_key`` (as the SendGrid console shows it), checked with the SDK's
    ``EventWebhook``.

    A malformed signature or timestamp is simply False: the SDK raises odd
    exceptions on them (binascii.Error, TypeError, UnicodeError …). A key that
    cannot be loaded raises :class:`EventWebhookKeyError`, so the caller can
    tell "not configured" from "bad signature".
    """
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

    verifier = _event_webhook(public_key.strip())
    try:
        return verifier.verify_signature(payload, signature, timestamp) is True
    except (TypeError, ValueError, InvalidSignature, UnsupportedAlgorithm, AttributeError):
        # ValueError covers binascii.Error and UnicodeError.
        return False


@lru_cache(maxsize=4)
def _event_webhook(public_key: str):
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import ec
    from sendgrid.helpers.eventwebhook import EventWebhook

    if not public_key:
        raise EventWebhookKeyError("no SendGrid Event Webhook public key is set")
    try:
        verifier = EventWebhook(public_key)
    except (TypeError, ValueError, UnsupportedAlgorithm) as exc:
        raise EventWebhookKeyError(f"unloadable key ({type(exc).__name__})") from exc
    # An RSA or Ed25519 key loads too, but cannot check an ECDSA signature (its
    # verify() then fails every request with a TypeError, reading as tampering).
    if not isinstance(verifier.public_key, ec.EllipticCurvePublicKey):
        raise EventWebhookKeyError("the key is not an elliptic-curve (ECDSA) public key")
    return verifier
