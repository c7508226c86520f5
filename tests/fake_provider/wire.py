"""HTTP/1.1 on asyncio for the fake: parse requests, write replies, keep-alive.

A Protocol rather than streams or a thread per connection, because the fake
must answer thousands of requests a second while sharing the machine with
the workers it serves. No chunked request bodies (the SDKs send none).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_HEAD = 64 * 1024
MAX_BODY = 32 * 1024 * 1024
REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    413: "Payload Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    delay: float = 0.0  # seconds to hold the answer
    drop: bool = False  # close the connection instead of answering


Handler = Callable[[str, str, dict[str, str], bytes], Reply]


def json_reply(status: int, payload: Any) -> Reply:
    return Reply(status, [], json.dumps(payload).encode())


class Connection(asyncio.Protocol):
    """One client connection: parses requests and answers them in order."""

    def __init__(self, handle: Handler, connections: set[asyncio.Transport]) -> None:
        self.handle = handle
        self.connections = connections
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.pending: asyncio.TimerHandle | None = None  # a delayed answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.connections.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.pending is not None:
            self.pending.cancel()
        if self.transport is not None:
            self.connections.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.pending is None:  # else the delayed answer resumes processing
            self._process()

    def _process(self) -> None:
        assert self.transport is not None
        while not self.transport.is_closing():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self._send(json_reply(431, {"error": "headers too large"}), False)
                return
            try:
                method, target, version, headers = parse_head(bytes(self.buffer[:end]))
                length = int(headers.get("content-length", "0"))
            except ValueError:
                self._send(json_reply(400, {"error": "malformed request"}), False)
                return
            if "chunked" in headers.get("transfer-encoding", "").lower() or length > MAX_BODY:
                self._send(json_reply(501, {"error": "chunked or huge bodies"}), False)
                return
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            connection = headers.get("connection", "").lower()
            keep_alive = connection == "keep-alive" or (
                version == "HTTP/1.1" and connection != "close"
            )
            reply = self.handle(method, target, headers, body)
            if reply.drop:
                self.transport.close()
                return
            if reply.delay > 0:
                loop = asyncio.get_running_loop()
                self.pending = loop.call_later(reply.delay, self._send_later, reply, keep_alive)
                return
            self._send(reply, keep_alive)

    def _send_later(self, reply: Reply, keep_alive: bool) -> None:
        self.pending = None
        assert self.transport is not None
        if self.transport.is_closing():  # the client gave up waiting
            return
        self._send(reply, keep_alive)
        self._process()

    def _send(self, reply: Reply, keep_alive: bool) -> None:
        assert self.transport is not None
        lines = [
            f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}",
            f"Date: {http_date()}",
            f"Content-Length: {len(reply.body)}",
            "Connection: keep-alive" if keep_alive else "Connection: close",
        ]
        if reply.body:
            lines.append("Content-Type: application/json")
        lines.extend(f"{name}: {value}" for name, value in reply.headers)
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body)
        if not keep_alive:
            self.transport.close()


def parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Method, target, version and lower-cased headers; ValueError if malformed."""
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    return method, target, version, headers


_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    # Formatting a date per reply shows up in profiles; it changes once a second.
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)))
    return _date_cache[1]
