"""Outbound webhooks of journey steps: stored in the step's transaction, posted
once after commit, signed per Standard Webhooks with the tenant's secret,
retried with backoff on 429/5xx/timeouts, failed at once on other answers, and
swept up when a task is lost. The receiver is a real HTTP server on 127.0.0.1."""

import base64
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection, transaction

from commerce.signing import SignatureError, verify
from journeys.models import JourneySettings, OutboundWebhook, WebhookStatus
from journeys.services.webhooks import (
    BACKOFF_FIRST,
    BACKOFF_MAX,
    LEASE,
    MAX_ATTEMPTS,
    SWEEP_GRACE,
    journey_settings,
    outbound_webhook_deliver,
    outbound_webhook_queue,
    outbound_webhooks_sweep,
)
from journeys.webhook_tasks import deliver_webhook, sweep_webhooks
from retention import clock
from retention.errors import InvalidInput

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PAYLOAD = {"type": "journey.step", "data": {"customer_id": 7, "note": "grüße"}}

pytestmark = pytest.mark.usefixtures("eager_tasks")


# --- a receiver on 127.0.0.1 -------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """Records every POST and answers with the scripted answers in turn, then 200."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: deque[Answer] = deque()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    answer = receiver.answers.popleft() if receiver.answers else Answer()
                time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def answer(self, *answers: Answer) -> None:
        with self.lock:
            self.answers.extend(answers)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(autouse=True)
def _setup(settings):
    settings.OUTBOUND_WEBHOOKS_ALLOW_PRIVATE = True  # the receiver is on 127.0.0.1
    clock.set_now(NOW)


def queue(tenant, url, event_id="evt_1", payload=PAYLOAD) -> OutboundWebhook:
    return outbound_webhook_queue(tenant_id=tenant.pk, url=url, event_id=event_id, payload=payload)


def fresh(webhook) -> OutboundWebhook:
    return OutboundWebhook.objects.for_tenant(webhook.tenant_id).get(pk=webhook.pk)


def verify_with(secret: str, got: Received) -> None:
    verify(
        secrets=[secret],
        msg_id=got.headers["webhook-id"],
        timestamp=got.headers["webhook-timestamp"],
        signature=got.headers["webhook-signature"],
        body=got.body,
        now=time.time(),
    )


# --- the secret ----------------------------------------------------------------------------


def test_each_tenant_gets_one_standard_webhooks_secret(tenant, other_tenant):
    ours = journey_settings(tenant.pk)
    again = journey_settings(tenant.pk)
    theirs = journey_settings(other_tenant.pk)

    assert ours.pk == again.pk
    assert ours.webhook_secret == again.webhook_secret
    assert ours.webhook_secret.startswith("whsec_")
    assert len(base64.b64decode(ours.webhook_secret.removeprefix("whsec_"))) == 32
    assert theirs.webhook_secret != ours.webhook_secret
    assert JourneySettings.objects.for_tenant(tenant).count() == 1


# --- queue and deliver ----------------------------------------------------------------------


def test_a_queued_webhook_is_posted_after_commit_signed_with_the_tenants_secret(
    tenant, other_tenant, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        webhook = queue(tenant, receiver.url())
        assert receiver.received == []  # nothing leaves before the commit

    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got.path == "/hook"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"] == "evt_1"
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
    assert json.loads(got.body) == PAYLOAD
    verify_with(journey_settings(tenant.pk).webhook_secret, got)
    with pytest.raises(SignatureError):
        verify_with(journey_settings(other_tenant.pk).webhook_secret, got)
    webhook = fresh(webhook)
    assert (webhook.status, webhook.attempts, webhook.last_status_code) == (
        WebhookStatus.DELIVERED,
        1,
        200,
    )
    assert (webhook.delivered_at, webhook.last_error) == (NOW, "")


def test_the_same_event_queued_twice_is_one_row_and_one_post(
    tenant, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = queue(tenant, receiver.url())
        second = queue(tenant, receiver.url("/other"), payload={"other": True})
    with django_capture_on_commit_callbacks(execute=True):
        third = queue(tenant, receiver.url())

    assert first.pk == second.pk == third.pk
    assert OutboundWebhook.objects.for_tenant(tenant).count() == 1
    assert [r.path for r in receiver.received] == ["/hook"]
    assert fresh(first).payload == PAYLOAD


def test_a_rolled_back_transaction_queues_nothing(
    tenant, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                queue(tenant, receiver.url())
                raise RuntimeError("the step failed")
        except RuntimeError:
            pass

    assert callbacks == []
    assert OutboundWebhook.objects.for_tenant(tenant).count() == 0
    assert outbound_webhooks_sweep(now=NOW + timedelta(hours=1)) == 0
    assert receiver.received == []


def test_a_500_is_retried_after_the_backoff_then_delivered(tenant, receiver):
    receiver.answer(Answer(500, b"boom"))
    webhook = queue(tenant, receiver.url())

    assert outbound_webhook_deliver(webhook_id=webhook.pk, tenant_id=tenant.pk) == "pending"
    webhook = fresh(webhook)
    assert (webhook.status, webhook.attempts, webhook.last_status_code) == ("pending", 1, 500)
    assert (webhook.due_at, webhook.last_error) == (NOW + BACKOFF_FIRST, "HTTP 500: boom")

    # not due yet: nothing is posted, by the task or the sweeper
    assert outbound_webhook_deliver(webhook_id=webhook.pk, tenant_id=tenant.pk) is None
    assert outbound_webhooks_sweep() == 0
    assert len(receiver.received) == 1

    clock.advance(minutes=1)
    assert sweep_webhooks.delay().get() == 1

    webhook = fresh(webhook)
    assert (webhook.status, webhook.attempts, webhook.last_status_code) == ("delivered", 2, 200)
    assert webhook.last_error == ""
    assert [r.headers["webhook-id"] for r in receiver.received] == ["evt_1", "evt_1"]


def test_the_backoff_doubles_and_the_last_attempt_fails(tenant, receiver):
    receiver.answer(*[Answer(503, b"down")] * MAX_ATTEMPTS)
    webhook = queue(tenant, receiver.url())
    waits = []

    for _ in range(MAX_ATTEMPTS):
        before = clock.now()
        outbound_webhook_deliver(webhook_id=webhook.pk, tenant_id=tenant.pk)
        webhook = fresh(webhook)
        waits.append(webhook.due_at - before)
        clock.set_now(webhook.due_at)

    assert waits[:7] == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 32)] + [BACKOFF_MAX]
    assert (webhook.status, webhook.attempts, webhook.last_error) == (
        "failed",
        MAX_ATTEMPTS,
        "HTTP 503: down",
    )
    assert len(receiver.received) == MAX_ATTEMPTS
    assert outbound_webhook_deliver(webhook_id=webhook.pk, tenant_id=tenant.pk) is None


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
def test_a_client_error_fails_at_once(tenant, receiver, status):
    receiver.answer(Answer(status, b"no such hook"))
    webhook = queue(tenant, receiver.url())

    assert outbound_webhook_deliver(webhook_id=webhook.pk, tenant_id=tenant.pk) == "failed"

    webhook = fresh(webhook)
    assert (webhook.status, webhook.attempts, webhook.last_status_code) == ("failed", 1, status)
    assert webhook.last_error == f"HTTP {status}: no such hook"
    clock.advance(hours=2)
    assert outbound_webhooks_sweep() == 0
    assert len(receiver.received) == 1


def test_a_redirect_is_not_followed_and_fails(tenant, receiver):
    receiver.answer(Answer(302, b"", headers={"location": "http://127.0.0.1:1/elsewhere"}))
    webhook = queue(tenant, receiver.url())

    assert outbound_webhook_deliver(webhook_id=webhook.pk, tenant_id=tenant.pk) == "failed"

    assert fresh(webhook).last_error == (
        "HTTP 302: redirected to http://127.0.0.1:1/elsewhere; post to the final URL"
    )
    assert len(receiver.received) == 1


def test_a_429_waits_as_long_as_the_receiver_asks(tenant, receiver):
    receiver.answer(Answer(429, b"slow down", headers={"retry-after": "300"}))
    webhook = queue(tenant, receiver.url())

    assert outbound_webhook_deliver(webhook_id=webhook.pk, tenant_id=tenant.pk) == "pending"

    assert fresh(webhook).due_at == NOW + timedelta(seconds=300)


def test_a_slow_receiver_times_out_and_is_retried(tenant, receiver):
    receiver.answer(Answer(200, delay=1.0))
    webhook = queue(tenant, receiver.url())

    assert (
        outbound_webhook_deliver(webhook_id=webhook.pk, tenant_id=tenant.pk, timeout=0.2)
        == "pending"
    )

    webhook = fresh(webhook)
    assert (webhook.attempts, webhook.last_status_code) == (1, None)
    assert (webhook.due_at, webhook.last_error) == (NOW + BACKOFF_FIRST, "No answer within 0.2 s.")


def test_a_refused_connection_is_retried(tenant, receiver):
    url = receiver.url()
    receiver.stop()
    webhook = queue(tenant, url)

    assert outbound_webhook_deliver(webhook_id=webhook.pk, tenant_id=tenant.pk) == "pending"

    webhook = fresh(webhook)
    assert webhook.last_error.startswith("ConnectionError: ")
    assert (webhook.last_status_code, webhook.due_at) == (None, NOW + BACKOFF_FIRST)


def test_a_private_address_is_refused_unless_allowed(tenant, receiver, settings):
    settings.OUTBOUND_WEBHOOKS_ALLOW_PRIVATE = False
    webhook = queue(tenant, receiver.url())

    assert outbound_webhook_deliver(webhook_id=webhook.pk, tenant_id=tenant.pk) == "failed"

    assert fresh(webhook).last_error == (
        "127.0.0.1 resolves to 127.0.0.1, which is not a public address."
    )
    assert receiver.received == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "ftp://example.com/hook"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://example.com/" + "a" * 500}, "url"),
        ({"event_id": ""}, "event_id"),
        ({"event_id": "e" * 101}, "event_id"),
        ({"event_id": "with\nnewline"}, "event_id"),
        ({"payload": ["not", "an", "object"]}, "payload"),
        ({"payload": {"when": NOW}}, "payload"),
    ],
)
def test_bad_input_is_refused_with_the_field(tenant, change, field):
    args = {"url": "https://example.com/hook", "event_id": "evt_1", "payload": PAYLOAD, **change}

    with pytest.raises(InvalidInput) as err:
        outbound_webhook_queue(tenant_id=tenant.pk, **args)

    assert list(err.value.fields) == [field]
    assert OutboundWebhook.objects.for_tenant(tenant).count() == 0


# --- the sweeper ------------------------------------------------------------------------------


def test_a_lost_task_is_swept_after_the_grace_and_delivered_once(tenant, receiver):
    webhook = queue(tenant, receiver.url())  # no commit callbacks run: the task is "lost"

    assert outbound_webhooks_sweep() == 0  # a fresh row has its own task on the way
    clock.advance(seconds=SWEEP_GRACE.total_seconds())
    assert outbound_webhooks_sweep(tenant_id=tenant.pk) == 1

    assert fresh(webhook).status == "delivered"
    assert outbound_webhooks_sweep() == 0
    assert len(receiver.received) == 1


def test_a_dead_workers_claim_is_swept_when_its_lease_runs_out(tenant, receiver):
    webhook = queue(tenant, receiver.url())
    # a worker claimed it and died before recording anything
    OutboundWebhook.objects.for_tenant(tenant).filter(pk=webhook.pk).update(
        attempts=1, due_at=NOW + LEASE
    )

    assert outbound_webhook_deliver(webhook_id=webhook.pk, tenant_id=tenant.pk) is None
    clock.advance(seconds=LEASE.total_seconds())
    assert outbound_webhooks_sweep() == 1

    assert (fresh(webhook).status, fresh(webhook).attempts) == ("delivered", 2)


def test_a_broker_that_is_down_does_not_fail_the_caller(
    tenant, receiver, django_capture_on_commit_callbacks, monkeypatch
):
    from celery import Celery

    from retention.celery import app as celery_app

    def broker_down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to redis")

    with monkeypatch.context() as patch:
        patch.setattr(Celery, "send_task", broker_down)
        celery_app.conf.task_always_eager = False  # eager_tasks turns it back on
        try:
            with django_capture_on_commit_callbacks(execute=True):
                webhook = queue(tenant, receiver.url())
        finally:
            celery_app.conf.task_always_eager = True

    assert fresh(webhook).status == "pending"
    assert receiver.received == []
    clock.advance(seconds=SWEEP_GRACE.total_seconds())
    assert outbound_webhooks_sweep() == 1
    assert fresh(webhook).status == "delivered"


def test_the_sweep_limit_bounds_one_run(tenant, receiver):
    for n in range(3):
        queue(tenant, receiver.url(), event_id=f"evt_{n}")
    clock.advance(minutes=1)

    assert outbound_webhooks_sweep(limit=2) == 2
    assert outbound_webhooks_sweep(limit=2) == 1
    assert len(receiver.received) == 3


# --- two tenants ------------------------------------------------------------------------------


def test_another_tenants_webhook_is_not_delivered_under_this_tenant(tenant, other_tenant, receiver):
    theirs = queue(other_tenant, receiver.url(), event_id="evt_theirs")

    assert outbound_webhook_deliver(webhook_id=theirs.pk, tenant_id=tenant.pk) is None
    assert deliver_webhook.delay(tenant.pk, theirs.pk).get() is None
    clock.advance(minutes=1)
    assert outbound_webhooks_sweep(tenant_id=tenant.pk) == 0

    assert receiver.received == []
    assert (fresh(theirs).status, fresh(theirs).attempts) == ("pending", 0)
    assert JourneySettings.objects.for_tenant(tenant).count() == 0  # no secret was touched

    assert deliver_webhook.delay(other_tenant.pk, theirs.pk).get() == "delivered"
    verify_with(journey_settings(other_tenant.pk).webhook_secret, receiver.received[0])
    with pytest.raises(SignatureError):
        verify_with(journey_settings(tenant.pk).webhook_secret, receiver.received[0])


def test_event_ids_are_per_tenant(tenant, other_tenant, receiver):
    ours = queue(tenant, receiver.url(), event_id="evt_same")
    theirs = queue(other_tenant, receiver.url(), event_id="evt_same")

    assert ours.pk != theirs.pk
    assert (ours.tenant_id, theirs.tenant_id) == (tenant.pk, other_tenant.pk)


# --- two workers --------------------------------------------------------------------------------


def test_two_workers_delivering_at_once_post_once(transactional_db, tenant, receiver):
    receiver.answer(Answer(200, delay=0.3))
    # Stored as queueing would store it (queueing here would deliver on commit at once).
    webhook = OutboundWebhook.objects.create(
        tenant=tenant, url=receiver.url(), event_id="evt_1", payload=PAYLOAD, due_at=NOW
    )
    barrier, results = threading.Barrier(2), []

    def worker():
        try:
            barrier.wait()
            results.append(outbound_webhook_deliver(webhook_id=webhook.pk, tenant_id=tenant.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results, key=str) == [None, "delivered"]
    assert len(receiver.received) == 1
    assert (fresh(webhook).status, fresh(webhook).attempts) == ("delivered", 1)
