"""Deploy skew: a newer release publishes a task under a name the running worker
does not know. The worker discards the delivery (it cannot run it), and the
sweeper, reading the database, sends the message anyway: once."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

from django.db import transaction

from commerce.models import Customer
from messaging.models import Message, Status
from messaging.services.outbox import Content, message_enqueue, messaging_settings
from messaging.services.sweep import DISPATCH_GRACE, messages_dispatch_due, messages_recover
from retention import clock
from retention.celery import app as celery_app
from tests.faults.conftest import wait_quiet, wait_until, worker_log, worker_process

NEW_NAME = "messaging.send_batch_v2"  # what a release the worker has not got would call it


def _rename_queued_tasks(broker, queue: str, name: str) -> list[dict]:
    """Rewrite the task name of every delivery waiting in ``queue`` (Celery's
    message protocol 2 carries it in the ``task`` header); returns their bodies."""
    bodies = []
    for index, raw in enumerate(broker.lrange(queue, 0, -1)):
        envelope = json.loads(raw)
        envelope["headers"]["task"] = name
        bodies.append(json.loads(base64.b64decode(envelope["body"])))
        broker.lset(queue, index, json.dumps(envelope))
    return bodies


def test_task_with_a_name_unknown_to_the_worker_is_recovered_by_the_sweeper(
    transactional_db, tenant, fake_provider, broker
):
    # given a queued message whose only broker delivery names a task this
    # worker's release does not have
    ms = messaging_settings(tenant)
    ms.from_email, ms.quiet_hours_enabled = "shop@alpha.example", False
    ms.save()
    customer = Customer.objects.create(tenant=tenant, email="ann@shop.example")
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        with transaction.atomic():
            message = message_enqueue(
                tenant=tenant,
                customer=customer,
                channel="email",
                category="transactional",
                idempotency_key="order:1:shipped",
                content=Content(subject="Shipped", text="Order 1 shipped"),
            )
        bodies = _rename_queued_tasks(broker, "dispatch", NEW_NAME)
        assert [args for args, _, _ in bodies] == [[tenant.pk, [message.pk]]]

        with worker_process("dispatch") as worker:
            # when the worker receives it: it is taken off the queue and dropped
            wait_until(
                lambda: broker.llen("dispatch") == 0 and not broker.hlen("unacked"),
                seconds=30,
                what=lambda: (worker.poll(), worker_log(worker)),
            )
            wait_until(
                lambda: "unregistered task" in worker_log(worker).lower(),
                seconds=10,
                what=lambda: worker_log(worker),
            )
            message.refresh_from_db()
            assert message.status == Status.QUEUED
            assert fake_provider.total == 0

            # then the sweeper's next run (past the grace for fresh rows) sends it
            later = clock.now() + DISPATCH_GRACE + timedelta(seconds=1)
            assert messages_recover(now=later) == {"unknown": 0, "requeued": 0}
            assert messages_dispatch_due(now=later) == 1
            wait_until(
                lambda: fake_provider.total >= 1,
                seconds=30,
                what=lambda: (worker.poll(), worker_log(worker)),
            )
            wait_quiet(lambda: (fake_provider.total, broker.llen("dispatch")), quiet=1.0)
            # and a second run finds nothing left to do
            assert messages_dispatch_due(now=later + DISPATCH_GRACE) == 0
    finally:
        celery_app.conf.task_always_eager = before

    message.refresh_from_db()
    assert message.status == Status.SENT
    assert message.attempts == 1
    assert fake_provider.total == 1
    assert fake_provider.accepted[str(message.pk)] == 1
    assert Message.objects.for_tenant(tenant).count() == 1
