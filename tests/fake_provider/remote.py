"""The fake's HTTP control API, for a fake running in another process."""

from __future__ import annotations

import json
import urllib.request
from typing import Any
from urllib.parse import urlencode


class RemoteFakeProvider:
    """``RemoteFakeProvider("http://127.0.0.1:8765")``: the same control calls as
    :class:`~tests.fake_provider.FakeProvider`, over HTTP."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def summary(self) -> dict[str, Any]:
        """``{"total", "by_status", "counts", "accepted"}``; counts are per message id."""
        return self._call("GET", "/_fake/calls")

    def calls_for(self, message_id: int | str) -> list[dict[str, Any]]:
        query = urlencode({"message_id": str(message_id)})
        return self._call("GET", f"/_fake/calls?{query}")["calls"]

    def recent(self, n: int = 100) -> list[dict[str, Any]]:
        return self._call("GET", f"/_fake/calls?recent={int(n)}")["calls"]

    def reset(self) -> None:
        self._call("POST", "/_fake/reset")

    def fail(
        self,
        *,
        to: str,
        status: int,
        times: int | None = 1,
        code: int | None = None,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        rule = {"action": "fail", "to": to, "status": status, "times": times, "code": code}
        self._call("POST", "/_fake/rules", {**rule, "retry_after": retry_after, "message": message})

    def delay(self, *, to: str, seconds: float, times: int | None = 1) -> None:
        rule = {"action": "delay", "to": to, "seconds": seconds, "times": times}
        self._call("POST", "/_fake/rules", rule)

    def drop(self, *, to: str, times: int | None = 1) -> None:
        self._call("POST", "/_fake/rules", {"action": "drop", "to": to, "times": times})

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read() or b"null")
