"""Sends through the real broker and two real worker processes: duplicate task
deliveries and two workers racing over the same messages never make a second
provider call for one idempotency key."""

from __future__ import annotations

import time

import pytest

from commerce.services.customers import consent_set
from messaging.models import Message, Status
from messaging.services.outbox import Content, message_enqueue, messaging_settings
from messaging.tasks import send_batch
from retention.celery import app as celery_app
from tests.factories import CustomerFactory
from tests.workers import celery_worker

MESSAGES = 120
DEADLINE_SECONDS = 90


@pytest.fixture
def worker(transactional_db, fake_provider):
    """`celery worker -Q dispatch -c 2` on the test database, pointed at the fake."""
    with celery_worker("dispatch", concurrency=2) as proc:
        yield proc


def test_duplicate_deliveries_and_racing_workers_send_each_message_once(
    tenant, fake_provider, worker
):
    ms = messaging_settings(tenant)
    ms.from_email, ms.sms_from, ms.quiet_hours_enabled = "shop@alpha.example", "+4930901820", False
    ms.save()
    messages = []
    for i in range(MESSAGES):
        customer = CustomerFactory(tenant=tenant, phone=f"+4915112{i:06d}")
        consent_set(customer=customer, channel="sms", status="opted_in", source="test")
        messages.append(
            message_enqueue(
                tenant=tenant,
                customer=customer,
                channel="sms" if i % 3 == 0 else "email",
                category="transactional",
                idempotency_key=f"order:{i}:shipped",
                content=Content(subject="Shipped", text=f"Order {i} shipped"),
            )
        )
    ids = [m.pk for m in messages]

    # Every message is handed to three tasks: its own, an overlapping batch in
    # reverse order, and the whole lot, so two worker processes race over them.
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        for start in range(0, MESSAGES, 10):
            send_batch.delay(tenant.pk, ids[start : start + 10])
            send_batch.delay(tenant.pk, list(reversed(ids[max(0, start - 5) : start + 15])))
        send_batch.delay(tenant.pk, ids)
    finally:
        celery_app.conf.task_always_eager = before

    rows = Message.objects.for_tenant(tenant)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while rows.filter(status=Status.SENT).count() < MESSAGES:
        assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, list(rows.values_list("status", "reason", "detail")[:5])
        time.sleep(0.3)
    time.sleep(1)  # any straggling duplicate task would have called by now
    assert fake_provider.total == MESSAGES
    assert all(fake_provider.accepted[str(pk)] == 1 for pk in ids)
    assert set(rows.values_list("attempts", flat=True)) == {1}
