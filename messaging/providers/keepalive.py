"""One kept-alive HTTP(S) connection per process and thread to a provider's API:
the socket under both adapters (the SDKs still build every request and read
every answer; see ``sendgrid`` and ``twilio``). Imports no SDK.

Why not the SDKs' own transports: python_http_client (SendGrid) opens a new
connection, and in production a TLS handshake, per request; requests (Twilio)
costs about three times this module per request (it re-reads the environment,
re-merges settings and hooks, and wraps urllib3). Both also write a request's
head and body in two ``send`` calls, so the provider's side (and, on a shared
machine, the CPU it runs on) wakes twice per request; this writes one.

What a failure means, which is all the adapters need to tell transient from
unknown outcomes:

- :class:`ConnectFailed`: connecting failed (refused, DNS, connect timeout,
  TLS handshake): the provider never got a byte of the request.
- any other ``OSError`` or ``http.client.HTTPException``: raised once the
  request may have started to go out (a read timeout, a reset, a short or
  malformed answer): the provider may have acted on it.
"""

from __future__ import annotations

import http.client
import os
import select
import ssl
import threading
from typing import NamedTuple
from urllib.parse import urlsplit


class ConnectFailed(OSError):
    """Could not connect: nothing of the request was sent."""


class Answer(NamedTuple):
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes


class KeepAlive:
    """``KeepAlive("https://api.sendgrid.com", connect_timeout=5, timeout=10)``:
    ``request(method, target, headers, body) -> Answer``."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        timeout: float,
        context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.netloc = parts.netloc
        self.connect_timeout, self.timeout = connect_timeout, timeout
        self.context = context
        # One connection per thread (a worker may run batches in threads) and
        # per process (never one inherited across a fork).
        self.local = threading.local()

    @property
    def conn(self) -> http.client.HTTPConnection | None:
        if getattr(self.local, "pid", None) != os.getpid():
            self.local.conn, self.local.pid = None, os.getpid()
        return self.local.conn

    @conn.setter
    def conn(self, value: http.client.HTTPConnection | None) -> None:
        self.local.conn, self.local.pid = value, os.getpid()

    def _connection(self) -> http.client.HTTPConnection:
        conn = self.conn
        # Not once the server has closed it (readable while idle means EOF): a
        # request on a dead connection would fail after it may have been sent.
        if conn is not None and _dropped(conn):
            conn.close()
            conn = None
        if conn is None:
            if self.https:
                conn = http.client.HTTPSConnection(
                    self.netloc, timeout=self.connect_timeout, context=self.context
                )
            else:
                conn = http.client.HTTPConnection(self.netloc, timeout=self.connect_timeout)
            try:
                conn.connect()  # with TCP_NODELAY, SNI and certificate checks
            except OSError as exc:
                conn.close()
                raise ConnectFailed(*exc.args) from exc
            conn.sock.settimeout(self.timeout)
            self.conn = conn
        return conn

    def request(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        """Send one request (``target``: path and query) and read the whole answer."""
        head = [f"{method} {target} HTTP/1.1", f"Host: {self.netloc}"]
        head += ["Accept-Encoding: identity", f"Content-Length: {len(body)}"]
        for name, value in headers.items():
            if name.lower() in ("host", "content-length", "accept-encoding"):
                continue
            if any(c in f"{name}{value}" for c in "\r\n\0"):
                raise ValueError(f"illegal character in the {name!r} header")
            head.append(f"{name}: {value}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        conn = self._connection()
        try:
            conn.sock.sendall(data)
            response = http.client.HTTPResponse(conn.sock, method=method)
            response.begin()
            answer = response.read()
        except BaseException:
            conn.close()
            self.conn = None
            raise
        if response.will_close:
            conn.close()
            self.conn = None
        return Answer(response.status, response.reason, response.msg, answer)


def _dropped(conn: http.client.HTTPConnection) -> bool:
    if conn.sock is None:
        return True
    try:
        readable, _, _ = select.select([conn.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
