"""Twilio adapter: one SMS through the Messages API, with the official SDK.

``send`` returns the message ``sid``. Errors map onto
:mod:`messaging.providers.base`:

- 429 and 5xx -> :class:`TransientError` (with ``Retry-After`` when sent);
  other 4xx -> :class:`PermanentError` carrying Twilio's error ``code``, with
  ``invalid_recipient`` for the codes that condemn the number itself.
- requests' connect errors (refused, DNS, connect timeout) -> :class:`TransientError`;
  a read timeout or a connection dropped once the request was on the wire ->
  :class:`OutcomeUnknown`.

The SDK's requests Session keeps connections alive, so a cached client per
process (keyed by the settings it was built from) sends without a handshake.
"""

from __future__ import annotations

import json
import os
import threading
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import ProtocolError

from .base import (
    OutcomeUnknown,
    Outgoing,
    PermanentError,
    ProviderError,
    TransientError,
    retry_after_seconds,
)

# Refusals that say the number itself is unusable (it goes on the suppression
# list): 21211 invalid To, 21408 region not enabled, 21610 recipient replied
# STOP, 21612 not reachable by SMS, 21614 not a mobile number.
INVALID_RECIPIENT_CODES = frozenset({21211, 21408, 21610, 21612, 21614})

_TWILIO_API = "https://api.twilio.com"


def configured() -> bool:
    return bool(settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN)


def send(outgoing: Outgoing) -> str:
    client = _client(
        os.getpid(),
        threading.get_ident(),
        settings.TWILIO_ACCOUNT_SID,
        settings.TWILIO_AUTH_TOKEN,
        settings.TWILIO_API_BASE_URL,
        settings.PROVIDER_CONNECT_TIMEOUT,
        settings.PROVIDER_TIMEOUT,
    )
    try:
        message = client.messages.create(
            to=outgoing.to,
            from_=outgoing.from_address,
            body=outgoing.text,
            status_callback=outgoing.status_callback_url or None,
        )
    except TwilioRestException as exc:
        raise _refusal(exc) from exc
    except requests.ConnectTimeout as exc:
        raise TransientError(f"twilio unreachable: {exc}") from exc
    except (requests.ReadTimeout, requests.exceptions.ChunkedEncodingError) as exc:
        raise OutcomeUnknown(f"twilio response lost: {exc}") from exc
    except requests.ConnectionError as exc:
        # urllib3 reports a connection that died after the request was written
        # as ProtocolError("Connection aborted."); refusals and DNS failures
        # come as MaxRetryError(NewConnectionError) before anything was sent.
        if exc.args and isinstance(exc.args[0], ProtocolError):
            raise OutcomeUnknown(f"twilio response lost: {exc}") from exc
        raise TransientError(f"twilio unreachable: {exc}") from exc
    except requests.RequestException as exc:
        # Anything else requests raises cannot prove the request went unsent.
        raise OutcomeUnknown(f"twilio request failed: {exc!r}") from exc
    return str(message.sid)


class _HttpClient(TwilioHttpClient):
    """Twilio's requests transport with two changes.

    - Requests go to ``base_url``: the SDK hard-codes https://api.twilio.com in
      each domain, and Twilio's documented way to send elsewhere is a custom
      HTTP client (twilio.com/docs/libraries/python/custom-http-clients-python;
      twilio-python#521), so this rewrites scheme and host of each URL.
    - 429 and 5xx raise :class:`TransientError` here, because
      TwilioRestException keeps status, code and message but drops the
      response headers, and with them Retry-After.
    """

    def __init__(self, *, base_url: str, connect_timeout: float, read_timeout: float) -> None:
        super().__init__()
        # requests takes (connect, read); HttpClient.__init__ only accepts a
        # number (it compares it with 0), so the tuple is set afterwards.
        self.timeout = (connect_timeout, read_timeout)  # type: ignore[assignment]
        base = urlsplit(base_url.rstrip("/"))
        self._base = None if base_url.rstrip("/") == _TWILIO_API else base
        # requests re-reads proxy and CA-bundle variables from the whole
        # environment on every request (a quarter of a send's CPU here): read
        # them once, for the host we talk to, and stop the session looking.
        assert self.session is not None  # pool_connections=True made one
        env = self.session.merge_environment_settings(base_url, {}, None, None, None)
        self.session.trust_env = False
        self.proxy = env["proxies"]
        self.session.verify = env["verify"]

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if self._base is not None:
            parts = urlsplit(url)
            url = urlunsplit(
                (
                    self._base.scheme,
                    self._base.netloc,
                    self._base.path + parts.path,
                    parts.query,
                    parts.fragment,
                )
            )
        response = super().request(method, url, *args, **kwargs)
        if response.status_code == 429 or response.status_code >= 500:
            error = _json(response.text)
            raise TransientError(
                f"twilio {response.status_code} {error.get('code')}: "
                f"{error.get('message') or response.text[:200]}",
                status=response.status_code,
                code=error.get("code"),
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        return response


@lru_cache(maxsize=64)
def _client(
    pid: int,
    thread: int,
    account_sid: str,
    auth_token: str,
    base_url: str,
    connect_timeout: float,
    read_timeout: float,
) -> Client:
    # Keyed by pid: a Session made before a prefork fork would share its pooled
    # sockets with every child; and by thread: the SDK's client keeps the last
    # request and response on itself, so threads must not share one.
    http_client = _HttpClient(
        base_url=base_url, connect_timeout=connect_timeout, read_timeout=read_timeout
    )
    return Client(account_sid, auth_token, http_client=http_client)


def _refusal(exc: TwilioRestException) -> ProviderError:
    detail = f"twilio {exc.status} {exc.code}: {exc.msg}"
    if exc.status == 429 or exc.status >= 500:
        return TransientError(detail, status=exc.status, code=exc.code)
    return PermanentError(
        detail,
        status=exc.status,
        code=exc.code,
        invalid_recipient=exc.code in INVALID_RECIPIENT_CODES,
    )


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# --- webhook signatures -----------------------------------------------------------------


def verify_request(*, url: str, params: dict, signature: str) -> bool:
    """Whether ``signature`` (the ``X-Twilio-Signature`` header) is Twilio's
    signature of a request to ``url`` with these form ``params`` (a dict, or a
    QueryDict whose repeated fields are all signed), checked with the SDK's
    ``RequestValidator`` and ``TWILIO_AUTH_TOKEN``.

    False, never an exception, for a missing or malformed signature (the SDK
    raises TypeError on None, UnicodeError on odd text, ValueError on a bad
    port) or when no auth token is configured.
    """
    from twilio.request_validator import RequestValidator

    token = settings.TWILIO_AUTH_TOKEN
    if not token or not isinstance(signature, str) or not signature:
        return False
    try:
        return RequestValidator(token).validate(url, params, signature) is True
    except (TypeError, ValueError, AttributeError):
        # ValueError covers UnicodeError and binascii.Error.
        return False
