"""The fake's state and Python API: recorded calls, scripted rules, serving.

Only the last ``keep`` calls are kept whole; counts per message id cover every
call, so a 100,000-message benchmark costs a few megabytes.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any
from urllib.parse import parse_qs

from . import apis
from .wire import Connection, Reply, json_reply

ANY = "*"


@dataclass(frozen=True)
class Call:
    """One request the fake answered."""

    provider: str  # "sendgrid" | "twilio"
    to: str
    message_id: str | None  # ours: custom_args.message_id, or m= in the StatusCallback URL
    status: int  # what the fake answered; 0 when it dropped the connection
    provider_id: str  # X-Message-Id or sid when accepted, else ""
    body: dict[str, Any]  # SendGrid's JSON, or Twilio's form fields (first value of each)
    headers: dict[str, str]  # request headers, names lower-cased
    at: float  # time.time() on arrival


@dataclass
class Rule:
    action: str  # "fail" | "delay" | "drop"
    to: str = ANY
    status: int = 0
    code: int | None = None
    retry_after: float | None = None
    message: str | None = None
    seconds: float = 0.0
    times: int | None = 1  # None: until reset

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Rule:
        action = item.get("action") or ("delay" if "seconds" in item else "fail")
        if action not in ("fail", "delay", "drop"):
            raise ValueError(f"unknown action {action!r}")
        return cls(
            action,
            to=str(item.get("to") or ANY),
            status=int(item.get("status") or 0),
            code=item.get("code"),
            retry_after=item.get("retry_after"),
            message=item.get("message"),
            seconds=float(item.get("seconds") or 0.0),
            times=item.get("times", 1),
        )


class FakeProvider:
    """A fake SendGrid and Twilio; :meth:`start` serves it from a thread."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, keep: int = 10_000) -> None:
        self.host = host
        self.port = port
        self.total = 0
        self.counts: Counter[str] = Counter()  # calls per message id, every call
        self.accepted: Counter[str] = Counter()  # 2xx answers per message id
        self.by_status: Counter[int] = Counter()
        self._calls: deque[Call] = deque(maxlen=keep)
        self._rules: list[Rule] = []
        # What the providers' lookup APIs list: SendGrid's Email Activity
        # (by our message and tenant ids) and Twilio's Messages list (by To
        # and From, newest first). False: the account cannot be asked.
        self.lookups_supported = True
        self._activity: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._sms: dict[tuple[str, str], deque[dict[str, Any]]] = {}
        self._lock = threading.Lock()  # the test thread and the server's loop share state
        self._connections: set[asyncio.Transport] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- Python API -----------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """The recorded calls, oldest first (the last ``keep`` of them)."""
        with self._lock:
            return list(self._calls)

    def calls_for(self, message_id: int | str) -> list[Call]:
        wanted = str(message_id)
        with self._lock:
            return [call for call in self._calls if call.message_id == wanted]

    @property
    def open_connections(self) -> int:
        return len(self._connections)

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
        """Answer the next ``times`` calls to ``to`` (``"*"``: anyone; ``times=None``:
        until reset) with ``status``: SendGrid's error JSON, or Twilio's with
        ``code`` (default 21211 for a 400). ``retry_after`` adds that header."""
        rule = Rule("fail", to, status, code, retry_after, message, times=times)
        self.add_rule(rule)

    def delay(self, *, to: str, seconds: float, times: int | None = 1) -> None:
        """Hold the answer to the next ``times`` calls to ``to`` for ``seconds``."""
        self.add_rule(Rule("delay", to, seconds=seconds, times=times))

    def drop(self, *, to: str, times: int | None = 1) -> None:
        """Close the connection instead of answering the next ``times`` calls."""
        self.add_rule(Rule("drop", to, times=times))

    def add_rule(self, rule: Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    def reset(self) -> None:
        """Forget calls, counts and rules."""
        with self._lock:
            self._calls.clear()
            self._rules.clear()
            self.counts.clear()
            self.accepted.clear()
            self.by_status.clear()
            self._activity.clear()
            self._sms.clear()
            self.total = 0

    def summary(self) -> dict[str, Any]:
        """What ``GET /_fake/calls`` answers."""
        with self._lock:
            return {
                "total": self.total,
                "by_status": {str(status): n for status, n in self.by_status.items()},
                "counts": dict(self.counts),
                "accepted": dict(self.accepted),
            }

    # --- serving --------------------------------------------------------------

    def start(self) -> FakeProvider:
        """Serve from a daemon thread; returns once the port is bound."""
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self.serve(started.set))
            except BaseException as exc:  # handed to start()'s caller
                failure.append(exc)
                started.set()

        self._thread = threading.Thread(target=run, name="fake-provider", daemon=True)
        self._thread.start()
        started.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def serve(self, on_ready: Callable[[], object] | None = None) -> None:
        """Serve until :meth:`stop` (or forever, in a process of its own);
        ``on_ready`` runs once the port is bound."""
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        server = await self._loop.create_server(
            lambda: Connection(self.handle, self._connections),
            self.host,
            self.port,
            backlog=4096,
            reuse_address=True,
        )
        self.port = server.sockets[0].getsockname()[1]
        if on_ready is not None:
            on_ready()
        async with server:
            await self._stopped.wait()
            for transport in list(self._connections):
                transport.close()

    # --- requests -------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        path, _, query = target.partition("?")
        if method == "POST" and path == "/v3/mail/send":
            return self._sendgrid(headers, body)
        if method == "POST" and (match := apis.TWILIO_PATH.match(path)):
            return self._twilio(match.group(1), headers, body)
        if method == "GET" and path == "/v3/messages":
            return self._sendgrid_activity(headers, parse_qs(query))
        if method == "GET" and (match := apis.TWILIO_PATH.match(path)):
            return self._twilio_list(match.group(1), headers, parse_qs(query))
        if path.startswith("/_fake/"):
            return self._control(method, path, parse_qs(query), body)
        return json_reply(404, {"errors": [{"field": None, "message": "not found"}]})

    def _sendgrid(self, headers: dict[str, str], raw: bytes) -> Reply:
        at = time.time()
        payload, to, message_id = apis.sendgrid_parse(raw)
        reply = apis.sendgrid_unauthorized(headers)
        if reply is None and payload is None:
            reply = apis.sendgrid_error(400, None, "Bad Request")
        if reply is None and (rule := self._take("fail", to)) is not None:
            reply = _retry_after(apis.sendgrid_error(rule.status, None, rule.message), rule)
        if reply is None and payload is not None:
            reply = apis.sendgrid_invalid(payload)
        provider_id = ""
        if reply is None:
            reply, provider_id = apis.sendgrid_accepted()
        call = Call(
            "sendgrid", to, message_id, reply.status, provider_id, payload or {}, headers, at
        )
        self._record(self._timed(to, reply), call)
        if provider_id and not reply.drop and payload is not None:
            tenant_id = str(apis.sendgrid_custom_args(payload).get("tenant_id"))
            with self._lock:
                self._activity.setdefault((str(message_id), tenant_id), []).append(
                    apis.sendgrid_activity_item(payload, provider_id, at)
                )
        return reply

    def _twilio(self, account_sid: str, headers: dict[str, str], raw: bytes) -> Reply:
        at = time.time()
        form, to, message_id = apis.twilio_parse(raw)
        reply = apis.twilio_unauthorized(headers, to)
        if reply is None and (rule := self._take("fail", to)) is not None:
            reply = _retry_after(apis.twilio_error(rule.status, rule.code, to, rule.message), rule)
        if reply is None:
            reply = apis.twilio_invalid(form)
        provider_id = ""
        if reply is None:
            reply, provider_id = apis.twilio_accepted(account_sid, form)
        call = Call("twilio", to, message_id, reply.status, provider_id, form, headers, at)
        self._record(self._timed(to, reply), call)
        if provider_id and not reply.drop:
            resource = json.loads(reply.body)
            with self._lock:
                key = (to, form.get("From", ""))
                self._sms.setdefault(key, deque(maxlen=200)).appendleft(resource)
        return reply

    def _sendgrid_activity(self, headers: dict[str, str], query: dict[str, list[str]]) -> Reply:
        reply = apis.sendgrid_unauthorized(headers)
        if reply is not None:
            return reply
        if not self.lookups_supported:
            return apis.sendgrid_error(403, None, "access forbidden")
        wanted = apis.sendgrid_activity_query((query.get("query") or [""])[0])
        if wanted is None:
            return apis.sendgrid_error(400, "query", "invalid query")
        limit = int((query.get("limit") or ["10"])[0])
        with self._lock:
            items = list(self._activity.get(wanted, []))[:limit]
        return json_reply(200, {"messages": items})

    def _twilio_list(
        self, account_sid: str, headers: dict[str, str], query: dict[str, list[str]]
    ) -> Reply:
        to = (query.get("To") or [""])[0]
        reply = apis.twilio_unauthorized(headers, to)
        if reply is not None:
            return reply
        if not self.lookups_supported:
            return apis.twilio_error(403, 20403, to, "Forbidden")
        sender = (query.get("From") or [""])[0]
        size = int((query.get("PageSize") or ["50"])[0])
        with self._lock:
            items = list(self._sms.get((to, sender), ()))[:size]
        return json_reply(200, apis.twilio_page(account_sid, items, size))

    def _timed(self, to: str, reply: Reply) -> Reply:
        if self._take("drop", to) is not None:
            reply.drop = True
        elif (rule := self._take("delay", to)) is not None:
            reply.delay = rule.seconds
        return reply

    def _take(self, action: str, to: str) -> Rule | None:
        """The first live rule of ``action`` for ``to``, one use spent."""
        if not self._rules:  # the common case: no lock, no scan
            return None
        with self._lock:
            for rule in self._rules:
                if rule.action == action and rule.to in (ANY, to):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times == 0:  # spent: keep the no-rules fast path reachable
                            self._rules.remove(rule)
                    return rule
        return None

    def _record(self, reply: Reply, call: Call) -> None:
        if reply.drop:
            call = replace(call, status=0, provider_id="")
        with self._lock:
            self._calls.append(call)
            self.total += 1
            self.by_status[call.status] += 1
            if call.message_id is not None:
                self.counts[call.message_id] += 1
                if 200 <= call.status < 300:
                    self.accepted[call.message_id] += 1

    def _control(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Reply:
        if method == "GET" and path == "/_fake/calls":
            if "message_id" in query:
                calls = self.calls_for(query["message_id"][0])
            elif "recent" in query:
                calls = self.calls[-int(query["recent"][0]) :]
            else:
                return json_reply(200, self.summary())
            return json_reply(200, {"calls": [asdict(call) for call in calls]})
        if method == "POST" and path == "/_fake/reset":
            self.reset()
            return json_reply(200, {"reset": True})
        if method == "POST" and path == "/_fake/rules":
            try:
                data = json.loads(body)
                rules = [
                    Rule.from_json(item) for item in (data if isinstance(data, list) else [data])
                ]
            except (ValueError, TypeError, AttributeError) as exc:
                return json_reply(400, {"error": f"bad rule: {exc}"})
            for rule in rules:
                self.add_rule(rule)
            return json_reply(201, {"rules": len(rules)})
        return json_reply(404, {"error": f"no {method} {path}"})


def _retry_after(reply: Reply, rule: Rule) -> Reply:
    if rule.retry_after is not None:
        reply.headers.append(("Retry-After", f"{rule.retry_after:g}"))
    return reply
