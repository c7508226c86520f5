"""Redis (no persistence) restarted with thousands of send tasks queued: the
queue is gone, and the sweeper, reading the database, queues the sends again;
every message goes out once.

This restarts the machine's Redis (``redis-cli shutdown nosave``, then the
command the CI machine starts it with, in a ``finally``): every Redis database
is emptied, so it runs only against a local Redis on 127.0.0.1:6379."""

from __future__ import annotations

import contextlib
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlparse

import pytest
import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Count

from commerce.models import Customer
from messaging.models import Message, Status
from messaging.services.outbox import Content, MessageIn, messages_enqueue_many, messaging_settings
from messaging.services.sweep import DISPATCH_GRACE, messages_dispatch_due
from retention import clock
from retention.celery import app as celery_app
from tests.faults.conftest import wait_quiet, wait_until, worker_log, worker_process

MESSAGES = 2_000
CUSTOMERS = 200
# As /work/.library/env/machines/python-svc.md starts it.
REDIS_START = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
    "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
)

pytestmark = pytest.mark.skipif(
    urlparse(settings.REDIS_URL or "redis://none").hostname != "127.0.0.1"
    or (urlparse(settings.REDIS_URL).port or 6379) != 6379
    or not shutil.which("redis-server"),
    reason="restarts Redis: needs the local redis-server on 127.0.0.1:6379",
)


def _up(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@contextlib.contextmanager
def redis_stopped(client: redis.Redis) -> Iterator[None]:
    """Redis shut down without saving for the body; always started again."""
    try:
        subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"],
            capture_output=True,
            timeout=10,
        )
        wait_until(lambda: not _up(client), seconds=10, what=lambda: "Redis did not stop")
        yield
    finally:
        if not _up(client):
            subprocess.run(shlex.split(REDIS_START), check=True, timeout=10)
        wait_until(lambda: _up(client), seconds=10, what=lambda: "Redis did not come back")


def _statuses(tenant) -> dict[str, int]:
    rows = Message.objects.for_tenant(tenant).values("status").annotate(n=Count("id"))
    return {r["status"]: r["n"] for r in rows}


def test_redis_restart_loses_queued_tasks_and_the_sweeper_sends_each_message_once(
    transactional_db, tenant, fake_provider, broker
):
    # given thousands of send tasks queued, one per message, and no worker yet
    ms = messaging_settings(tenant)
    ms.from_email, ms.quiet_hours_enabled = "shop@alpha.example", False
    ms.save()
    customers = Customer.objects.bulk_create(
        Customer(tenant=tenant, email=f"buyer{i}@shop.example") for i in range(CUSTOMERS)
    )
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        with transaction.atomic():
            for i in range(MESSAGES):
                item = MessageIn(
                    idempotency_key=f"order:{i}:shipped",
                    customer=customers[i % CUSTOMERS],
                    channel="email",
                    category="transactional",
                    content=Content(subject="Shipped", text=f"Order {i} shipped"),
                )
                messages_enqueue_many(tenant=tenant, items=[item])
        assert broker.llen("dispatch") == MESSAGES

        # when Redis restarts without persistence
        with redis_stopped(broker):
            pass
        assert broker.llen("dispatch") == 0

        with worker_process("dispatch") as worker:
            time.sleep(3)  # the worker is up and finds nothing to do
            assert fake_provider.total == 0, worker_log(worker)
            # then the sweeper's next run queues every message again, from the database
            later = clock.now() + DISPATCH_GRACE + timedelta(seconds=1)
            assert messages_dispatch_due(now=later) == MESSAGES
            wait_until(
                lambda: _statuses(tenant) == {Status.SENT: MESSAGES},
                seconds=40,
                what=lambda: (_statuses(tenant), worker.poll(), worker_log(worker)),
            )
            wait_quiet(lambda: fake_provider.total, quiet=1.0)
    finally:
        celery_app.conf.task_always_eager = before

    assert fake_provider.total == MESSAGES
    assert set(fake_provider.accepted.values()) == {1}
    assert len(fake_provider.accepted) == MESSAGES
    assert set(Message.objects.for_tenant(tenant).values_list("attempts", flat=True)) == {1}
