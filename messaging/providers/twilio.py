"""Twilio adapter: one SMS through the Messages API, with the official SDK.

``send`` returns the message ``sid``. Errors map onto
:mod:`messaging.providers.base`:

- 429 and 5xx -> :class:`TransientError` (with ``Retry-After`` when sent);
  other 4xx -> :class:`PermanentError` carrying Twilio's error ``code``, with
  ``invalid_recipient`` for the codes that condemn the number itself.
- failing to connect (refused, DNS, connect timeout, TLS) -> :class:`TransientError`;
  a read timeout or a connection dropped once the request was on the wire ->
  :class:`OutcomeUnknown`.

A cached client per process and thread (keyed by the settings it was built
from) sends over one kept-alive connection (:mod:`.keepalive`, plugged in as
the SDK's ``HttpClient``), without a handshake per SMS; the SDK's requests
transport cost three times as much CPU per SMS and is kept only for a host
reached through a proxy.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import ssl
import threading
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from django.conf import settings
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from twilio.base.exceptions import TwilioRestException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import ProtocolError

from .base import (
    LookupUnsupported,
    OutcomeUnknown,
    Outgoing,
    PermanentError,
    ProviderError,
    TransientError,
    retry_after_seconds,
)
from .keepalive import ConnectFailed, KeepAlive

_logger = logging.getLogger("twilio.http_client")

# Refusals that say the number itself is unusable (it goes on the suppression
# list): 21211 invalid To, 21408 region not enabled, 21610 recipient replied
# STOP, 21612 not reachable by SMS, 21614 not a mobile number.
INVALID_RECIPIENT_CODES = frozenset({21211, 21408, 21610, 21612, 21614})

_TWILIO_API = "https://api.twilio.com"


def configured() -> bool:
    return bool(settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN)


def _current_client() -> Client:
    """This process's and thread's client for the current settings."""
    return _client(
        os.getpid(),
        threading.get_ident(),
        settings.TWILIO_ACCOUNT_SID,
        settings.TWILIO_AUTH_TOKEN,
        settings.TWILIO_API_BASE_URL,
        settings.PROVIDER_CONNECT_TIMEOUT,
        settings.PROVIDER_TIMEOUT,
    )


def send(outgoing: Outgoing) -> str:
    client = _current_client()
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


# How many of the latest messages to a number `lookup` reads.
LOOKUP_PAGE = 50


def lookup(outgoing: Outgoing, *, since: datetime) -> str | None:
    """The sid of an SMS Twilio holds like ``outgoing`` (same To, From and
    body, created at ``since`` or later, among the latest ``LOOKUP_PAGE`` from
    that sender to that number), or None. Twilio keeps no metadata of ours on
    a message, so this matches on content and time: two identical texts to one
    number queued within the same second read as one."""
    floor = since.replace(microsecond=0)
    client = _current_client()
    try:
        messages = client.messages.list(
            to=outgoing.to, from_=outgoing.from_address, limit=LOOKUP_PAGE
        )
    except TwilioRestException as exc:
        refusal = _refusal(exc)
        if isinstance(refusal, TransientError):
            raise refusal from exc
        raise LookupUnsupported(refusal.detail, status=exc.status, code=exc.code) from exc
    except OutcomeUnknown as exc:  # nothing is changed by a read: try again later
        raise TransientError(exc.detail) from exc
    except requests.RequestException as exc:
        raise TransientError(f"twilio unreachable: {exc}") from exc
    for message in messages:
        created = message.date_created
        if message.body == outgoing.text and (created is None or created >= floor):
            return str(message.sid)
    return None


class _KeepAliveHttpClient(HttpClient):
    """The SDK's ``HttpClient`` interface over :mod:`.keepalive` (Twilio's
    documented way to change the transport: a custom HTTP client,
    twilio.com/docs/libraries/python/custom-http-clients-python). The SDK
    still builds each request (URL, form fields, headers, Basic auth) and
    reads each answer (``TwilioRestException``, ``MessageInstance``); this only
    encodes the form as requests would and moves the bytes.

    - Requests go to ``base_url``: the SDK hard-codes https://api.twilio.com in
      each domain (twilio-python#521), so this rewrites scheme and host of each URL.
    - 429 and 5xx raise :class:`TransientError` here, because
      TwilioRestException keeps status, code and message but drops the
      response headers, and with them Retry-After.
    - Failing to connect raises :class:`TransientError`; anything once the
      request may have gone out, :class:`OutcomeUnknown`.
    """

    def __init__(
        self,
        *,
        base_url: str,
        connect_timeout: float,
        read_timeout: float,
        context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(_logger, False, read_timeout)
        base = urlsplit(base_url.rstrip("/"))
        self._base = None if base_url.rstrip("/") == _TWILIO_API else base
        self._connect_timeout = connect_timeout
        self._context = context
        self._transports: dict[tuple[str, str, float], KeepAlive] = {}

    def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if timeout is None:
            timeout = self.timeout
        elif timeout <= 0:
            raise ValueError(timeout)
        parts = urlsplit(uri)
        if self._base is not None:
            parts = parts._replace(
                scheme=self._base.scheme,
                netloc=self._base.netloc,
                path=self._base.path + parts.path,
            )
        query = "&".join(q for q in (parts.query, urlencode(params or {}, doseq=True)) if q)
        target = urlunsplit(("", "", parts.path or "/", query, ""))
        headers = dict(headers or {})
        if auth is not None:
            user_pass = f"{auth[0]}:{auth[1]}".encode("latin-1")
            headers["Authorization"] = "Basic " + base64.b64encode(user_pass).decode("ascii")
        if "json" in headers.get("Content-Type", ""):
            body = json.dumps(data).encode("utf-8") if data is not None else b""
        else:  # form fields, lists as repeated fields (as requests encodes them)
            body = urlencode(data or {}, doseq=True).encode("ascii")
        key = (parts.scheme, parts.netloc, float(timeout or 0))
        transport = self._transports.get(key)
        if transport is None:
            transport = self._transports[key] = KeepAlive(
                f"{parts.scheme}://{parts.netloc}",
                connect_timeout=self._connect_timeout,
                timeout=timeout,
                context=self._context,
            )
        try:
            answer = transport.request(method.upper(), target, headers, body)
        except ConnectFailed as exc:
            raise TransientError(f"twilio unreachable: {exc!r}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise OutcomeUnknown(f"twilio response lost: {exc!r}") from exc
        # Twilio answers JSON, which is UTF-8.
        text = answer.body.decode("utf-8", "replace")
        if answer.status == 429 or answer.status >= 500:
            raise _overloaded(answer.status, text, answer.headers.get("Retry-After"))
        return Response(answer.status, text, answer.headers)


class _ProxiedHttpClient(TwilioHttpClient):
    """Twilio's own requests transport, for a host reached through a proxy
    (``HTTPS_PROXY`` and friends), which :mod:`.keepalive` does not speak;
    same base-URL rewrite and 429/5xx handling as :class:`_KeepAliveHttpClient`."""

    def __init__(
        self, *, base_url: str, connect_timeout: float, read_timeout: float, env: dict
    ) -> None:
        super().__init__()
        # requests takes (connect, read); HttpClient.__init__ only accepts a
        # number (it compares it with 0), so the tuple is set afterwards.
        self.timeout = (connect_timeout, read_timeout)  # type: ignore[assignment]
        base = urlsplit(base_url.rstrip("/"))
        self._base = None if base_url.rstrip("/") == _TWILIO_API else base
        # requests re-reads proxy and CA-bundle variables from the whole
        # environment on every request: read them once and stop it looking.
        assert self.session is not None  # pool_connections=True made one
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
            raise _overloaded(
                response.status_code, response.text, response.headers.get("Retry-After")
            )
        return response


def _overloaded(status: int, text: str, retry_after: str | None) -> TransientError:
    error = _json(text)
    return TransientError(
        f"twilio {status} {error.get('code')}: {error.get('message') or text[:200]}",
        status=status,
        code=error.get("code"),
        retry_after=retry_after_seconds(retry_after),
    )


def _tls_context(verify: bool | str) -> ssl.SSLContext:
    """The CA bundle requests would use for this host (``REQUESTS_CA_BUNDLE``,
    ``CURL_CA_BUNDLE``, else certifi's), so the transport trusts what it trusted."""
    path = DEFAULT_CA_BUNDLE_PATH if verify is True else str(verify)
    if os.path.isdir(path):
        return ssl.create_default_context(capath=path)
    return ssl.create_default_context(cafile=path)


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
    # Keyed by pid: connections made before a prefork fork must not be shared
    # with every child; and by thread: the SDK's client keeps the last request
    # and response on itself, so threads must not share one.
    with requests.Session() as session:  # proxies and CA bundle from the environment
        env = session.merge_environment_settings(base_url, {}, None, None, None)
    http_client: HttpClient
    if env["proxies"]:
        http_client = _ProxiedHttpClient(
            base_url=base_url, connect_timeout=connect_timeout, read_timeout=read_timeout, env=env
        )
    else:
        http_client = _KeepAliveHttpClient(
            base_url=base_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            context=_tls_context(env["verify"]) if base_url.startswith("https:") else None,
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
