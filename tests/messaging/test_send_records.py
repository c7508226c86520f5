"""How the send path writes accepted calls: in groups of at most RECORD_EVERY
(1: each right after its call; never one older than RECORD_WITHIN), each with
its own provider id and send time; and what a worker killed in the middle of
its calls leaves: the sweeper marks the one call in flight `unknown`, sends the
rest once, and no message is ever sent twice or lost."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from django.db import connection

from commerce.services.customers import consent_set
from messaging.models import Message, Reason, Status
from messaging.services.outbox import Content, message_enqueue, messaging_settings
from messaging.services.send import (
    LEASE,
    RECORD_EVERY,
    RECORD_WITHIN,
    Accepted,
    _record_due,
    send_batch,
)
from messaging.services.sweep import messages_dispatch_due, messages_recover
from retention import clock
from tests.factories import CustomerFactory
from tests.workers import ROOT

NOON = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
SHIPPED = Content(subject="Shipped", text="Your order shipped", html="<p>Your order shipped</p>")


def _queue_many(tenant, n: int, *, channels=("email",), category="transactional") -> list[Message]:
    """n messages, each to its own customer and address (the fake's rules pick
    calls by recipient)."""
    messages = []
    for i in range(n):
        customer = CustomerFactory(
            tenant=tenant, email=f"c{i}@records.example", phone=f"+4915112{i:06d}"
        )
        channel = channels[i % len(channels)]
        consent_set(customer=customer, channel=channel, status="opted_in", source="test")
        messages.append(
            message_enqueue(
                tenant=tenant,
                customer=customer,
                channel=channel,
                category=category,
                idempotency_key=f"order:{i}:shipped",
                content=SHIPPED,
            )
        )
    return messages


def _rows(messages: list[Message]) -> list[Message]:
    by_pk = Message.objects.unscoped().in_bulk([m.pk for m in messages])
    return [by_pk[m.pk] for m in messages]


def test_accepted_calls_are_written_with_each_provider_id_and_send_time(
    tenant, sender, fake_provider
):
    with clock.travel_to(NOON):
        messages = _queue_many(tenant, 2 * RECORD_EVERY + 3, channels=("email", "sms"))

        assert send_batch(tenant_id=tenant.pk, message_ids=[m.pk for m in messages]) == {
            "sent": len(messages)
        }

    rows = _rows(messages)
    provider_ids = {call.message_id: call.provider_id for call in fake_provider.calls}
    assert [(m.status, m.provider_id, m.sent_at, m.claim) for m in rows] == [
        (Status.SENT, provider_ids[str(m.pk)], NOON, None) for m in rows
    ]
    assert all(provider_ids[str(m.pk)] for m in rows)
    assert fake_provider.total == len(messages)


def test_every_accepted_call_is_written_before_the_next_call():
    at = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    assert RECORD_EVERY == 1  # more would leave unsent messages among the `unknown`
    assert _record_due([Accepted(1, "SG1", at)], at) is True


def test_a_larger_group_is_written_once_full_or_old(monkeypatch):
    from messaging.services import send

    monkeypatch.setattr(send, "RECORD_EVERY", 10)
    at = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    group = [Accepted(pk, f"SG{pk}", at) for pk in range(10)]

    assert _record_due([], at) is False
    assert _record_due(group[:-1], at) is False
    assert _record_due(group, at) is True
    assert _record_due(group[:1], at + RECORD_WITHIN - timedelta(microseconds=1)) is False
    assert _record_due(group[:1], at + RECORD_WITHIN) is True


def test_the_queries_of_a_batch_do_not_grow_with_its_size(tenant, sender, fake_provider):
    from django.test.utils import CaptureQueriesContext

    # Marketing email and SMS read everything a send reads (unsubscribe link,
    # status callback, cap); a field the batch query left out would cost a
    # query per message.
    with clock.travel_to(NOON):
        small = _queue_many(tenant, 3, channels=("email", "sms"), category="marketing")
        large = [
            message_enqueue(
                tenant=tenant,
                customer=m.customer,
                channel=m.channel,
                category="marketing",
                idempotency_key=f"{m.idempotency_key}:{i}",
                content=SHIPPED,
            )
            for i in (1, 2)
            for m in small
        ]
        counts = []
        for batch in (small, large):
            with CaptureQueriesContext(connection) as queries:
                assert send_batch(tenant_id=tenant.pk, message_ids=[m.pk for m in batch]) == {
                    "sent": len(batch)
                }
            counts.append(len(queries))
    assert counts[0] == counts[1]


def test_a_worker_killed_between_its_calls_and_their_write_never_sends_twice(
    transactional_db, tenant, fake_provider
):
    ms = messaging_settings(tenant)
    ms.from_email, ms.quiet_hours_enabled = "shop@alpha.example", False
    ms.save()
    messages = _queue_many(tenant, 9)
    ids = [m.pk for m in messages]
    # Three calls are accepted (and written); the provider holds the answer to
    # the fourth while the worker is killed.
    fake_provider.delay(to=messages[3].to_address, seconds=30)
    worker = _send_in_a_process(tenant.pk, ids)
    try:
        deadline = time.monotonic() + 30
        while fake_provider.total < 4:
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, fake_provider.total
            time.sleep(0.05)
    finally:
        worker.kill()
        worker.wait()
    assert [m.status for m in _rows(messages)] == [Status.SENT] * 3 + [Status.SENDING] * 6
    assert [len(fake_provider.calls_for(pk)) for pk in ids] == [1] * 4 + [0] * 5

    later = clock.now() + LEASE + timedelta(seconds=1)
    assert messages_recover(now=later) == {"unknown": 1, "requeued": 5}
    queued: list[list[int]] = []
    messages_dispatch_due(
        now=later + timedelta(minutes=1), enqueue=lambda t, batch: queued.append(batch)
    )
    assert queued == [ids[4:]]
    assert send_batch(tenant_id=tenant.pk, message_ids=ids) == {"sent": 5}

    rows = _rows(messages)
    assert (rows[3].status, rows[3].reason) == (Status.UNKNOWN, Reason.WORKER_LOST)
    assert [m.status for m in rows[:3] + rows[4:]] == [Status.SENT] * 8
    # The one in flight waits for its callback; every other message went out
    # exactly once.
    assert [len(fake_provider.calls_for(pk)) for pk in ids] == [1] * 9


def _send_in_a_process(tenant_id: int, ids: list[int]) -> subprocess.Popen:
    """``send_batch`` in a process of its own (so it can be killed), on the test
    database and the fake provider, with a provider timeout longer than the
    held answer."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DJANGO_SETTINGS_MODULE": "retention.settings",
        "PROVIDER_TIMEOUT": "60",
    }
    script = (
        "import sys, django; django.setup()\n"
        "from messaging.services.send import send_batch\n"
        "send_batch(tenant_id=int(sys.argv[1]), message_ids=[int(a) for a in sys.argv[2:]])\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script, str(tenant_id), *map(str, ids)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
