"""A worker's pool process killed (kill -9) right after its provider call went
out, before the task is acknowledged: the task is delivered again
(``reject_on_worker_lost``) and finds the batch claimed, the sweeper settles
the batch once its lease is over, and the provider has seen one call per
message."""

from __future__ import annotations

import os
import re
import signal
from datetime import timedelta

from django.db import transaction

from commerce.models import Customer
from messaging.models import Message, Reason, Status
from messaging.services.outbox import Content, MessageIn, messages_enqueue_many, messaging_settings
from messaging.services.send import LEASE
from messaging.services.sweep import DISPATCH_GRACE, messages_dispatch_due, messages_recover
from retention import clock
from retention.celery import app as celery_app
from tests.faults.conftest import children, wait_quiet, wait_until, worker_log, worker_process

MESSAGES = 5
RECEIVED = re.compile(r"Task messaging\.send_batch\[([0-9a-f-]+)\] received")


def test_pool_process_killed_after_the_provider_call_sends_each_message_once(
    transactional_db, tenant, fake_provider, broker, monkeypatch
):
    # given one batch task of MESSAGES emails, the provider holding its answer
    # to the first one long enough to kill the sender while it waits
    monkeypatch.setenv("PROVIDER_TIMEOUT", "10")
    ms = messaging_settings(tenant)
    ms.from_email, ms.quiet_hours_enabled = "shop@alpha.example", False
    ms.save()
    customers = Customer.objects.bulk_create(
        Customer(tenant=tenant, email=f"buyer{i}@shop.example") for i in range(MESSAGES)
    )
    fake_provider.delay(to=customers[0].email, seconds=8)
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        with transaction.atomic():
            ids = sorted(
                messages_enqueue_many(
                    tenant=tenant,
                    items=[
                        MessageIn(
                            idempotency_key=f"order:{i}:shipped",
                            customer=c,
                            channel="email",
                            category="transactional",
                            content=Content(subject="Shipped", text=f"Order {i} shipped"),
                        )
                        for i, c in enumerate(customers)
                    ],
                ).ids.values()
            )
        assert broker.llen("dispatch") == 1

        with worker_process("dispatch", concurrency=1, loglevel="INFO") as worker:
            # when the pool process is killed as soon as the provider has the call
            wait_until(
                lambda: fake_provider.total == 1,
                seconds=30,
                what=lambda: (worker.poll(), worker_log(worker)),
            )
            (child,) = children(worker)
            os.kill(child, signal.SIGKILL)

            # then the task is delivered again, to a new pool process, and does nothing
            wait_until(
                lambda: len(RECEIVED.findall(worker_log(worker))) == 2,
                seconds=20,
                what=lambda: worker_log(worker),
            )
            first, again = RECEIVED.findall(worker_log(worker))
            assert first == again
            wait_until(
                lambda: broker.llen("dispatch") == 0 and not broker.hlen("unacked"),
                seconds=20,
                what=lambda: worker_log(worker),
            )
            assert fake_provider.total == 1
            rows = Message.objects.for_tenant(tenant).order_by("pk")
            assert set(rows.values_list("status", flat=True)) == {Status.SENDING}

            # and the sweeper, after the lease, marks the call in doubt `unknown`
            # and queues the rest again, which its next run sends
            later = clock.now() + LEASE + timedelta(seconds=1)
            assert messages_recover(now=later) == {"unknown": 1, "requeued": MESSAGES - 1}
            assert messages_dispatch_due(now=later + DISPATCH_GRACE) == MESSAGES - 1
            wait_until(
                lambda: fake_provider.total == MESSAGES,
                seconds=20,
                what=lambda: (list(rows.values_list("status", flat=True)), worker_log(worker)),
            )
            wait_quiet(lambda: list(rows.values_list("status", flat=True)), quiet=1.0)
    finally:
        celery_app.conf.task_always_eager = before

    assert [fake_provider.counts[str(pk)] for pk in ids] == [1] * MESSAGES
    first_row, *rest = rows
    assert (first_row.status, first_row.reason) == (Status.UNKNOWN, Reason.WORKER_LOST)
    assert {m.status for m in rest} == {Status.SENT}
