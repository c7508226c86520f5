"""Unknown messages settled by asking the provider (SendGrid's Email Activity,
Twilio's Messages list, served by the fake): a message the provider holds
becomes sent without a second call; one it never got is sent once; one that
cannot be checked stays unknown for a person."""

import uuid
from datetime import timedelta

from commerce.models import Touchpoint
from messaging.models import Reason, Status
from messaging.services.outbox import Content
from messaging.services.reconcile import messages_reconcile, reconcile_after
from messaging.services.send import LEASE, _claim
from messaging.services.sweep import messages_recover
from retention import clock
from tests.messaging.test_send import _customer, _queue, _reload, _send


def _content(key):
    return Content(subject=f"Order {key}", text=f"Your order {key} has shipped")


def _timed_out(tenant, fake_provider, customer, key, channel):
    address = customer.email if channel == "email" else customer.phone
    fake_provider.delay(to=address, seconds=3)  # answers after the 1 s timeout
    message = _queue(
        tenant, customer, key, channel=channel, category="transactional", content=_content(key)
    )
    assert _send(tenant, message) == {"unknown": 1}
    return _reload(message)


def _worker_lost(tenant, customer, key, now, channel="email"):
    """A message claimed by a worker that died before its call."""
    message = _queue(
        tenant, customer, key, channel=channel, category="transactional", content=_content(key)
    )
    _claim(tenant.pk, [message.pk], uuid.uuid4(), now)
    assert messages_recover(now=now + LEASE + timedelta(seconds=1))["unknown"] == 1
    message = _reload(message)
    assert (message.status, message.reason) == (Status.UNKNOWN, Reason.WORKER_LOST)
    return message


def test_an_email_the_provider_took_becomes_sent_without_a_second_call(
    tenant, sender, fake_provider, now
):
    message = _timed_out(tenant, fake_provider, _customer(tenant), "m", "email")
    later = message.updated_at + reconcile_after()

    assert messages_reconcile(now=later - timedelta(seconds=1)) == {}  # a callback may come
    assert messages_reconcile(now=later) == {"sent": 1}
    message = _reload(message)
    assert (message.status, message.reason) == (Status.SENT, Reason.NONE)
    assert message.provider_id == fake_provider.calls_for(message.pk)[0].provider_id + (
        ".filter0001-1-1-0"
    )
    assert len(fake_provider.calls_for(message.pk)) == 1
    assert Touchpoint.objects.for_tenant(tenant).filter(kind="message.sent").count() == 1
    assert messages_reconcile(now=later + reconcile_after()) == {}


def test_an_email_the_provider_never_got_is_sent_once(tenant, sender, fake_provider, now):
    message = _worker_lost(tenant, _customer(tenant), "m", now)
    later = message.updated_at + reconcile_after()

    assert messages_reconcile(now=later) == {"requeued": 1}
    message = _reload(message)
    assert (message.status, message.sent_at) == (Status.QUEUED, None)
    assert message.due_at < later
    with clock.travel_to(later):
        assert _send(tenant, message) == {"sent": 1}
    assert _reload(message).status == Status.SENT
    assert len(fake_provider.calls_for(message.pk)) == 1


def test_an_sms_is_found_by_its_number_sender_and_text(tenant, sender, fake_provider, now):
    customer = _customer(tenant)
    took = _timed_out(tenant, fake_provider, customer, "took", "sms")
    lost = _worker_lost(tenant, customer, "lost", now, channel="sms")
    later = max(took.updated_at, lost.updated_at) + reconcile_after()

    assert messages_reconcile(now=later) == {"sent": 1, "requeued": 1}
    took, lost = _reload(took), _reload(lost)
    assert (took.status, took.provider_id) == (
        Status.SENT,
        fake_provider.calls_for(took.pk)[0].provider_id,
    )
    assert lost.status == Status.QUEUED
    with clock.travel_to(later):
        assert _send(tenant, lost) == {"sent": 1}
    assert [len(fake_provider.calls_for(m.pk)) for m in (took, lost)] == [1, 1]


def test_without_a_way_to_ask_the_message_stays_unknown_and_is_never_resent(
    tenant, sender, fake_provider, now
):
    fake_provider.lookups_supported = False
    message = _worker_lost(tenant, _customer(tenant), "m", now)
    later = message.updated_at + reconcile_after()

    assert messages_reconcile(now=later) == {"unsupported": 1}
    message = _reload(message)
    assert (message.status, message.reason) == (Status.UNKNOWN, Reason.WORKER_LOST)
    assert "cannot be asked" in message.detail
    # asked again only a period later, and never sent blindly
    assert messages_reconcile(now=later + timedelta(seconds=1)) == {}
    assert fake_provider.calls_for(message.pk) == []


def test_a_callback_that_came_first_is_not_overwritten(tenant, sender, fake_provider, now):
    message = _worker_lost(tenant, _customer(tenant), "m", now)
    type(message).objects.for_tenant(tenant).filter(pk=message.pk).update(status=Status.DELIVERED)

    assert messages_reconcile(now=message.updated_at + reconcile_after()) == {}
    assert _reload(message).status == Status.DELIVERED


def test_a_sweep_stops_asking_once_its_time_budget_is_spent(
    tenant, sender, fake_provider, now, monkeypatch
):
    message = _worker_lost(tenant, _customer(tenant), "m", now)
    monkeypatch.setattr("messaging.services.reconcile.RECONCILE_BUDGET_SECONDS", -1.0)

    assert messages_reconcile(now=message.updated_at + reconcile_after()) == {}
    assert _reload(message).status == Status.UNKNOWN  # asked on a later run
